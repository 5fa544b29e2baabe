"""A Report as one self-contained HTML file: inline CSS, inline SVG charts drawn here, no
scripts, fonts, images or links to anything outside the file. Printable (@media print).

Every string from the snapshot is escaped (html.escape, control characters removed): a
repository may be named anything a hostile pusher chose.
"""

from __future__ import annotations

import html
import re
from collections.abc import Sequence
from typing import Any

from ..render import human_bytes, human_time, safe_text
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

NBSP = "\u00a0"
# A number and its unit (human_bytes, human_time) never part at the end of a line.
_NUMBER_UNIT = re.compile(r"(\d) (B|KiB|MiB|GiB|TiB|PiB|EiB|UTC)\b")
_TIME = re.compile(r"(\d{4}-\d\d-\d\d) (\d\d:\d\d)")
_OPTION = re.compile(r"(--[a-z][a-z-]*)")

# Charts are drawn 600 units wide and scale with the page (down to a phone's width); text
# stays legible at 500 px because the drawing is no wider than this.
CHART_WIDTH = 600
LABEL_WIDTH = 150
LABEL_CHARACTERS = 18  # longer repository names are cut (the full name is the row's title)
ROW_HEIGHT = 24
LEGEND_HEIGHT = 18

STORAGE_TITLE = "Storage by repository"
SHARING_TITLE = "Sharing of layers"
ORPHANED_TITLE = "Orphaned space by repository"

CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; overflow-wrap: anywhere; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #555; margin-top: 0; }
.banner { border: 2px solid #b3261e; background: #fdecea; color: #7a1812; padding: .6em 1em;
          border-radius: 4px; margin: 1em 0; } .banner p { margin: .3em 0; } .banner .state { font-weight: 650; }
