"""DuckDB over a snapshot: every table available by name, plus `errors` from snapshot.json,
the table `reachable` (regstat.reachability) and the analysis views of `sql/` (VIEWS)."""

from __future__ import annotations

import duckdb
import pyarrow as pa

from . import queries, reachability
from .errors import RegstatError
from .snapshot import Snapshot

# The analysis views, one `sql/NAME.sql` each, created in this order (DESIGN.md "Definitions").
VIEWS = ("orphaned_manifests", "unreferenced_blobs", "layer_sharing", "dedup_summary", "repository_usage")

_ERRORS_SCHEMA = pa.schema(
    [("repository", pa.string()), ("path", pa.string()), ("kind", pa.string()), ("message", pa.string())]
)


class QueryError(RegstatError):
    """A query DuckDB rejected or failed to run."""


def connect(snapshot: Snapshot, *, memory_limit: str | None = None) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per snapshot table, `errors`, the table
    `reachable` and the analysis views (VIEWS)."""
    config = {"memory_limit": memory_limit} if memory_limit else {}
    con = duckdb.connect(config=config)
    for name, glob in snapshot.tables():
        # Paths are bound here, by Python, never inside the SQL files.
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{_quote(glob)}')")
    errors = pa.Table.from_pylist(snapshot.errors, schema=_ERRORS_SCHEMA)
    con.register("errors", errors)
    reachability.materialise(con)
    for name in VIEWS:
        con.execute(f"CREATE VIEW {name} AS {queries.load(name).strip().rstrip(';')}")
    return con


def query(snapshot: Snapshot, sql: str, *, memory_limit: str | None = None) -> tuple[list[str], list[tuple]]:
    """Run one SQL statement over the snapshot; return column names and rows."""
    con = connect(snapshot, memory_limit=memory_limit)
    try:
        cursor = con.execute(sql)
        if cursor.description is None:
            return [], []
        return [d[0] for d in cursor.description], cursor.fetchall()
    except duckdb.Error as e:
        raise QueryError(f"query failed: {e}") from None
    finally:
        con.close()


def _quote(text: str) -> str:
    return text.replace("'", "''")
