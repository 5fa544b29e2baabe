"""Digests stored once: the snapshot's `digests` table and the integer ids the others hold.

A digest is 71 bytes of text ("sha256:" and 64 hex digits) that no compression shrinks below
its 32 random bytes, and every join and group-by of the analysis is on digests. So a snapshot
stores each digest once, in `digests` (digest_id, digest), with ids numbered in the digests'
sort order (0, 1, ...); every other table holds the id (`digest_id`, `manifest_id`,
`subject_id`). Because ids follow the digests' order, ordering or comparing ids gives the
same answer as ordering or comparing the digests.

Readers see either form under the logical names of `snapshot.schemas.SCHEMAS` (`digest`,
`manifest_digest`, `subject_digest`):
- `public_sql`: the digests as text, joined back from `digests` (`regstat sql`, explain,
  export: what a person reads);
- `keyed_sql`: the ids under those names (report and plan-gc: the `sql/` files never look
  inside a digest, so they run unchanged on ids), then `decode` turns the ids of a result
  back into text.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa

from .schemas import DIGEST_COLUMNS, ROWS_PER_PART, SCHEMAS, SORT_KEYS, STORED_SCHEMAS, STORED_TABLES
from .writer import PartWriter

TABLE = "digests"


def create(con: duckdb.DuckDBPyConnection, name: str, sources: list[str]) -> int:
    """Create the table `name` (digest, digest_id) in `con` from `sources`, queries of one
    column `digest` (repeats and NULLs allowed); return how many digests it holds."""
    union = " UNION ALL ".join(f"SELECT digest FROM ({s}) AS s{i}" for i, s in enumerate(sources))
    con.execute(
        f"CREATE OR REPLACE TEMP TABLE {name} AS "
        "SELECT digest, CAST(ROW_NUMBER() OVER (ORDER BY digest) - 1 AS BIGINT) AS digest_id "
        f"FROM (SELECT DISTINCT digest FROM ({union}) AS u WHERE digest IS NOT NULL) AS d"
    )
    return con.execute(f"SELECT COUNT(*) FROM {name}").fetchall()[0][0]


def digests_sql(name: str) -> str:
    """The stored `digests` table's rows from the table `create` made."""
    return f"SELECT digest_id, digest FROM {name} ORDER BY digest_id"


def encode_sql(table: str, logical: str, digests: str) -> str:
    """`logical` (a query with the columns of SCHEMAS[table]) as the stored table's rows: each
    digest column replaced by its id from `digests`, sorted by the table's sort key."""
    columns, joins = _translated(table, digests, to_ids=True)
    keys = DIGEST_COLUMNS.get(table, {})
    order = ", ".join(keys.get(c, c) for c in SORT_KEYS[table])
    return f"SELECT {', '.join(columns)} FROM ({logical}) AS t {' '.join(joins)} ORDER BY {order}"


def public_sql(table: str, stored: str, digests: str) -> str:
    """The stored table `stored` with its ids turned back into digests: SCHEMAS[table]'s columns."""
    columns, joins = _translated(table, digests, to_ids=False)
    return f"SELECT {', '.join(columns)} FROM {stored} AS t {' '.join(joins)}"


def _translated(table: str, digests: str, *, to_ids: bool) -> tuple[list[str], list[str]]:
    """Select-list items and joins with `digests` that turn the digest columns of a relation `t`
    of `table` into ids (to_ids: t in the readers' form), or its ids back into digests."""
    keys = DIGEST_COLUMNS.get(table, {})
    columns, joins = [], []
    for column in SCHEMAS[table].names:
        if column not in keys:
            columns.append(f"t.{column}")
            continue
        alias, stored = f"k_{column}", keys[column]
        if to_ids:
            columns.append(f"{alias}.digest_id AS {stored}")
            joins.append(f"LEFT JOIN {digests} AS {alias} ON {alias}.digest = t.{column}")
        else:
            columns.append(f"{alias}.digest AS {column}")
            joins.append(f"LEFT JOIN {digests} AS {alias} ON {alias}.digest_id = t.{stored}")
    return columns, joins


def keyed_sql(table: str, stored: str) -> str:
    """The stored table `stored` under SCHEMAS[table]'s column names, digest columns as ids."""
    keys = DIGEST_COLUMNS.get(table, {})
    columns = [f"{keys[c]} AS {c}" if c in keys else c for c in SCHEMAS[table].names]
    return f"SELECT {', '.join(columns)} FROM {stored}"


def is_digest_column(name: str) -> bool:
    """Whether a result column named `name` holds digests (ids, in a keyed analysis)."""
    return name == "digest" or name.endswith("_digest")


