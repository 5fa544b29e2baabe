"""A Report (regstat.report) as JSON, terminal text or Markdown; HTML is regstat.report_html.

Every string from the snapshot (repository names, media types, the source location) is
untrusted: text strips control characters, so a name cannot drive the terminal, and Markdown
escapes its syntax and HTML.
"""

from __future__ import annotations

import html
import json
import re
from datetime import datetime, timezone
from typing import Any, Callable, Sequence

from .render import json_array, to_json_value
from .report import Report, counted

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
    ("referenced_bytes", "referenced"),
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


def human_time(value: str | datetime | None) -> str:
    """An ISO 8601 time (snapshot.json's) or a datetime as '2026-12-07 01:14 UTC'."""
    if value is None or value == "":
        return "unknown"
    if isinstance(value, str):
        try:
            value = datetime.fromisoformat(value.replace("Z", "+00:00"))
        except ValueError:
            return value  # shown as it is, rather than hidden
    if value.tzinfo is None:
        value = value.replace(tzinfo=timezone.utc)
    return value.astimezone(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")


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


def headline(report: Report) -> str:
    """The headline: 'reclaimable now: 2.7 KiB (2,766 B)', marked where it is an estimate."""
    return f"reclaimable now: {figure(report, 'reclaimable_now_bytes')}"


def headline_detail(report: Report) -> str:
    """What the headline counts, in words."""
    r = report.reclaimable
    return (
        f"what plan-gc --untagged would free (grace {r['grace']}): "
        f"{counted(r['manifests'], 'manifest')} no kept tag reaches ({human_bytes(r['manifest_bytes'])}), "
        f"{counted(r['unreferenced_blobs'], 'unreferenced blob')} ({human_bytes(r['unreferenced_blob_bytes'])}), "
        f"{counted(r['stale_uploads'], 'stale upload')} ({human_bytes(r['stale_upload_bytes'])})"
    )


def stale_uploads_text(report: Report) -> str:
    """The uploads older than the grace period: how many, their bytes, the oldest's start."""
    stale = report.stale_uploads
    if stale is None:
        return "unknown"
    if not stale["uploads"]:
        return "none"
    size = human_bytes(stale["upload_bytes"])
    if stale["unsized"]:
        size = "size unknown" if stale["unsized"] == stale["uploads"] else f"{size} + {stale['unsized']:,} of unknown size"
    return f"{stale['uploads']:,} ({size}), the oldest started {human_time(stale['oldest_at'])}"


def stale_uploads_label(report: Report) -> str:
    return f"stale uploads (older than {report.reclaimable['grace']})"


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


def notes(report: Report) -> list[str]:
    """The footnotes: why each unknown is unknown and each estimate an estimate."""
    lines = []
    for kind, reasons in (("unknown", report.unknown), ("estimate", report.estimates)):
        names: dict[str, list[str]] = {}  # figures with one reason share its line
        for name, why in reasons.items():
            names.setdefault(why, []).append(name)
        lines += [f"{', '.join(figures)}: {kind}: {why}" for why, figures in names.items()]
    return lines


def sections(report: Report) -> list[tuple[str, Sequence[tuple[str, str]], list[dict[str, Any]] | None]]:
    """The tables every text format shows: title, columns, rows (None: unknown)."""
    n = report.top
    return [
        ("Repositories", REPOSITORY_COLUMNS, report.repositories),
        (f"Largest layers (top {n})", LAYER_COLUMNS, report.largest_layers),
        (f"Most shared layers (top {n}, shared by 2 or more manifests)", LAYER_COLUMNS, report.most_shared_layers),
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
    out = [f"regstat report: snapshot {safe_text(s['id'])} ({report.state})"]
    out.append(f"source: {safe_text(source_line(report))}, taken {safe_text(human_time(s['taken_at']))}")
    for warning in report.warnings:
        out.append(f"!! {safe_text(warning)}")
    out += ["", headline(report), f"  {headline_detail(report)}", ""]
    rows = [*((label, figure(report, name)) for name, label in SUMMARY_LABELS + COUNT_LABELS),
            (stale_uploads_label(report), stale_uploads_text(report))]
    width = max(len(label) for label, _ in rows)
    for label, value in rows:
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
    lines = ["  " + "  ".join(h.rjust(w) if num else h.ljust(w) for h, w, num in zip(headers, widths, numeric))]
    for r in cells:
        lines.append("  " + "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in zip(r, widths, numeric)))
    return [line.rstrip() for line in lines]


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
