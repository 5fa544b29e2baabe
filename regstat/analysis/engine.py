"""The engine an analysis runs on, as one interface (`Engine`), and DuckDB's implementation
(`DuckDB`): the statements that are an engine's own, in one place. Creating, filling, renaming
and dropping the intermediate tables of an analysis, binding a snapshot's Parquet files, and
writing a plan's sorted, numbered actions differ between engines; the queries themselves are
portable and live in `sql/` (docs/design.md "Portable SQL"), and every engine runs them
unchanged. Spark's implementation is regstat.analysis.spark.

Table and view names passed here are regstat's own identifiers, never user input.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..errors import RegstatError
from ..snapshot import Snapshot, digest_ids

ENGINES = ("duckdb", "spark")


class EngineUnavailable(RegstatError):
    """--engine spark where pyspark is not installed, or a snapshot at a URL only Spark reads
    without it (a usage error)."""


@dataclass(frozen=True)
class SparkOptions:
    """How to reach Spark (`--spark-master`, `--spark-conf`): a master URL, and settings."""

    master: str = "local[*]"
    conf: dict[str, str] = field(default_factory=dict)


class Engine(Protocol):
    """What an analysis asks of an engine. Tables are the engine's own (in memory, spilled);
    views are queries by name, resolved when read, so a view over `reachable` sees whichever
    `reachable` is current."""

    name: str

    def bind_snapshot(self, snapshot: Snapshot, *, keyed: bool) -> None:
        """The snapshot's tables under their logical names (SCHEMAS), and `digests`, over its
        Parquet files; digest columns as text, or as ids with `keyed` (regstat.snapshot.digest_ids)."""

    def load(self, name: str, table: pa.Table) -> None:
        """The table `name` (replacing one of that name) holding the rows of `table`."""

    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        """Run the query `sql` (bound to `params`, `?` in it); return its column names and rows."""

    def arrow(self, sql: str) -> pa.Table:
        """Run the query `sql`; return its rows as Arrow."""

    def create_table(self, name: str, select: str, params: Sequence[Any] = (), *, replace: bool = False) -> None:
        """Create the table `name` holding the rows of the query `select` (bound to `params`)."""

    def create_view(self, name: str, select: str) -> None: ...

    def insert(self, table: str, select: str) -> int:
        """Append the rows of `select` to `table`; return how many."""

    def copy_table(self, source: str, name: str) -> None:
        """Create the table `name` as a copy of `source` (which later steps replace)."""

    def rename_table(self, table: str, name: str) -> None: ...

    def drop_tables(self, *tables: str) -> None:
        """Drop intermediate tables no later step reads, freeing their memory."""

    def materialise_view(self, view: str) -> None:
        """Replace the view `view` by a table of its rows, so that the views and queries reading
        it compute it once. Nothing happens if it is a table already."""

    def preserve_insertion_order(self, preserve: bool) -> None:
        """Whether tables keep the order rows were inserted in (every result whose order
        matters is sorted: not preserving it saves memory and time)."""

    def write_numbered(self, relation: str, order: Sequence[str], leave_out: Sequence[str], schema: pa.Schema,
                       directory: Path, batch_rows: int, *, release: Sequence[str] = ()) -> Path:
        """Write the rows of `relation`, sorted on the columns `order` (ascending, NULLs last),
        without the columns `leave_out`, each numbered by its place (`position`, from 0) and
        with its `digest` column's id turned into the digest, to a Parquet file of `schema` in
        `directory`, a batch of `batch_rows` at a time; return its path. The tables `release`
        (which `relation` reads) are dropped once its rows are sorted."""

    def close(self) -> None: ...


def one_row(cursor: duckdb.DuckDBPyConnection) -> tuple[Any, ...]:
    """The row of a statement that returns exactly one (an aggregate without GROUP BY, an
    INSERT's count). DuckDB types `fetchone()` as optional; here no row is a bug, not an answer."""
    row = cursor.fetchone()
    if row is None:
        raise AssertionError("a statement that returns one row returned none")
    return row


def first_row(db: Engine, sql: str) -> dict[str, Any]:
    """The one row of the query `sql`, by column name."""
    columns, rows = db.rows(sql)
    if not rows:
        raise AssertionError("a query that returns one row returned none")
    return dict(zip(columns, rows[0], strict=True))


def decode_rows(db: Engine, rows: list[dict]) -> list[dict]:
    """`digest_ids.decode` for a few rows as dicts (a report's top lists), on any engine."""
    names = [k for k in (rows[0] if rows else {}) if digest_ids.is_digest_column(k)]
    ids = sorted({row[k] for row in rows for k in names if isinstance(row[k], int)})
    if not ids:
        return rows
    found = dict(db.rows(f"SELECT digest_id, digest FROM {digest_ids.TABLE} "
                         f"WHERE digest_id IN ({', '.join(str(int(i)) for i in ids)})")[1])
    for row in rows:
        for k in names:
            if isinstance(row[k], int):
                row[k] = found.get(row[k])
    return rows


def use_schema(con: duckdb.DuckDBPyConnection, schema: str) -> None:
    """Create `schema` if need be and make it the current one: tables and views created next
    land in it, and DuckDB resolves the names inside a view in the view's own schema, so two
    snapshots' views of the same names live side by side (regstat diff)."""
    con.execute(f"CREATE SCHEMA IF NOT EXISTS {schema}")
    con.execute(f"USE {schema}")


class DuckDB:
    """An analysis in a DuckDB connection (`con`: analysis.connect's, which also serves `regstat
    sql`, explain and diff). With `materialise`, the snapshot's tables are copies, not views
    over its Parquet files (a database file that outlives the snapshot's path: export-db)."""

    name = "duckdb"

    def __init__(self, con: duckdb.DuckDBPyConnection, *, materialise: bool = False) -> None:
        self.con = con
        self._kind = "TABLE" if materialise else "VIEW"

    def bind_snapshot(self, snapshot: Snapshot, *, keyed: bool) -> None:
        # Paths are bound here, by Python, never inside the SQL files.
        digest_ids.bind(self.con, dict(snapshot.tables()), keyed=keyed, kind=self._kind,
                        missing=snapshot.missing_columns)

    def load(self, name: str, table: pa.Table) -> None:
        self.con.register("_arrow_rows", table)
        try:  # a table, so it lands in the current schema (connect_pair)
            self.con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM _arrow_rows")
        finally:
            self.con.unregister("_arrow_rows")

    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        cursor = self.con.execute(sql, list(params))
        return [d[0] for d in cursor.description or ()], cursor.fetchall()

    def arrow(self, sql: str) -> pa.Table:
        return self.con.sql(sql).to_arrow_table()

    def create_table(self, name: str, select: str, params: Sequence[Any] = (), *, replace: bool = False) -> None:
        self.con.execute(f"CREATE {'OR REPLACE ' if replace else ''}TABLE {name} AS {bare(select)}", list(params))

    def create_view(self, name: str, select: str) -> None:
        self.con.execute(f"CREATE VIEW {name} AS {bare(select)}")

    def insert(self, table: str, select: str) -> int:
        return one_row(self.con.execute(f"INSERT INTO {table} {bare(select)}"))[0]

    def copy_table(self, source: str, name: str) -> None:
        self.con.execute(f"CREATE TABLE {name} AS SELECT * FROM {source}")

    def rename_table(self, table: str, name: str) -> None:
        self.con.execute(f"ALTER TABLE {table} RENAME TO {name}")

    def drop_tables(self, *tables: str) -> None:
        for table in tables:
            self.con.execute(f"DROP TABLE IF EXISTS {table}")

    def materialise_view(self, view: str) -> None:
        is_view = self.con.execute(
            "SELECT count(*) FROM duckdb_views() "
            "WHERE view_name = ? AND schema_name = current_schema() AND NOT internal",
            [view],
        ).fetchall()[0][0]
        if is_view:
            self.con.execute(f"CREATE TABLE {view}__rows AS SELECT * FROM {view}")
            self.con.execute(f"DROP VIEW {view}")
            self.con.execute(f"ALTER TABLE {view}__rows RENAME TO {view}")

    def preserve_insertion_order(self, preserve: bool) -> None:
        self.con.execute(f"SET preserve_insertion_order = {'true' if preserve else 'false'}")

    def write_numbered(self, relation: str, order: Sequence[str], leave_out: Sequence[str], schema: pa.Schema,
                       directory: Path, batch_rows: int, *, release: Sequence[str] = ()) -> Path:
        """In three passes, none holding the rows or the digests whole (at 100M descriptors: 30M
        actions, 55M digests): DuckDB sorts the rows on their keys (ids sort as their digests
        do) into files, whose row numbers are then their positions; DuckDB looks their ids up
        (a join built on the rows' ids, not on the digests) and sorts the digests found by
        position; both are then read side by side, a batch at a time, into the file.

        The rows are sorted a value of the first key at a time (a plan's kind of action), one
        file each, in that key's order: each sort then compares the other keys only, and
        those a kind leaves NULL cost nothing (at 10M descriptors, 3M actions: the sorted
        write took 5.3-6.4 CPU s in one sort, 2.8 in these)."""
        first, rest = order[0], [f"{column} ASC NULLS LAST" for column in order[1:]]
        values = [row[0] for row in self.con.execute(
            f"SELECT DISTINCT {first} FROM {relation} ORDER BY {first} ASC NULLS LAST").fetchall()]
        self.preserve_insertion_order(True)  # the sorted rows are written in order
        parts: list[Path] = []
        for value in values:
            part = directory / f"sorted-{len(parts):05d}.parquet"
            self.con.execute(
                f"COPY (SELECT * EXCLUDE ({', '.join(leave_out)}) FROM {relation} "
                f"WHERE {first} IS NOT DISTINCT FROM ? {'ORDER BY ' + ', '.join(rest) if rest else ''}) "
                f"TO '{digest_ids.quote(str(part))}' (FORMAT parquet, COMPRESSION lz4)", [value])
            parts.append(part)
        self.drop_tables(*release)
        path = directory / "numbered.parquet"
        with RowGroups(path, schema, batch_rows) as writer:
            if parts:
                rows = _Rows(self._digests(parts, batch_rows))
                position = 0
                for part in parts:
                    for batch in pq.ParquetFile(part).iter_batches(batch_rows):
                        (digest,) = rows.take(batch.num_rows)
                        numbers = pa.array(range(position, position + batch.num_rows), pa.int64())
                        position += batch.num_rows
                        writer.write({"position": numbers, **dict(zip(batch.schema.names, batch.columns, strict=True)),
                                      "digest": digest})
        for part in parts:
            part.unlink()
        return path

    def _digests(self, parts: Sequence[Path], batch_rows: int) -> pa.RecordBatchReader:
        """The digests of the `digest` ids of the files `parts`, in the files' order, then their rows'."""
        read = " UNION ALL ".join(
            f"SELECT {i} AS part, file_row_number AS row, digest "
            f"FROM read_parquet('{digest_ids.quote(str(p))}', file_row_number = true)"
            for i, p in enumerate(parts))
        return self.con.sql(
            f"SELECT d.digest FROM ({read}) AS a LEFT JOIN {digest_ids.TABLE} AS d ON d.digest_id = a.digest "
            f"ORDER BY a.part, a.row"
        ).to_arrow_reader(batch_rows)

    def close(self) -> None:
        self.con.close()


class RowGroups:
    """A Parquet file of `schema` written in row groups of exactly `rows` rows (the last one
    shorter) whatever batches its rows come in, so that its bytes depend on its rows alone, not
    on how an engine split them."""

    def __init__(self, path: Path, schema: pa.Schema, rows: int) -> None:
        self._writer = pq.ParquetWriter(path, schema, compression="zstd")
        self._schema, self._rows = schema, rows
        self._held = schema.empty_table()

    def write(self, columns: dict[str, pa.Array]) -> None:
        """Add rows, given as columns by name (cast to the schema: an engine marks a column
        required, or types it, by what it saw of these rows)."""
        batch = pa.RecordBatch.from_arrays([columns[f.name].cast(f.type) for f in self._schema], schema=self._schema)
        self._held = pa.concat_tables([self._held, pa.Table.from_batches([batch])])
        while self._held.num_rows >= self._rows:
            self._flush(self._rows)

    def _flush(self, n: int) -> None:
        self._writer.write_table(self._held.slice(0, n).combine_chunks(), row_group_size=n)
        self._held = self._held.slice(n)

    def __enter__(self) -> RowGroups:
        return self

    def __exit__(self, *_: object) -> None:
        if self._held.num_rows:
            self._flush(self._held.num_rows)
        self._writer.close()


def bare(select: str) -> str:
    """A query file's SELECT without its trailing semicolon, ready to wrap."""
    return select.strip().rstrip(";")


class _Rows:
    """A record-batch stream, taken `n` rows at a time whatever its batches."""

    def __init__(self, reader: pa.RecordBatchReader) -> None:
        self._reader = reader
        self._held = reader.schema.empty_table()

    def take(self, n: int) -> list[pa.Array]:
        """The next `n` rows' columns."""
        while self._held.num_rows < n:
            batch = self._reader.read_next_batch()  # StopIteration: fewer rows than promised
            self._held = pa.concat_tables([self._held, pa.Table.from_batches([batch])])
        taken, self._held = self._held.slice(0, n), self._held.slice(n)
        return [column.combine_chunks() for column in taken.columns]
