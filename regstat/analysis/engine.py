"""The statements that are DuckDB's own, in one place: creating, filling, renaming and dropping
the intermediate tables of an analysis, its settings, and the Parquet files the planner sorts
its actions through. The queries themselves are portable and live in `sql/` (docs/design.md
"Portable SQL"); a second engine replaces this module, not the queries nor their callers.

Table and view names passed here are regstat's own identifiers, never user input.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from ..snapshot import digest_ids


def create_table(
    con: duckdb.DuckDBPyConnection, name: str, select: str, params: Sequence[Any] = (), *, replace: bool = False,
) -> None:
    """Create the table `name` holding the rows of the query `select` (bound to `params`)."""
    con.execute(f"CREATE {'OR REPLACE ' if replace else ''}TABLE {name} AS {_bare(select)}", list(params))


def create_view(con: duckdb.DuckDBPyConnection, name: str, select: str) -> None:
    con.execute(f"CREATE VIEW {name} AS {_bare(select)}")


def insert(con: duckdb.DuckDBPyConnection, table: str, select: str) -> int:
    """Append the rows of `select` to `table`; return how many."""
    return one_row(con.execute(f"INSERT INTO {table} {_bare(select)}"))[0]


def one_row(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a statement that returns exactly one (an aggregate without GROUP BY, an
    INSERT's count). DuckDB types `fetchone()` as optional; here no row is a bug, not an answer."""
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("a statement that returns one row returned none")
    return row


def copy_table(con: duckdb.DuckDBPyConnection, source: str, name: str) -> None:
    """Create the table `name` as a copy of `source` (which later steps replace)."""
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM {source}")


def rename_table(con: duckdb.DuckDBPyConnection, table: str, name: str) -> None:
    con.execute(f"ALTER TABLE {table} RENAME TO {name}")


def drop_tables(con: duckdb.DuckDBPyConnection, *tables: str) -> None:
    """Drop intermediate tables no later step reads, freeing their memory."""
    for table in tables:
        con.execute(f"DROP TABLE IF EXISTS {table}")


def materialise_view(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Replace the view `view` by a table of its rows, so that the views and queries reading
    it compute it once. Nothing happens if it is a table already."""
    is_view = con.execute(
        "SELECT count(*) FROM duckdb_views() WHERE view_name = ? AND schema_name = current_schema() AND NOT internal",
        [view],
    ).fetchall()[0][0]
    if is_view:
        con.execute(f"CREATE TABLE {view}__rows AS SELECT * FROM {view}")
        con.execute(f"DROP VIEW {view}")
        con.execute(f"ALTER TABLE {view}__rows RENAME TO {view}")


def create_table_from_arrow(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    """Create the table `name` (in the current schema) holding the rows of `table`."""
    con.register("_arrow_rows", table)
    try:
        con.execute(f"CREATE TABLE {name} AS SELECT * FROM _arrow_rows")
    finally:
        con.unregister("_arrow_rows")


def use_schema(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """Create `schema` if need be and make it the current one: tables and views created next
    land in it, and DuckDB resolves the names inside a view in the view's own schema, so two
    snapshots' views of the same names live side by side (regstat diff)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"USE {schema}")


def preserve_insertion_order(con: duckdb.DuckDBPyConnection, preserve: bool) -> None:
    """Whether tables keep the order rows were inserted in. Every result whose order matters
    is sorted (ORDER BY); not preserving it saves memory and time at millions of rows."""
    con.execute(f"SET preserve_insertion_order = {'true' if preserve else 'false'}")


def write_sorted(
    con: duckdb.DuckDBPyConnection, relation: str, order: Sequence[str], leave_out: Sequence[str], path: Path,
) -> None:
    """Write the rows of `relation`, sorted on `order`, without the columns `leave_out`, to the
    Parquet file `path`, in that order."""
    preserve_insertion_order(con, True)  # the sorted rows are written in order
    con.execute(f"COPY (SELECT * EXCLUDE ({', '.join(leave_out)}) FROM {relation} ORDER BY {', '.join(order)}) "
                f"TO '{digest_ids.quote(str(path))}' (FORMAT parquet, COMPRESSION lz4)")


def numbered_digests(con: duckdb.DuckDBPyConnection, path: Path, batch_rows: int) -> pa.RecordBatchReader:
    """The rows of the Parquet file `path` (written by write_sorted) in order, each as its row
    number (`position`, from 0) and its `digest` column's id turned into the digest."""
    return con.sql(
        f"SELECT a.file_row_number AS position, d.digest "
        f"FROM read_parquet('{digest_ids.quote(str(path))}', file_row_number = true) AS a "
        f"LEFT JOIN {digest_ids.TABLE} AS d ON d.digest_id = a.digest ORDER BY a.file_row_number"
    ).to_arrow_reader(batch_rows)


def _bare(select: str) -> str:
    """A query file's SELECT without its trailing semicolon, ready to wrap."""
    return select.strip().rstrip(";")
