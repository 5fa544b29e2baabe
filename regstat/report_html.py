"""A Report as one self-contained HTML file: inline CSS, inline SVG charts drawn here, no
scripts, fonts, images or links to anything outside the file. Printable (@media print).

Every string from the snapshot is escaped (html.escape, control characters removed): a
repository may be named anything a hostile pusher chose.
"""

from __future__ import annotations

import html
from typing import Any, Sequence

from .report import Report
from .report_render import (
    COUNT_LABELS,
    SUMMARY_LABELS,
    cell,
    figure,
    human_bytes,
    notes,
    safe_text,
    sections,
    source_line,
    state_line,
)

CHART_WIDTH = 760
LABEL_WIDTH = 200
ROW_HEIGHT = 22

STORAGE_TITLE = "Storage by repository"
SHARING_TITLE = "Sharing of layers"
ORPHANED_TITLE = "Orphaned space by repository"

_CSS = """
body { font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif; color: #1d232a;
       max-width: 1000px; margin: 2em auto; padding: 0 1em; }
h1 { font-size: 1.5em; margin-bottom: .2em; } h2 { font-size: 1.2em; margin-top: 1.8em; }
.meta { color: #555; margin-top: 0; }
.banner { border: 2px solid #b3261e; background: #fdecea; color: #7a1812; padding: .6em 1em;
          font-weight: 600; border-radius: 4px; margin: 1em 0; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { padding: .25em .7em; border-bottom: 1px solid #ddd; text-align: left; vertical-align: top; }
td.num, th.num { text-align: right; font-variant-numeric: tabular-nums; }
.summary td:first-child { color: #444; }
.unknown { color: #8a5a00; font-style: italic; }
.notes { color: #555; font-size: .92em; }
svg { display: block; max-width: 100%; height: auto; margin: .5em 0; }
svg text { font: 12px system-ui, sans-serif; fill: #1d232a; }
.exclusive { fill: #2f6bab; } .shared { fill: #9cc3e6; }
.orphaned { fill: #b3261e; } .orphaned-shared { fill: #eba39d; } .bar { fill: #4d8b57; }
.legend rect { stroke: none; }
code { font-size: .92em; }
@media print {
  body { margin: 0; max-width: none; font-size: 11px; }
  .banner { border-width: 3px; }
  h2, svg, table { break-inside: avoid; page-break-inside: avoid; }
  svg .exclusive, svg .orphaned, svg .bar { fill: #333; } svg .shared, svg .orphaned-shared { fill: #bbb; }
}
"""


def esc(value: Any) -> str:
    """Escaped text for HTML content and attribute values."""
    return html.escape(safe_text(value), quote=True)


def render_html(report: Report) -> str:
    s = report.snapshot
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>regstat report {esc(s['id'])}</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>regstat report: snapshot <code>{esc(s['id'])}</code></h1>",
        f'<p class="meta">Source: {esc(source_line(report))} · taken {esc(s["taken_at"])} · '
        f"{esc(state_line(report))}</p>",
    ]
    if not report.complete or report.warnings:
        parts.append('<div class="banner" role="alert">')
        if not report.complete:
            parts.append(f"<p>{esc(state_line(report))} snapshot: the figures cover only what the crawl read.</p>")
        parts += [f"<p>{esc(w)}</p>" for w in report.warnings]
        parts.append("</div>")
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
        kind = ' class="num unknown"' if report.summary.get(name) is None or name in report.estimates else ' class="num"'
        rows.append(f"<tr><td>{esc(label)}</td><td{kind}>{esc(text)}</td></tr>")
    out = '<table class="summary"><tbody>' + "".join(rows) + "</tbody></table>"
    if notes(report):
        out += '<ul class="notes">' + "".join(f"<li>{esc(line)}</li>" for line in notes(report)) + "</ul>"
    return out


