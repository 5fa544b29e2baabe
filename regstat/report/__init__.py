"""`regstat report`: the numbers (numbers.py, reclaimable.py), and the formats above them
(text, json_format, markdown, html), which share common.py and never import each other.
"""

from __future__ import annotations

from .html import render_html
from .json_format import render_json
from .markdown import render_markdown
from .numbers import Report, build_report
from .text import render_text

__all__ = ["Report", "build_report", "render_html", "render_json", "render_markdown", "render_report", "render_text"]


def render_report(report: Report, fmt: str) -> str:
    """The report in `fmt`: text, json, markdown or html."""
    return {"text": render_text, "json": render_json, "markdown": render_markdown, "html": render_html}[fmt](report)
