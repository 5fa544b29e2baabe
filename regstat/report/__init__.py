"""`regstat report`: the numbers (numbers.py, reclaimable.py), and the formats above them
(text, json_format, markdown, html), which share common.py and never import each other;
prometheus: the figures as metrics; trends: a history's figures over time, as text, json, csv
(trends_formats) and html (trends_html).
"""

from __future__ import annotations

from .html import render_html
from .json_format import render_json
from .markdown import render_markdown
from .numbers import Report, build_report
from .prometheus import render_prometheus
from .text import render_text
from .trends import Trends, build_trends
from .trends_formats import render_trends_csv, render_trends_json, render_trends_text
from .trends_html import render_trends_html

__all__ = ["Report", "Trends", "build_report", "build_trends", "render_html", "render_json", "render_markdown",
           "render_prometheus", "render_report", "render_text", "render_trends"]


def render_report(report: Report, fmt: str) -> str:
    """The report in `fmt`: text, json, markdown or html."""
    return {"text": render_text, "json": render_json, "markdown": render_markdown, "html": render_html}[fmt](report)


def render_trends(trends: Trends, fmt: str) -> str:
    """A history's trends in `fmt`: text, json, csv or html."""
    return {"text": render_trends_text, "json": render_trends_json, "csv": render_trends_csv,
            "html": render_trends_html}[fmt](trends)
