"""Trends (regstat.report.trends) as text, JSON (`regstat.trends/1`) and CSV, one row per
snapshot and scope, for dashboards. The HTML page is trends_html."""

from __future__ import annotations

import json

from ..render import human_bytes, human_time, rows_csv, safe_text
from .trends import FIGURES, REPOSITORY_FIGURES, Trends

FORMAT = "regstat.trends/1"
# CSV columns: a row for the registry (repository empty), then one per followed repository.
CSV_FIGURES = tuple(dict.fromkeys(("physical_bytes", "logical_bytes", "exclusive_bytes", *FIGURES,
                                   *REPOSITORY_FIGURES)))
TEXT_COLUMNS = (
    ("physical_bytes", "physical"),
    ("logical_bytes", "logical"),
    ("orphaned_bytes", "orphaned"),
    ("reclaimable_bytes", "reclaimable"),
    ("orphaned_manifests", "orphaned manifests"),
    ("manifests", "manifests"),
    ("tags", "tags"),
)


def render_trends_json(trends: Trends) -> str:
    doc = {
        "format": FORMAT,
        "history": trends.history,
        "repositories": trends.repositories,
        "snapshots": [
            {
                "id": p.snapshot_id,
                "name": p.name,
                "taken_at": p.taken_at,
                "complete": p.complete,
                **p.figures,
                "repositories": {name: p.repositories.get(name) for name in trends.repositories},
            }
            for p in trends.points
        ],
    }
    return json.dumps(doc, indent=1) + "\n"


def render_trends_csv(trends: Trends) -> str:
    rows = []
    for p in trends.points:
        rows.append((p.taken_at, p.snapshot_id, "", *(p.figures.get(f) for f in CSV_FIGURES)))
        for name in trends.repositories:
            figures = p.repositories.get(name, {})
            rows.append((p.taken_at, p.snapshot_id, name, *(figures.get(f) for f in CSV_FIGURES)))
    return rows_csv(("taken_at", "snapshot_id", "repository", *CSV_FIGURES), rows)


def render_trends_text(trends: Trends) -> str:
    first, last = trends.points[0], trends.points[-1]
    out = [f"regstat trends: {safe_text(trends.history)}: {len(trends.points)} snapshots, "
           f"{human_time(first.taken_at)} to {human_time(last.taken_at)}", ""]
    header = ["taken", *(label for _, label in TEXT_COLUMNS)]
    cells = [[human_time(p.taken_at) + ("" if p.complete else " *"),
              *(_value(name, p.figures.get(name)) for name, _ in TEXT_COLUMNS)] for p in trends.points]
    out += _table(header, cells)
    if not all(p.complete for p in trends.points):
        out.append("  * incomplete or partial snapshot")
    if trends.repositories:
        out += ["", f"Largest repositories (exclusive bytes in the latest snapshot, top {len(trends.repositories)})"]
        cells = []
        for name in trends.repositories:
            series = trends.repository_series(name, "exclusive_bytes")
            then, now = series[0], series[-1]
            change = "" if then is None or now is None else _signed(now - then)
            cells.append([safe_text(name), _value("exclusive_bytes", then), _value("exclusive_bytes", now), change])
        out += _table(["repository", "first", "latest", "change"], cells)
    return "\n".join(out) + "\n"


def _value(name: str, value: int | None) -> str:
    if value is None:
        return "unknown"
    return human_bytes(value) if name.endswith("_bytes") else f"{value:,}"


def _signed(delta: int) -> str:
    return ("+" if delta > 0 else "-" if delta < 0 else "±") + human_bytes(abs(delta))


def _table(header: list[str], cells: list[list[str]]) -> list[str]:
    widths = [max(len(h), *(len(r[i]) for r in cells)) for i, h in enumerate(header)]
    lines = []
    for row in (header, *cells):  # the first column (a time, a name) left, the figures right
        aligned = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        lines.append(("  " + "  ".join(aligned)).rstrip())
    return lines
