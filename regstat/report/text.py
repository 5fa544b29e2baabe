"""A Report as terminal text: control characters in snapshot strings shown as \\xNN."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..render import human_time, safe_text
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


def render_text(report: Report) -> str:
    s = report.snapshot
    out = [f"regstat report: snapshot {safe_text(s['id'])} ({report.state})"]
    out.append(f"source: {safe_text(source_line(report))}, taken {safe_text(human_time(s['taken_at']))}")
    for warning in report.warnings:
        out.append(f"!! {safe_text(warning)}")
    out += ["", headline(report), f"  {headline_detail(report)}", ""]
    figures = [*((label, figure(report, name)) for name, label in SUMMARY_LABELS + COUNT_LABELS),
               (stale_uploads_label(report), stale_uploads_text(report))]
    width = max(len(label) for label, _ in figures)
    for label, value in figures:
        out.append(f"  {label.ljust(width)}  {value}")
    for line in notes(report):
        out.append(f"  * {safe_text(line)}")
    for title, columns, rows in sections(report):
        out += ["", title]
        out += _text_table(columns, rows)
    return "\n".join(out) + "\n"


def _text_table(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]] | None) -> list[str]:
    if rows is None:
        return ["  unknown (the source cannot see untagged manifests)"]
    if not rows:
        return ["  (none)"]
    cells = [[safe_text(cell(key, row.get(key))) for key, _ in columns] for row in rows]
    headers = [label for _, label in columns]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(headers)]
    numeric = [key not in ("repository", "digest", "media_type") for key, _ in columns]
    aligned = zip(headers, widths, numeric, strict=True)
    lines = ["  " + "  ".join(h.rjust(w) if num else h.ljust(w) for h, w, num in aligned)]
    for r in cells:
        aligned = zip(r, widths, numeric, strict=True)
        lines.append("  " + "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in aligned))
    return [line.rstrip() for line in lines]
