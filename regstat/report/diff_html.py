"""A Diff as one self-contained HTML page, styled as the report's (regstat.report.html: inline
CSS, no scripts, fonts or links): the headline, the figures then and now, a chart of what
each repository's referenced bytes did, and the lists. Every snapshot string is escaped."""

from __future__ import annotations

from ..render import human_bytes
from .diff import Diff
from .diff_common import Table, changes_text, figure_rows, headline, notes, side_line, source_line, tables, title
from .html import esc, page_start, prose, value_text

CHART_WIDTH = 600
LABEL_WIDTH = 170
LABEL_CHARACTERS = 20
ROW_HEIGHT = 24
CHART_ROWS = 15

_DIFF_CSS = """
.grew { fill: #b3261e; } .shrank { fill: #4d8b57; }
td.grew { color: #b3261e; } td.shrank { color: #2e6b38; }
svg .zero { stroke: #888; stroke-width: 1; } td.name { white-space: nowrap; }
table.wide { font-size: .92em; } table.wide th, table.wide td { padding: .25em .45em; }
"""


def render_html(diff: Diff) -> str:
    growth = diff.physical_growth
    parts = [
        *page_start(f"regstat diff {diff.old['id']} → {diff.new['id']}", _DIFF_CSS),
        f"<h1>regstat diff: {esc(source_line(diff))}</h1>",
        f'<p class="meta">old: {value_text(side_line(diff.old))}<br>new: {value_text(side_line(diff.new))}</p>',
    ]
    if diff.warnings:
        parts.append('<div class="banner" role="alert">' + "".join(f"<p>{prose(w)}</p>" for w in diff.warnings)
                     + "</div>")
    parts.append(f'<div class="headline"><p class="figure">{value_text(headline(diff))}</p>'
                 f"<p>{prose(changes_text(diff))}</p></div>")
    parts.append(_figures(diff))
    if growth or diff.repositories:
        parts += ["<h2>Referenced bytes by repository, then to now</h2>", _change_chart(diff)]
    for table in tables(diff):
        parts += [f"<h2>{esc(title(table))}</h2>", _table(table)]
    parts.append("</body></html>")
    return "\n".join(parts) + "\n"


def _figures(diff: Diff) -> str:
    rows = ['<tr><th></th><th class="num">then</th><th class="num">now</th><th class="num">change</th></tr>']
    for label, then, now, change in figure_rows(diff):
        kind = "grew" if change.startswith("+") else "shrank" if change.startswith("-") else ""
        rows.append(f"<tr><td>{esc(label)}</td><td class=\"num\">{value_text(then)}</td>"
                    f"<td class=\"num\">{value_text(now)}</td><td class=\"num {kind}\">{value_text(change)}</td></tr>")
    out = '<div class="scroll"><table class="summary"><tbody>' + "".join(rows) + "</tbody></table></div>"
    if notes(diff):
        out += '<ul class="notes">' + "".join(f"<li>{prose(line)}</li>" for line in notes(diff)) + "</ul>"
    return out


def _table(table: Table) -> str:
    if table.rows is None:
        return '<p class="unknown">unknown: a source cannot see untagged manifests</p>'
    if not table.rows:
        return "<p>(none)</p>"
    head = "".join(('<th class="num">' if num else "<th>") + f"{esc(h)}</th>"
                   for h, num in zip(table.headers, table.numeric, strict=True))
    body = []
    for row in table.rows:
        # The first column (a repository or a digest) stays on one line.
        cells = "".join(('<td class="num">' if num else "<td>" if i else '<td class="name">') + f"{value_text(c)}</td>"
                        for i, (c, num) in enumerate(zip(row, table.numeric, strict=True)))
        body.append(f"<tr>{cells}</tr>")
    caption = f'<p class="notes">{prose(table.caption)}</p>' if table.caption else ""
    wide = ' class="wide"' if len(table.headers) > 6 else ""
    rows = "".join(body)
    return f'<div class="scroll"><table{wide}><thead><tr>{head}</tr></thead><tbody>{rows}</tbody>' \
        f"</table></div>{caption}"


def _change_chart(diff: Diff) -> str:
    """Bars from a zero line: right (red) where a repository references more bytes than
    before, left (green) where less; the figure beside a bar is the change."""
    rows = [r for r in diff.repositories if r["referenced_bytes_change"]][:CHART_ROWS]
    if not rows:
        return "<p>(no repository's referenced bytes changed)</p>"
    largest = max(abs(r["referenced_bytes_change"]) for r in rows)
    span = (CHART_WIDTH - LABEL_WIDTH) / 2 - 70  # room for the figure on either side
    zero = LABEL_WIDTH + (CHART_WIDTH - LABEL_WIDTH) / 2
    height = ROW_HEIGHT * len(rows) + 8
    parts = [f'<svg viewBox="0 0 {CHART_WIDTH} {height}" role="img" '
             f'aria-label="change of referenced bytes by repository">']
    for i, r in enumerate(rows):
        change = r["referenced_bytes_change"]
        y = 4 + i * ROW_HEIGHT
        width = max(1.0, span * abs(change) / largest)
        x = zero if change > 0 else zero - width
        name = r["repository"]
        short = name if len(name) <= LABEL_CHARACTERS else name[: LABEL_CHARACTERS - 1] + "…"
        sign = "+" if change > 0 else "-"
        label_x, anchor = (x + width + 4, "start") if change > 0 else (x - 4, "end")
        parts.append(f"<g><title>{esc(name)}: {sign}{esc(human_bytes(abs(change)))}</title>"
                     f'<text x="0" y="{y + 16}">{esc(short)}</text>'
                     f'<rect class="{"grew" if change > 0 else "shrank"}" x="{x:.1f}" y="{y + 3}" '
                     f'width="{width:.1f}" height="{ROW_HEIGHT - 8}"/>'
                     f'<text class="axis-label" x="{label_x:.1f}" y="{y + 16}" text-anchor="{anchor}">'
                     f"{sign}{esc(human_bytes(abs(change)))}</text></g>")
    parts.append(f'<line class="zero" x1="{zero}" y1="0" x2="{zero}" y2="{height}"/></svg>')
    return "".join(parts)
