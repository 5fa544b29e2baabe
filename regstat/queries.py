"""The SQL files in `sql/`, loaded by name (SQL is data: one query per file), and views
made tables when several queries read them."""

from __future__ import annotations

from functools import cache
from importlib import resources

import duckdb


@cache
def load(name: str) -> str:
    """The text of `sql/NAME.sql`."""
    return (resources.files("regstat.sql") / f"{name}.sql").read_text()


def names() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files("regstat.sql").iterdir() if p.name.endswith(".sql"))


def materialise_view(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Replace the view `view` by a table of its rows, so that the views and queries reading
    it compute it once. Nothing happens if it is a table already."""
    is_view = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND NOT internal", [view]
    ).fetchall()[0][0]
    if is_view:
        con.execute(f"CREATE TABLE {view}__rows AS SELECT * FROM {view}")
        con.execute(f"DROP VIEW {view}")
        con.execute(f"ALTER TABLE {view}__rows RENAME TO {view}")
