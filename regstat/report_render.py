"""A Report (regstat.report) as JSON, terminal text or Markdown; HTML is regstat.report_html.

Every string from the snapshot (repository names, media types, the source location) is
untrusted: text strips control characters, so a name cannot drive the terminal, and Markdown
escapes its syntax and HTML.
"""

from __future__ import annotations

import html
import json
import re
from typing import Any, Callable, Sequence

from .render import json_array, to_json_value
from .report import Report

_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")

SUMMARY_LABELS = (
    ("physical_bytes", "physical (distinct stored blobs)"),
    ("logical_bytes", "logical (if nothing were shared)"),
    ("dedup_savings_bytes", "saved by layer sharing"),
    ("orphaned_manifest_bytes", "freed by deleting every orphaned manifest"),
    ("unreferenced_blob_bytes", "in blobs no manifest references"),
)
COUNT_LABELS = (
    ("orphaned_manifests", "orphaned manifests"),
    ("orphaned_blobs", "blobs only orphaned manifests hold"),
    ("unreferenced_blobs", "unreferenced blobs"),
)
REPOSITORY_COLUMNS = (
    ("repository", "repository"),
    ("tags", "tags"),
    ("manifests", "manifests"),
    ("orphaned_manifests", "orphaned"),
    ("logical_bytes", "logical"),
    ("exclusive_bytes", "exclusive"),
    ("shared_bytes", "shared"),
    ("orphaned_bytes", "orphaned bytes"),
)
LAYER_COLUMNS = (
    ("digest", "digest"),
    ("size", "size"),
    ("manifests", "manifests"),
    ("repositories", "repositories"),
    ("savings_bytes", "saved"),
    ("media_type", "media type"),
)
ORPHAN_COLUMNS = (
    ("repository", "repository"),
    ("orphaned_manifests", "orphaned manifests"),
    ("orphaned_bytes", "freed (its orphans alone)"),
    ("shared_orphaned_bytes", "freed with other repositories' orphans"),
)


def human_bytes(n: int | None) -> str:
    """1536 -> '1.5 KiB'; None -> 'unknown'."""
    if n is None:
        return "unknown"
    value = float(n)
    for unit in _UNITS:
        if abs(value) < 1024 or unit == _UNITS[-1]:
            return f"{n} B" if unit == "B" else f"{value:.1f} {unit}"
        value /= 1024
    raise AssertionError("unreachable")


def short_digest(digest: str | None) -> str:
    if not digest:
        return ""
    algorithm, _, hex_part = digest.partition(":")
    return f"{algorithm}:{hex_part[:12]}" if hex_part else digest[:19]


def safe_text(value: Any) -> str:
    """A snapshot string made harmless for a terminal: control characters as \\xNN."""
    return _CONTROL.sub(lambda m: f"\\x{ord(m.group()):02x}", str(value))


def markdown_text(value: Any) -> str:
    """A snapshot string as literal Markdown text: HTML escaped, Markdown syntax backslashed."""
    return _MARKDOWN.sub(r"\\\1", html.escape(safe_text(value), quote=False))


def figure(report: Report, name: str) -> str:
    """A summary figure in words: bytes or a count, 'unknown', or marked as an estimate."""
    value = report.summary.get(name)
    text = human_bytes(value) if name.endswith("_bytes") else ("unknown" if value is None else f"{value:,}")
    if value is not None and name.endswith("_bytes") and value >= 1024:
        text += f" ({value:,} B)"
    if name in report.estimates:
        text += " (estimate)"
    return text


def cell(column: str, value: Any) -> str:
    if value is None:
        return "unknown"
    if column == "digest":
        return short_digest(value)
    if column.endswith("bytes") or column == "size":
        return human_bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def source_line(report: Report) -> str:
    source = report.snapshot.get("source") or {}
    where = source.get("location") or ""
    return f"{source.get('kind', 'unknown')} {where}".strip()


def state_line(report: Report) -> str:
    s = report.snapshot
    if s["complete"]:
        return "complete"
    return f"INCOMPLETE ({s['errors']} error{'' if s['errors'] == 1 else 's'})" if s["errors"] else "INCOMPLETE"


def notes(report: Report) -> list[str]:
    """The footnotes: why each unknown is unknown and each estimate an estimate."""
    lines = [f"{name}: unknown: {why}" for name, why in report.unknown.items()]
    lines += [f"{name}: estimate: {why}" for name, why in report.estimates.items()]
    return lines


def sections(report: Report) -> list[tuple[str, Sequence[tuple[str, str]], list[dict[str, Any]] | None]]:
    """The tables every text format shows: title, columns, rows (None: unknown)."""
    n = report.top
    return [
        ("Repositories", REPOSITORY_COLUMNS, report.repositories),
        (f"Largest layers (top {n})", LAYER_COLUMNS, report.largest_layers),
        (f"Most shared layers (top {n})", LAYER_COLUMNS, report.most_shared_layers),
        (f"Orphaned space by repository (top {n})", ORPHAN_COLUMNS, report.orphaned_by_repository),
    ]


# --- renderings ---------------------------------------------------------------------------------


def render_report(report: Report, fmt: str) -> str:
    """The report in `fmt`: text, json, markdown or html."""
    if fmt == "html":
        from .report_html import render_html  # it builds on this module

        return render_html(report)
    return {"text": render_text, "json": render_json, "markdown": render_markdown}[fmt](report)


def render_json(report: Report) -> str:
    """The JSON document, indented, but for `repositories`: one compact row a line (a
    registry has up to millions of repositories; render.json_array)."""
    parts = []
    for key, value in report.to_json().items():
        if key == "repositories":
            text = json_array(value, indent=" ")
        else:
            text = json.dumps(to_json_value(value), indent=1).replace("\n", "\n ")  # one level in
        parts.append(f" {json.dumps(key)}: {text}")
    return "{\n" + ",\n".join(parts) + "\n}\n"


def render_text(report: Report) -> str:
    s = report.snapshot
    out = [f"regstat report: snapshot {safe_text(s['id'])} ({state_line(report)})"]
    out.append(f"source: {safe_text(source_line(report))}, taken {safe_text(s['taken_at'])}")
    for warning in report.warnings:
        out.append(f"!! {safe_text(warning)}")
    out.append("")
    width = max(len(label) for _, label in SUMMARY_LABELS + COUNT_LABELS)
    for name, label in SUMMARY_LABELS + COUNT_LABELS:
        out.append(f"  {label.ljust(width)}  {figure(report, name)}")
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
    lines = ["  " + "  ".join(h.rjust(w) if num else h.ljust(w) for h, w, num in zip(headers, widths, numeric))]
    for r in cells:
        lines.append("  " + "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)))
    return [line.rstrip() for line in lines]


def render_markdown(report: Report) -> str:
    s = report.snapshot
    out = [f"## regstat report: snapshot `{safe_text(s['id'])}`", ""]
    if not report.complete:
        out += [f"> **⚠ {markdown_text(state_line(report))} snapshot**: the figures cover only what the crawl read.", ""]
    for warning in report.warnings:
        out.append(f"- **{markdown_text(warning)}**")
    if report.warnings:
        out.append("")
    out += [
        f"Source: {markdown_text(source_line(report))}, taken {markdown_text(s['taken_at'])}.",
        "",
        "| figure | value |",
        "|---|---:|",
    ]
    for name, label in SUMMARY_LABELS + COUNT_LABELS:
        out.append(f"| {label} | {markdown_text(figure(report, name))} |")
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
