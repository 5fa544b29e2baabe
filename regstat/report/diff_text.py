"""A Diff as terminal text (control characters shown as \\xNN) and as Markdown for a chat
message: short, the headline, the figures and the first rows of each change."""

from __future__ import annotations

from ..render import markdown_text, safe_text
from .diff import Diff
from .diff_common import Table, changes_text, figure_rows, headline, notes, side_line, source_line, tables, title

MARKDOWN_ROWS = 5  # rows of each list in a chat message


def render_text(diff: Diff) -> str:
    out = [
        "regstat diff",
        f"  old: {safe_text(side_line(diff.old))}",
        f"  new: {safe_text(side_line(diff.new))}",
        f"source: {safe_text(source_line(diff))}",
    ]
    out += [f"!! {safe_text(w)}" for w in diff.warnings]
    out += ["", headline(diff), f"  {changes_text(diff)}", ""]
    rows = [("", "then", "now", "change"), *figure_rows(diff)]
    widths = [max(len(r[i]) for r in rows) for i in range(4)]
    for r in rows:
        out.append("  " + "  ".join(r[0].ljust(widths[0]) if i == 0 else r[i].rjust(widths[i]) for i in range(4)))
    out += [f"  * {safe_text(line)}" for line in notes(diff)]
    for table in tables(diff):
        out += ["", title(table), *_text_table(table)]
        if table.rows and table.caption:
            out.append(f"  ({table.caption})")
    return "\n".join(line.rstrip() for line in out) + "\n"


def _text_table(table: Table) -> list[str]:
    if table.rows is None:
        return ["  unknown (a source cannot see untagged manifests)"]
    if not table.rows:
        return ["  (none)"]
    cells = [[safe_text(c) for c in row] for row in table.rows]
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(table.headers)]
    lines = []
    for row in [list(table.headers), *cells]:
        aligned = zip(row, widths, table.numeric, strict=True)
        lines.append("  " + "  ".join(c.rjust(w) if num else c.ljust(w) for c, w, num in aligned))
    return lines


def render_markdown(diff: Diff) -> str:
    out = [
        f"**regstat diff** of {markdown_text(source_line(diff))}: "
        f"`{safe_text(diff.old['id'])}` → `{safe_text(diff.new['id'])}`",
        "",
    ]
    out += [f"> ⚠ {markdown_text(w)}" for w in diff.warnings]
    out += [f"**{markdown_text(headline(diff))}**", "", markdown_text(changes_text(diff)), ""]
    out += ["| | then | now | change |", "|---|---:|---:|---:|"]
    out += [f"| {' | '.join(markdown_text(c) for c in row)} |" for row in figure_rows(diff)]
    for table in tables(diff, limit=MARKDOWN_ROWS):
        if table.rows:  # a chat message leaves out what did not change
            out += ["", f"**{markdown_text(title(table))}**", ""]
            out.append("| " + " | ".join(table.headers) + " |")
            out.append("|" + "|".join("---:" if num else "---" for num in table.numeric) + "|")
            out += ["| " + " | ".join(markdown_text(c) for c in row) + " |" for row in table.rows]
            if table.caption:
                out += ["", f"_{markdown_text(table.caption)}_"]
    return "\n".join(out) + "\n"