def _table(columns: Sequence[tuple[str, str]], rows: list[dict[str, Any]] | None) -> str:
    if rows is None:
        return '<p class="unknown">unknown: the source cannot see untagged manifests</p>'
    if not rows:
        return "<p>(none)</p>"
    numeric = [key not in ("repository", "digest", "media_type") for key, _ in columns]
    head = "".join(
        ('<th class="num">' if num else "<th>") + f"{esc(label)}</th>" for (_, label), num in zip(columns, numeric)
    )
    body = []
    for row in rows:
        cells = []
        for (key, _), num in zip(columns, numeric):
            value = row.get(key)
            classes = " ".join(c for c in ("num" if num else "", "unknown" if value is None else "") if c)
            attr = f' class="{classes}"' if classes else ""
            hover = f' title="{esc(value)}"' if key == "digest" else ""
            cells.append(f"<td{attr}{hover}>{esc(cell(key, value))}</td>")
        body.append("<tr>" + "".join(cells) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


# --- charts -------------------------------------------------------------------------------------


def storage_chart(report: Report) -> str:
    """Stacked horizontal bars: each repository's exclusive and shared bytes, largest first."""
    repos = sorted(report.repositories, key=lambda r: (-(r["exclusive_bytes"] + r["shared_bytes"]), r["repository"]))
    bars = [
        (r["repository"], [("exclusive", r["exclusive_bytes"]), ("shared", r["shared_bytes"])])
        for r in repos[: report.top]
    ]
    caption = _caption(len(bars), len(repos), "repositories")
    legend = [("exclusive", "exclusive (freed if the repository went)"), ("shared", "shared with other repositories")]
    return _stacked_bars(STORAGE_TITLE, caption, bars, legend)


def orphaned_chart(report: Report) -> str:
    """Stacked horizontal bars: bytes the repository's orphans free alone, and with others'."""
    if report.orphaned_by_repository is None:
        return _unknown_chart(ORPHANED_TITLE, report.unknown.get("orphaned_manifest_bytes", "unknown"))
    bars = [
        (r["repository"], [("orphaned", r["orphaned_bytes"]), ("orphaned-shared", r["shared_orphaned_bytes"])])
        for r in report.orphaned_by_repository
    ]
    legend = [("orphaned", "freed by deleting its orphans"), ("orphaned-shared", "freed with other repositories' orphans")]
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


def sharing_chart(report: Report) -> str:
    """Vertical bars: how many config and layer blobs have 1, 2, 3-4, ... referencing manifests."""
    buckets = sharing_buckets(report.sharing_histogram)
    title = f"{SHARING_TITLE}: config and layer blobs by number of referencing manifests"
    if not buckets:
        return _unknown_chart(title, "no config or layer blobs in the snapshot")
    height, base, left = 240, 200, 50
    slot = (CHART_WIDTH - left - 10) / len(buckets)
    most = max(b for _, b, _ in buckets) or 1
    out = [_svg_open(title, CHART_WIDTH, height)]
    out.append(f'<line x1="{left}" y1="{base}" x2="{CHART_WIDTH - 10}" y2="{base}" stroke="#888"/>')
    out.append(f'<text x="{left - 6}" y="{base}" text-anchor="end">0</text>')
    out.append(f'<text x="{left - 6}" y="24" text-anchor="end">{most:,}</text>')
    for i, (label, blobs, size) in enumerate(buckets):
        h = round((base - 20) * blobs / most)
        x = left + i * slot + slot * 0.1
        out.append(
            f'<rect class="bar" data-manifests="{esc(label)}" data-blobs="{blobs}" data-bytes="{size}" '
            f'x="{x:.1f}" y="{base - h}" width="{slot * 0.8:.1f}" height="{h}">'
            f"<title>{esc(label)} manifests: {blobs:,} blobs, {esc(human_bytes(size))}</title></rect>"
        )
        out.append(f'<text x="{x + slot * 0.4:.1f}" y="{base + 16}" text-anchor="middle">{esc(label)}</text>')
        if blobs:
            out.append(f'<text x="{x + slot * 0.4:.1f}" y="{base - h - 4}" text-anchor="middle">{blobs:,}</text>')
    out.append(
        f'<text x="{left + (CHART_WIDTH - left) / 2:.0f}" y="{height - 8}" text-anchor="middle">'
        "referencing manifests (bar: number of blobs)</text>"
    )
    out.append("</svg>")
    return "".join(out)


def _caption(shown: int, total: int, noun: str) -> str:
    return f"all {total} {noun}" if shown == total else f"largest {shown} of {total} {noun}"


def _stacked_bars(
    title: str, caption: str, bars: list[tuple[str, list[tuple[str, int]]]], legend: list[tuple[str, str]]
) -> str:
    if not bars:
        return _unknown_chart(title, "(none)")
    top_margin, value_width = 44, 90
    height = top_margin + ROW_HEIGHT * len(bars) + 10
    span = CHART_WIDTH - LABEL_WIDTH - value_width
    most = max(sum(v for _, v in parts) for _, parts in bars) or 1
    out = [_svg_open(f"{title} ({caption})", CHART_WIDTH, height)]
    x = 0
    for cls, text in legend:
        out.append(f'<g class="legend"><rect class="{cls}" x="{x}" y="4" width="12" height="12"/>')
        out.append(f'<text x="{x + 16}" y="14">{esc(text)}</text></g>')
        x += 24 + 7 * len(text)
    out.append(f'<text x="0" y="34" fill="#555">{esc(caption)}</text>')
    for i, (label, parts) in enumerate(bars):
        y = top_margin + i * ROW_HEIGHT
        short = label if len(label) <= 28 else label[:27] + "…"
        out.append(f'<g class="row" data-label="{esc(label)}"><title>{esc(label)}</title>')
        out.append(f'<text x="{LABEL_WIDTH - 6}" y="{y + 14}" text-anchor="end">{esc(short)}</text>')
        offset = float(LABEL_WIDTH)
        for cls, value in parts:
            w = span * value / most
            out.append(
                f'<rect class="{cls}" data-bytes="{value}" x="{offset:.1f}" y="{y + 3}" width="{w:.1f}" '
                f'height="{ROW_HEIGHT - 6}"><title>{esc(label)}: {esc(cls)} {esc(human_bytes(value))}</title></rect>'
            )
            offset += w
        total = sum(v for _, v in parts)
        out.append(f'<text x="{offset + 6:.1f}" y="{y + 14}">{esc(human_bytes(total))}</text></g>')
    out.append("</svg>")
    return "".join(out)


def _unknown_chart(title: str, reason: str) -> str:
    return (
        _svg_open(title, CHART_WIDTH, 40)
        + f'<text x="0" y="24" class="unknown">{esc(reason)}</text></svg>'
    )


def _svg_open(title: str, width: int, height: int) -> str:
    return (
        f'<svg role="img" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}"><title>{esc(title)}</title>'
    )
