"""Spark's implementation of the analysis engine (regstat.analysis.engine.Engine): the same
`sql/` files, run on Spark SQL (`report --engine spark`, `plan-gc --engine spark`).

- Every statement goes through `translate` (sqlglot, DuckDB's dialect to Spark's): the one
  place where a dialect difference is handled, never a second copy of a query.
- Views are temporary views, resolved by name when read, as DuckDB's are.
- Tables are DataFrames computed once and cut from their lineage (localCheckpoint), kept
  under their name as temporary views: an insert is a union, computed once in turn, so an
  iterated step (reachability) never grows a longer plan.
- A plan's actions are sorted and written by Spark as Parquet, one part file per range of the
  sort, which the driver then reads in order and numbers (write_numbered).

Only the `spark` extra (pyspark, sqlglot) imports this module.
"""

from __future__ import annotations

from collections.abc import Sequence
from functools import cache
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import sqlglot
from pyspark.sql import DataFrame, SparkSession

from ..snapshot import Snapshot, digest_ids
from .engine import RowGroups, SparkOptions
from .spark_session import start


def open_spark(options: SparkOptions) -> Spark:
    """An engine on the Spark session `options` reaches (the running one, if there is one)."""
    return Spark(start(options))


@cache
def translate(sql: str) -> str:
    """A query of `sql/` (DuckDB's dialect, portable: docs/design.md "Portable SQL") in Spark's."""
    return sqlglot.transpile(sql.strip().rstrip(";"), read="duckdb", write="spark")[0]


class Spark:
    """An analysis in a Spark session. The session is shared (getOrCreate): closing the engine
    drops the names it made, never the session."""

    name = "spark"

    def __init__(self, session: SparkSession) -> None:
        self.session = session
        self._tables: dict[str, DataFrame] = {}
        self._views: set[str] = set()

    def bind_snapshot(self, snapshot: Snapshot, *, keyed: bool) -> None:
        missing = snapshot.missing_columns
        for name, glob in snapshot.tables():
            # Read once: every query reads these, and a snapshot never changes.
            stored = f"stored_{name}"
            self._table(stored, self.session.read.parquet(glob))
            if missing.get(name):
                values = ", ".join(f"{value} AS {column}" for column, value in missing[name].items())
                self.create_view(f"{stored}_read", f"SELECT *, {values} FROM {stored}")
                stored += "_read"
            if name == digest_ids.TABLE:
                self.create_view(name, f"SELECT * FROM {stored}")
            else:
                self.create_view(name, digest_ids.keyed_sql(name, stored) if keyed
                                 else digest_ids.public_sql(name, stored, digest_ids.TABLE))

    def load(self, name: str, table: pa.Table) -> None:
        self._table(name, self.session.createDataFrame(table))

    def rows(self, sql: str, params: Sequence[Any] = ()) -> tuple[list[str], list[tuple]]:
        table = self.arrow(sql, params)
        return table.column_names, list(zip(*(c.to_pylist() for c in table.columns), strict=True))

    def arrow(self, sql: str, params: Sequence[Any] = ()) -> pa.Table:
        return self._sql(sql, params).toArrow()

    def create_table(self, name: str, select: str, params: Sequence[Any] = (), *, replace: bool = False) -> None:
        self._table(name, self._sql(select, params))

    def create_view(self, name: str, select: str) -> None:
        self.session.sql(f"CREATE OR REPLACE TEMPORARY VIEW {name} AS {translate(select)}")
        self._views.add(name)

    def insert(self, table: str, select: str) -> int:
        into = self._tables[table]
        # INSERT INTO's semantics: columns by position, cast to the table's types.
        added = self._sql(select).toDF(*into.columns)
        added = added.select(*(added[f.name].cast(f.dataType) for f in into.schema)).localCheckpoint()
        count = added.count()
        if count:
            self._table(table, into.unionByName(added))
        return count

    def copy_table(self, source: str, name: str) -> None:
        self._table(name, self._tables[source])  # a table is never changed in place: sharing is copying

    def rename_table(self, table: str, name: str) -> None:
        self._table(name, self._tables[table])
        self.drop_tables(table)

    def drop_tables(self, *tables: str) -> None:
        for table in tables:
            if self._tables.pop(table, None) is not None:
                self.session.catalog.dropTempView(table)

    def materialise_view(self, view: str) -> None:
        if view not in self._tables:
            self._table(view, self.session.table(view))
            self._views.discard(view)

    def preserve_insertion_order(self, preserve: bool) -> None:
        """Nothing: Spark keeps no order but a sort's."""

    def write_numbered(self, relation: str, order: Sequence[str], leave_out: Sequence[str], schema: pa.Schema,
                       directory: Path, batch_rows: int, *, release: Sequence[str] = ()) -> Path:
        """Spark joins the digests to the ids and sorts on the ids (which sort as their digests
        do), writing the rows as Parquet part files, one per range of the sort, in order; the
        driver reads them in that order, numbering the rows, into the file. `directory` must
        be one the cluster's executors and the driver share (local mode: any)."""
        columns = [c for c in self.session.table(relation).columns if c not in leave_out]
        selected = ", ".join("d.digest AS digest" if c == "digest" else f"a.{c}" for c in columns)
        keys = ", ".join(f"a.{column} ASC NULLS LAST" for column in order)
        parts = directory / "sorted"
        self.session.sql(
            f"SELECT {selected} FROM {relation} AS a LEFT JOIN {digest_ids.TABLE} AS d ON d.digest_id = a.digest "
            f"ORDER BY {keys}"
        ).write.parquet(str(parts))
        self.drop_tables(*release)
        path = directory / "numbered.parquet"
        position = 0
        with RowGroups(path, schema, batch_rows) as writer:
            for part in sorted(parts.glob("part-*.parquet")):
                for batch in pq.ParquetFile(part).iter_batches(batch_rows):
                    numbers = pa.array(range(position, position + batch.num_rows), pa.int64())
                    position += batch.num_rows
                    writer.write({"position": numbers, **dict(zip(batch.schema.names, batch.columns, strict=True))})
        return path

    def interrupt(self) -> None:
        """Cancel the running jobs (Ctrl-C: regstat.analysis.connection.interrupt_all)."""
        self.session.sparkContext.cancelAllJobs()

    def close(self) -> None:
        for name in (*self._tables, *self._views):
            self.session.catalog.dropTempView(name)
        self._tables.clear()
        self._views.clear()

    def _sql(self, sql: str, params: Sequence[Any] = ()) -> DataFrame:
        return self.session.sql(translate(sql), args=list(params) or None)

    def _table(self, name: str, frame: DataFrame) -> None:
        """Keep `frame`'s rows, computed now and cut from their lineage, as the table `name`."""
        frame = frame.localCheckpoint()
        frame.createOrReplaceTempView(name)
        self._tables[name] = frame
