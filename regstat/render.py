"""Text helpers every output shares: sizes, times, digests and untrusted strings made
readable and harmless (report, plan, explain, crawl's summary), and rows as aligned tables,
CSV and JSON (`regstat sql`).

Every string from a snapshot (repository names, media types, the source location) is
untrusted: text strips control characters, so a name cannot drive the terminal, and Markdown
escapes its syntax and HTML.
"""

from __future__ import annotations

import csv
import html
import io
import json
import re
from collections.abc import Iterable, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any


_UNITS = ("B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f]")
_MARKDOWN = re.compile(r"([\\`*_\[\]|~])")


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
        text = value
        try:
            value = datetime.fromisoformat(text.replace("Z", "+00:00"))
        except ValueError:
            return text  # shown as it is, rather than hidden
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


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


def to_json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        if value.tzinfo is not None:
            value = value.astimezone(UTC)
            return value.isoformat().replace("+00:00", "Z")
        return value.isoformat()
    if isinstance(value, date):
        return value.isoformat()
    if isinstance(value, Decimal):
        return int(value) if value == value.to_integral_value() else float(value)
    if isinstance(value, (bytes, bytearray)):
        return value.hex()
    if isinstance(value, (list, tuple)):
        return [to_json_value(v) for v in value]
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    return value


def json_default(value: Any) -> Any:
    """For json.dumps(default=...): what the encoder cannot write by itself (times, decimals,
    bytes), as to_json_value writes it."""
    converted = to_json_value(value)
    if converted is value:
        raise TypeError(f"{type(value).__name__} is not JSON serialisable")
    return converted


def json_array(rows: Iterable[dict], indent: str = "") -> str:
    """A JSON array of objects, one compact object a line, the lines indented one space more
    than `indent` (where the array's closing bracket goes). Results run to millions of rows,
    and Python's JSON encoder is written in C only for compact output: indenting each object
    was several times slower (1.0 s against 0.3 s for 111,656 repository rows)."""
    lines = [json.dumps(row, default=json_default) for row in rows]
    if not lines:
        return "[]"
    inner = f",\n{indent} "
    return f"[\n{indent} {inner.join(lines)}\n{indent}]"


def rows_json(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    """One JSON array of row objects, a row a line."""
    return json_array(dict(zip(columns, row, strict=True)) for row in rows)


def rows_csv(columns: Sequence[str], rows: Sequence[tuple]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for row in rows:
        writer.writerow(["" if v is None else _text(v) for v in row])
    return out.getvalue()


def rows_table(columns: Sequence[str], rows: Sequence[tuple], max_width: int = 80) -> str:
    """Columns aligned with spaces; numbers right-aligned; NULL spelled out."""
    cells = [[_cell(v, max_width) for v in row] for row in rows]
    widths = [len(c) for c in columns]
    for row in cells:
        widths = [max(w, len(c)) for w, c in zip(widths, row, strict=True)]
    numeric = [
        bool(rows) and all(isinstance(r[i], (int, float, Decimal)) and not isinstance(r[i], bool)
                           for r in rows if r[i] is not None)
        for i in range(len(columns))
    ]
    lines = ["  ".join(c.ljust(w) for c, w in zip(columns, widths, strict=True)).rstrip()]
    lines.append("  ".join("-" * w for w in widths))
    for row in cells:
        cells_aligned = (c.rjust(w) if n else c.ljust(w) for c, w, n in zip(row, widths, numeric, strict=True))
        lines.append("  ".join(cells_aligned).rstrip())
    lines.append(f"({len(rows)} row{'s' if len(rows) != 1 else ''})")
    return "\n".join(lines) + "\n"


def _text(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    converted = to_json_value(value)
    if isinstance(converted, (list, dict)):
        return json.dumps(converted)
    return str(converted)


def _cell(value: Any, max_width: int) -> str:
    if value is None:
        return "NULL"
    text = _text(value).replace("\n", " ")
    return text if len(text) <= max_width else text[: max_width - 1] + "…"
