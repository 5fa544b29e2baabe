"""Trends (regstat.report.trends) as one self-contained HTML page: line charts drawn here as
inline SVG (the report's own style, regstat.report.html), a table of the figures, no scripts.
Every string from a snapshot is escaped; a repository may be named anything."""

from __future__ import annotations

from datetime import datetime

from ..render import human_bytes, human_time
from .html import esc, page_start, value_text
from .trends import Trends
from .trends_formats import TEXT_COLUMNS

WIDTH, HEIGHT = 600, 280
LEFT, RIGHT, TOP, BOTTOM = 84, 16, 14, 236  # the plot area inside the drawing
PALETTE = ("#2f6bab", "#b3261e", "#4d8b57", "#8a5a00", "#6a3d9a", "#1b9e9e", "#d95f02", "#555555",
           "#e7298a", "#66a61e")

_TREND_CSS = """
td.when { white-space: nowrap; }
.line { fill: none; stroke-width: 2.2; } .point { stroke: none; }
ul.legend { list-style: none; padding: 0; margin: .2em 0 1em; display: flex; flex-wrap: wrap; gap: .2em 1.2em; }
ul.legend li { overflow-wrap: anywhere; } .swatch { display: inline-block; width: 1.4em; height: .3em;
  vertical-align: middle; margin-right: .4em; border-radius: 2px; }
""" + "".join(f".series-{i} {{ stroke: {c}; fill: {c}; }} .swatch.series-{i} {{ background: {c}; }}\n"
              for i, c in enumerate(PALETTE))

Series = tuple[str, list[int | None]]


def render_trends_html(trends: Trends) -> str:
    times = [datetime.fromisoformat(p.taken_at.replace("Z", "+00:00")) for p in trends.points]
    first, last = trends.points[0], trends.points[-1]
    parts = [
        *page_start(f"regstat trends {trends.history}", _TREND_CSS),
        f"<h1>regstat trends: <code>{esc(trends.history)}</code></h1>",
        f'<p class="meta">{len(trends.points)} snapshots, {value_text(human_time(first.taken_at))} to '
        f"{value_text(human_time(last.taken_at))}</p>",
    ]
    storage = [(label, trends.registry_series(name)) for name, label in TEXT_COLUMNS[:4]]
    counts = [(label, trends.registry_series(name)) for name, label in TEXT_COLUMNS[4:]]
    parts += ["<h2>Registry storage</h2>", line_chart("Registry storage over time", times, storage, "bytes")]
    parts += ["<h2>Manifests and tags</h2>", line_chart("Manifests and tags over time", times, counts, "count")]
    if trends.repositories:
        repos = [(name, trends.repository_series(name, "exclusive_bytes")) for name in trends.repositories]
        title = f"Largest repositories (top {len(repos)} by exclusive bytes in the latest snapshot)"
        parts += [f"<h2>{esc(title)}</h2>", line_chart("Exclusive bytes by repository over time", times, repos,
                                                       "bytes")]
    parts += ["<h2>Snapshots</h2>", _table(trends), "</body></html>"]
    return "\n".join(parts) + "\n"


def line_chart(title: str, times: list[datetime], series: list[Series], unit: str) -> str:
    """Lines over time, x proportional to when each snapshot was taken; a gap where a value is
    unknown; ticks at 0, half and the most; the legend below, as text that wraps."""
    known = [v for _, values in series for v in values if v is not None]
    if not known:
        return f'<p class="unknown chart-missing" title="{esc(title)}">unknown: the source cannot see these</p>'
    most = max(known) or 1
    start, end = times[0].timestamp(), times[-1].timestamp()

    def x(t: datetime) -> float:
        return (LEFT + RIGHT + WIDTH) / 2 - RIGHT if end == start else \
            LEFT + (WIDTH - LEFT - RIGHT) * (t.timestamp() - start) / (end - start)

    def y(v: int) -> float:
        return BOTTOM - (BOTTOM - TOP) * v / most

    out = [f'<svg role="img" viewBox="0 0 {WIDTH} {HEIGHT}" width="{WIDTH}" height="{HEIGHT}">'
           f"<title>{esc(title)}</title>"]
    for tick in sorted({0, most // 2, most}):
        label = human_bytes(tick) if unit == "bytes" else f"{tick:,}"
        out.append(f'<line x1="{LEFT - 4}" y1="{y(tick):.1f}" x2="{WIDTH - RIGHT}" y2="{y(tick):.1f}" '
                   'stroke="#e4e4e4"/>')
        out.append(f'<text class="tick" x="{LEFT - 8}" y="{y(tick) + 4:.1f}" text-anchor="end">{esc(label)}</text>')
    out.append(f'<line x1="{LEFT}" y1="{BOTTOM}" x2="{WIDTH - RIGHT}" y2="{BOTTOM}" stroke="#888"/>')
    ticks = [times[0], times[-1]] if len(times) > 1 else times[:1]
    for i, t in enumerate(ticks):
        anchor = "start" if i == 0 and len(ticks) > 1 else "end" if i else "middle"
        out.append(f'<text class="axis-label" x="{x(t):.1f}" y="{BOTTOM + 22}" text-anchor="{anchor}">'
                   f"{esc(t.strftime('%Y-%m-%d %H:%M'))}</text>")
    for i, (name, values) in enumerate(series):
        cls = f"series-{i % len(PALETTE)}"
        path, pen = [], "M"
        for t, v in zip(times, values, strict=True):
            if v is None:
                pen = "M"
                continue
            path.append(f"{pen}{x(t):.1f} {y(v):.1f}")
            pen = "L"
        out.append(f'<g class="series" data-label="{esc(name)}"><title>{esc(name)}</title>')
        if path:
            out.append(f'<path class="line {cls}" d="{" ".join(path)}"/>')
        for t, v in zip(times, values, strict=True):
            if v is not None:
                shown = human_bytes(v) if unit == "bytes" else f"{v:,}"
                when = t.strftime("%Y-%m-%d %H:%M")
                out.append(f'<circle class="point {cls}" data-value="{v}" cx="{x(t):.1f}" cy="{y(v):.1f}" r="3">'
                           f"<title>{esc(name)}: {esc(shown)}, {esc(when)} UTC</title></circle>")
        out.append("</g>")
    out.append("</svg>")
    legend = "".join(f'<li><span class="swatch series-{i % len(PALETTE)}"></span>{esc(name)}</li>'
                     for i, (name, _) in enumerate(series))
    return "".join(out) + f'<ul class="legend">{legend}</ul>'


def _table(trends: Trends) -> str:
    head = "<th>taken</th>" + "".join(f'<th class="num">{esc(label)}</th>' for _, label in TEXT_COLUMNS)
    rows = []
    for p in reversed(trends.points):
        state = "" if p.complete else " (incomplete)"
        cells = [f'<td class="when">{value_text(human_time(p.taken_at))}{state}</td>']
        for name, _ in TEXT_COLUMNS:
            v = p.figures.get(name)
            text = "unknown" if v is None else human_bytes(v) if name.endswith("_bytes") else f"{v:,}"
            cells.append(f'<td class="num{" unknown" if v is None else ""}">{value_text(text)}</td>')
        rows.append("<tr>" + "".join(cells) + "</tr>")
    return f'<div class="scroll"><table><thead><tr>{head}</tr></thead><tbody>{"".join(rows)}</tbody></table></div>'