.headline { border: 1px solid #9cc3e6; background: #eef5fc; border-radius: 4px; padding: .6em 1em; margin: 1em 0; }
.headline .figure { font-size: 1.6em; font-weight: 650; margin: 0; }
.headline p { margin: .2em 0; }
.scroll { overflow-x: auto; max-width: 100%; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; white-space: nowrap; }
.summary td:first-child { color: #444; } .summary td.num { white-space: normal; }
.unknown { color: #8a5a00; font-style: italic; }
.notes { color: #555; font-size: .92em; }
svg { display: block; width: 100%; max-width: 600px; height: auto; margin: .5em 0; }
svg text { font: 14px system-ui, sans-serif; fill: #1d232a; } svg .axis-label { fill: #444; }
.exclusive { fill: #2f6bab; } .shared { fill: #9cc3e6; }
.orphaned { fill: #b3261e; } .orphaned-shared { fill: #eba39d; } .bar { fill: #4d8b57; }
.legend rect { stroke: none; }
code { font-size: .92em; } .option { white-space: nowrap; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  .banner { border-width: 3px; }
  h2, svg, table { break-inside: avoid; page-break-inside: avoid; }
  .scroll { overflow: visible; }
  svg .exclusive, svg .orphaned, svg .bar { fill: #333; } svg .shared, svg .orphaned-shared { fill: #bbb; }
}
"""


def esc(value: Any) -> str:
    """Escaped text for HTML content and attribute values."""
    return html.escape(safe_text(value), quote=True)


def prose(text: Any) -> str:
    """A sentence as value_text, its command-line options (--repository) kept whole too."""
    return _OPTION.sub(r'<span class="option">\1</span>', value_text(text))


def value_text(text: Any) -> str:
    """A figure or cell as escaped HTML, a non-breaking space between a number and its unit
    and inside a time, so that '2.7 KiB' and '2026-12-07 01:14 UTC' never break."""
    out = _NUMBER_UNIT.sub(rf"\1{NBSP}\2", safe_text(text))
    return esc(_TIME.sub(rf"\1{NBSP}\2", out))


def page_start(title: str, css: str = "") -> list[str]:
    """The start of a self-contained page up to <body>: `title` (plain text, escaped here),
    the report's style and `css` after it."""
    return [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{esc(title)}</title>",
        f"<style>{CSS}{css}</style></head><body>",
    ]


def render_html(report: Report) -> str:
    s = report.snapshot
    parts = [
        *page_start(f"regstat report {s['id']}"),
        f"<h1>regstat report: snapshot <code>{esc(s['id'])}</code></h1>",
        f'<p class="meta">Source: {esc(source_line(report))} · taken {value_text(human_time(s["taken_at"]))}'
        + (" · complete</p>" if report.complete else "</p>"),
    ]
    if not report.complete or report.warnings:
        # The state once, then what follows from it, each condition once.
        parts.append('<div class="banner" role="alert">')
        if not report.complete:
            parts.append(f'<p class="state">{esc(report.state)}</p>')
        parts += [f"<p>{prose(w)}</p>" for w in report.warnings]
        parts.append("</div>")
    kind = " unknown" if report.summary.get("reclaimable_now_bytes") is None or (
        "reclaimable_now_bytes" in report.estimates) else ""
    parts.append(
        f'<div class="headline"><p class="figure{kind}">{value_text(headline(report))}</p>'
        f"<p>{prose(headline_detail(report))}</p></div>"
    )
    parts.append(_summary(report))
    parts += [
        f"<h2>{STORAGE_TITLE}</h2>",
        storage_chart(report),
        f"<h2>{SHARING_TITLE}</h2>",
        sharing_chart(report),
        f"<h2>{ORPHANED_TITLE}</h2>",
        orphaned_chart(report),
    ]
    for title, columns, rows in sections(report):
        parts.append(f"<h2>{esc(title)}</h2>")
        parts.append(_table(columns, rows))
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _summary(report: Report) -> str:
    rows = []
    for name, label in SUMMARY_LABELS + COUNT_LABELS:
        text = figure(report, name)
        unknown = report.summary.get(name) is None or name in report.estimates
        kind = ' class="num unknown"' if unknown else ' class="num"'
        rows.append(f"<tr><td>{esc(label)}</td><td{kind}>{value_text(text)}</td></tr>")
    kind = ' class="num unknown"' if report.stale_uploads is None else ' class="num"'
    rows.append(f"<tr><td>{esc(stale_uploads_label(report))}</td><td{kind}>{value_text(stale_uploads_text(report))}</td></tr>")
    out = '<div class="scroll"><table class="summary"><tbody>' + "".join(rows) + "</tbody></table></div>"
    if notes(report):
        out += '<ul class="notes">' + "".join(f"<li>{prose(line)}</li>" for line in notes(report)) + "</ul>"
    return out


def _table(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]] | None) -> str:
    if rows is None:
        return '<p class="unknown">unknown: the source cannot see untagged manifests</p>'
    if not rows:
        return "<p>(none)</p>"
    numeric = [key not in ("repository", "digest", "media_type") for key, _ in columns]
    head = "".join(
        ('<th class="num">' if num else "<th>") + f"{esc(label)}</th>"
        for (_, label), num in zip(columns, numeric, strict=True)
    )
    body = []
    for row in rows:
        cells = []
        for (key, _), num in zip(columns, numeric, strict=True):
            value = row.get(key)
            classes = " ".join(c for c in ("num" if num else "", "unknown" if value is None else "") if c)
            attr = f' class="{classes}"' if classes else ""
            hover = f' title="{esc(value)}"' if key == "digest" else ""
            cells.append(f"<td{attr}{hover}>{value_text(cell(key, value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table></div>'


# --- charts -------------------------------------------------------------------------------------


def storage_chart(report: Report) -> str:
    """Stacked horizontal bars: each repository's exclusive and shared bytes, largest first;
    the figure at a bar's end is their sum, the table's `referenced` column."""
    repos = sorted(report.repositories, key=lambda r: (-r["referenced_bytes"], r["repository"]))
    bars = [
        (r["repository"], [("exclusive", r["exclusive_bytes"]), ("shared", r["shared_bytes"])])
        for r in repos[: report.top]
    ]
    caption = _caption(len(bars), len(repos), "repositories")
    legend = [
        ("exclusive", "exclusive: freed if the repository went"),
        ("shared", "shared with other repositories"),
        (None, "at the end: referenced, both together (the table's column)"),
    ]
    return _stacked_bars(STORAGE_TITLE, caption, bars, legend)


def orphaned_chart(report: Report) -> str:
    """Stacked horizontal bars: bytes the repository's orphans free alone, and with others'."""
    if report.orphaned_by_repository is None:
        return _unknown_chart(ORPHANED_TITLE, report.unknown.get("orphaned_manifest_bytes", "unknown"))
    bars = [
        (r["repository"], [("orphaned", r["orphaned_bytes"]), ("orphaned-shared", r["shared_orphaned_bytes"])])
        for r in report.orphaned_by_repository
    ]
    legend = [
        ("orphaned", "freed by deleting its orphans"),
        ("orphaned-shared", "freed with other repositories' orphans"),
        (None, "at the end: both together"),
    ]
    return _stacked_bars(ORPHANED_TITLE, f"top {report.top} repositories holding orphaned manifests", bars, legend)


def sharing_buckets(histogram: list[dict[str, int]]) -> list[tuple[str, int, int]]:
    """(label, blobs, bytes) by referencing manifests: 1, 2, 3-4, 5-8, 9-16, ... (empty
    buckets between the first and the last kept, so the axis stays even)."""
    if not histogram:
        return []
    top = max(row["manifests"] for row in histogram)
    bounds = [(1, 1)]
    while bounds[-1][1] < top:
        low = bounds[-1][1] + 1
        bounds.append((low, max(low, 2 * bounds[-1][1])))
    buckets = []
    for low, high in bounds:
        rows = [r for r in histogram if low <= r["manifests"] <= high]
        label = str(low) if low == high else f"{low}–{high}"
        buckets.append((label, sum(r["blobs"] for r in rows), sum(r["bytes"] for r in rows)))
    return buckets


SHARING_Y_LABEL = "config and layer blobs"
SHARING_X_LABEL = "referencing manifests"


def sharing_chart(report: Report) -> str:
    """Vertical bars: how many config and layer blobs have 1, 2, 3-4, ... referencing
    manifests; the y axis counts blobs (labelled, ticks at 0, half and the most)."""
    buckets = sharing_buckets(report.sharing_histogram)
    title = f"{SHARING_TITLE}: config and layer blobs by number of referencing manifests"
    if not buckets:
        return _unknown_chart(title, "no config or layer blobs in the snapshot")
    height, base, left, top = 260, 210, 74, 24
    right = CHART_WIDTH - 10
    slot = (right - left) / len(buckets)
    most = max(b for _, b, _ in buckets) or 1
    out = [_svg_open(title, CHART_WIDTH, height)]
    # The y axis: its label (turned), its line, and ticks with grid lines.
    middle = (top + base) / 2
    out.append(f'<text class="axis-label y-label" x="14" y="{middle:.0f}" text-anchor="middle" '
               f'transform="rotate(-90 14 {middle:.0f})">{esc(SHARING_Y_LABEL)}</text>')
    out.append(f'<line x1="{left}" y1="{top}" x2="{left}" y2="{base}" stroke="#888"/>')
    for tick in sorted({0, most // 2, most}):
        y = base - (base - top) * tick / most
        out.append(f'<line x1="{left - 4}" y1="{y:.1f}" x2="{right}" y2="{y:.1f}" stroke="#e4e4e4"/>')
        out.append(f'<text class="tick" x="{left - 8}" y="{y + 4:.1f}" text-anchor="end">{tick:,}</text>')
    out.append(f'<line x1="{left}" y1="{base}" x2="{right}" y2="{base}" stroke="#888"/>')
    for i, (label, blobs, size) in enumerate(buckets):
        h = (base - top) * blobs / most
        x = left + i * slot + slot * 0.1
        out.append(
            f'<rect class="bar" data-manifests="{esc(label)}" data-blobs="{blobs}" data-bytes="{size}" '
            f'x="{x:.1f}" y="{base - h:.1f}" width="{slot * 0.8:.1f}" height="{h:.1f}">'
            f"<title>{esc(label)} manifests: {blobs:,} blobs, {esc(human_bytes(size))}</title></rect>"
        )
        out.append(f'<text x="{x + slot * 0.4:.1f}" y="{base + 17}" text-anchor="middle">{esc(label)}</text>')
        if blobs:
            out.append(f'<text x="{x + slot * 0.4:.1f}" y="{base - h - 5:.1f}" text-anchor="middle">{blobs:,}</text>')
    out.append(
        f'<text class="axis-label x-label" x="{(left + right) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
        f"{esc(SHARING_X_LABEL)}</text>"
    )
    out.append("</svg>")
    return "".join(out)


def _caption(shown: int, total: int, noun: str) -> str:
    return f"all {total} {noun}" if shown == total else f"largest {shown} of {total} {noun}"


def _stacked_bars(
    title: str, caption: str, bars: list[tuple[str, list[tuple[str, int]]]], legend: list[tuple[str | None, str]]
) -> str:
    """Horizontal bars of stacked parts; `legend`: (class of a part, or None for a line of
    text without a swatch, its text), one a line."""
    if not bars:
        return _unknown_chart(title, "(none)")
    value_width = 86
    top_margin = LEGEND_HEIGHT * (len(legend) + 1) + 8
    height = top_margin + ROW_HEIGHT * len(bars) + 6
    span = CHART_WIDTH - LABEL_WIDTH - value_width
    most = max(sum(v for _, v in parts) for _, parts in bars) or 1
    out = [_svg_open(f"{title} ({caption})", CHART_WIDTH, height)]
    for i, (cls, text) in enumerate(legend):
        y = LEGEND_HEIGHT * i
        swatch = f'<rect class="{cls}" x="0" y="{y + 3}" width="12" height="12"/>' if cls else ""
        out.append(f'<g class="legend">{swatch}<text x="18" y="{y + 14}">{esc(text)}</text></g>')
    out.append(f'<text x="0" y="{LEGEND_HEIGHT * len(legend) + 14}" class="axis-label">{esc(caption)}</text>')
    for i, (label, parts) in enumerate(bars):
        y = top_margin + i * ROW_HEIGHT
        short = label if len(label) <= LABEL_CHARACTERS else label[: LABEL_CHARACTERS - 1] + "…"
        total = sum(v for _, v in parts)
        out.append(f'<g class="row" data-label="{esc(label)}" data-total="{total}"><title>{esc(label)}</title>')
        out.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 16}" text-anchor="end">{esc(short)}</text>')
        offset = float(LABEL_WIDTH)
        for cls, value in parts:
            w = span * value / most
            out.append(
                f'<rect class="{cls}" data-bytes="{value}" x="{offset:.1f}" y="{y + 4}" width="{w:.1f}" '
                f'height="{ROW_HEIGHT - 8}"><title>{esc(label)}: {esc(cls)} {esc(human_bytes(value))}</title></rect>'
            )
            offset += w
        out.append(f'<text class="total" x="{offset + 6:.1f}" y="{y + 16}">{value_text(human_bytes(total))}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _unknown_chart(title: str, reason: str) -> str:
    """In place of a chart with nothing to draw: the reason, as text that wraps."""
    return f'<p class="unknown chart-missing" title="{esc(title)}">{esc(reason)}</p>'


def _svg_open(title: str, width: int, height: int) -> str:
    return (
        f'<svg role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{esc(title)}</title>'
    )
