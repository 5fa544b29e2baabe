"""`regstat report`: the numbers (numbers.py, reclaimable.py), and the formats above them
(text, json_format, markdown, html), which share common.py and never import each other;
prometheus: the figures as metrics; trends: a history's figures over time, as text, json, csv
(trends_formats) and html (trends_html). `regstat diff`: two snapshots' numbers and what
changed between them (diff.py), and its formats (diff_text: text and markdown, diff_html,
which borrows the report's style), which share diff_common.py.
"""

from __future__ import annotations

from .diff import Diff, build_diff, check_same_source
from .diff_common import render_json as render_diff_json
from .diff_html import render_html as render_diff_html
from .diff_text import render_markdown as render_diff_markdown
from .diff_text import render_text as render_diff_text
from .html import render_html
from .json_format import render_json
from .markdown import render_markdown
from .numbers import Report, build_report
from .prometheus import render_prometheus
from .text import render_text
from .trends import Trends, build_trends
from .trends_formats import render_trends_csv, render_trends_json, render_trends_text
from .trends_html import render_trends_html

__all__ = [
    "Diff",
    "Report",
    "Trends",
    "build_diff",
    "build_report",
    "build_trends",
    "check_same_source",
    "render_diff",
    "render_html",
    "render_json",
    "render_markdown",
    "render_prometheus",
    "render_report",
    "render_text",
    "render_trends",
]


def render_report(report: Report, fmt: str) -> str:
    """The report in `fmt`: text, json, markdown or html."""
    return {"text": render_text, "json": render_json, "markdown": render_markdown, "html": render_html}[fmt](report)


def render_trends(trends: Trends, fmt: str) -> str:
    """A history's trends in `fmt`: text, json, csv or html."""
    return {"text": render_trends_text, "json": render_trends_json, "csv": render_trends_csv,
            "html": render_trends_html}[fmt](trends)


def render_diff(diff: Diff, fmt: str) -> str:
    """The diff in `fmt`: text, json, markdown or html."""
    return {"text": render_diff_text, "json": render_diff_json, "markdown": render_diff_markdown,
            "html": render_diff_html}[fmt](diff)
