"""A Report as Markdown: snapshot strings with their HTML escaped and Markdown syntax backslashed."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from ..render import human_time, markdown_text, safe_text
from .common import (
    COUNT_LABELS,
    SUMMARY_LABELS,
    cell,
    figure,
    headline,
    headline_detail,
    notes,
    sections,
    source_line,
    stale_uploads_label,
    stale_uploads_text,
)
from .numbers import Report


def render_markdown(report: Report) -> str:
    s = report.snapshot
    out = [f"## regstat report: snapshot `{safe_text(s['id'])}`", ""]
    if not report.complete:
        out.append(f"> **⚠ {markdown_text(report.state)}**")
        out += [f"> - {markdown_text(warning)}" for warning in report.warnings]
        out.append("")
    elif report.warnings:
        out += [f"- **{markdown_text(warning)}**" for warning in report.warnings] + [""]
    out += [
        f"Source: {markdown_text(source_line(report))}, taken {markdown_text(human_time(s['taken_at']))}.",
        "",
        f"**{markdown_text(headline(report))}**: {markdown_text(headline_detail(report))}.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    for name, label in SUMMARY_LABELS + COUNT_LABELS:
        out.append(f"| {label} | {markdown_text(figure(report, name))} |")
    out.append(f"| {stale_uploads_label(report)} | {markdown_text(stale_uploads_text(report))} |")
    if notes(report):
        out.append("")
        out += [f"- {markdown_text(line)}" for line in notes(report)]
    for title, columns, rows in sections(report):
        out += ["", f"### {title}", ""]
        out += _markdown_table(columns, rows, markdown_text)
    return "\n".join(out) + "\n"


def _markdown_table(
    columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]] | None, escape: Callable[[Any], str]
) -> list[str]:
    if rows is None:
        return ["unknown (the source cannot see untagged manifests)"]
    if not rows:
        return ["(none)"]
    numeric = [key not in ("repository", "digest", "media_type") for key, _ in columns]
    lines = ["| " + " | ".join(label for _, label in columns) + " |"]
    lines.append("|" + "|".join("---:" if num else "---" for num in numeric) + "|")
    for row in rows:
        lines.append("| " + " | ".join(escape(cell(key, row.get(key))) for key, _ in columns) + " |")
    return lines