def decode_sql(query: str, columns: list[str], order: str, ids: set[str] | None = None, digests: str = TABLE) -> str:
    """`query` (result columns `columns`) with the ids in its columns `ids` (default: every
    digest column, is_digest_column) turned into digests, sorted by `order` (names of `query`'s
    columns; ids sort as their digests do, so sorting on them is sorting on the digests)."""
    ids = {c for c in columns if is_digest_column(c)} if ids is None else ids
    selected, joins = [], []
    for i, name in enumerate(columns):
        quoted = _quote_name(name)
        if name in ids:
            selected.append(f"k_{i}.digest AS {quoted}")
            joins.append(f"LEFT JOIN {digests} AS k_{i} ON k_{i}.digest_id = t.{quoted}")
        else:
            selected.append(f"t.{quoted}")
    order = ", ".join(f"t.{c.strip()}" for c in order.split(","))
    return f"SELECT {', '.join(selected)} FROM ({query}) AS t {' '.join(joins)} ORDER BY {order}"


def decode(con: duckdb.DuckDBPyConnection, table: pa.Table, digests: str = TABLE) -> pa.Table:
    """`table` with the ids in its digest columns (is_digest_column, integer typed) turned
    into digests, rows in the same order."""
    ids = {n for n in table.column_names if is_digest_column(n) and pa.types.is_integer(table.schema.field(n).type)}
    if not ids:
        return table
    con.register("_decode_input", table.append_column("_decode_row", pa.array(range(table.num_rows), pa.int64())))
    try:
        sql = decode_sql("SELECT * FROM _decode_input", table.column_names, "_decode_row", ids, digests)
        return con.sql(sql).to_arrow_table()
    finally:
        con.unregister("_decode_input")


def decode_rows(con: duckdb.DuckDBPyConnection, rows: list[dict], digests: str = TABLE) -> list[dict]:
    """`decode` for a few rows as dicts (a report's top lists)."""
    names = [k for k in (rows[0] if rows else {}) if is_digest_column(k)]
    ids = {row[k] for row in rows for k in names if isinstance(row[k], int)}
    if not ids:
        return rows
    found = dict(con.execute(f"SELECT digest_id, digest FROM {digests} WHERE digest_id IN (SELECT UNNEST(?))",
                             [sorted(ids)]).fetchall())
    for row in rows:
        for k in names:
            if isinstance(row[k], int):
                row[k] = found.get(row[k])
    return rows


def bind(
    con: duckdb.DuckDBPyConnection, globs: dict[str, str], *, keyed: bool, kind: str = "VIEW",
    missing: dict[str, dict[str, str]] | None = None,
) -> None:
    """Create `digests` and each snapshot table (SCHEMAS' names and columns) in `con` from the
    stored tables' Parquet globs: digest columns as text, or as ids with `keyed`. The columns
    in `missing` (an older snapshot's, Snapshot.missing_columns: name -> SQL value) read as
    their value."""
    stored = {}
    for name, glob in globs.items():
        relation = f"read_parquet('{quote(glob)}')"
        if missing and missing.get(name):
            values = ", ".join(f"{value} AS {column}" for column, value in missing[name].items())
            relation = f"(SELECT *, {values} FROM {relation})"
        stored[name] = relation
    con.execute(f"CREATE {kind} {TABLE} AS SELECT * FROM {stored.pop(TABLE)}")
    for name, relation in stored.items():
        sql = keyed_sql(name, relation) if keyed else public_sql(name, relation, TABLE)
        con.execute(f"CREATE {kind} {name} AS {sql}")


def write(directory: Path, tables: dict[str, pa.Table]) -> dict[str, int]:
    """Write snapshot tables given in their readers' form (SCHEMAS: digests as text; a table
    left out is empty) into `directory` as stored: `digests` plus ids. Returns row counts.
    For tables that fit in memory (tests, small tools); the crawl assembles in ranges (regstat.crawl.assemble)."""
    con = duckdb.connect()
    try:
        for name, schema in SCHEMAS.items():
            con.register(f"logical_{name}", tables.get(name, schema.empty_table()).cast(schema))
        create(con, "snapshot_digests", [
            f"SELECT {column} AS digest FROM logical_{name}"
            for name, keys in DIGEST_COLUMNS.items() for column in keys
        ])
        counts = {}
        for name in STORED_SCHEMAS:
            sql = digests_sql("snapshot_digests") if name == TABLE else encode_sql(
                name, f"SELECT * FROM logical_{name}", "snapshot_digests")
            writer = PartWriter(directory / name, STORED_SCHEMAS[name])
            writer.write_batches(con.sql(sql).to_arrow_reader(ROWS_PER_PART))
            counts[name] = writer.close()
    finally:
        con.close()
    return counts


def read(directory: Path, name: str) -> pa.Table:
    """One table of the snapshot in `directory`, in its readers' form (SCHEMAS[name])."""
    con = duckdb.connect()
    try:
        bind(con, {n: str(directory / n / "*.parquet") for n in STORED_TABLES}, keyed=False)
        order = ", ".join(SORT_KEYS[name]) if name in SORT_KEYS else "1"
        schema = STORED_SCHEMAS[TABLE] if name == TABLE else SCHEMAS[name]
        return con.sql(f"SELECT * FROM {name} ORDER BY {order}").to_arrow_table().cast(schema)
    finally:
        con.close()


def quote(text: str) -> str:
    """`text` inside a SQL string literal."""
    return text.replace("'", "''")


def _quote_name(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
