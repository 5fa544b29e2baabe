"""DuckDB over a snapshot: every table available by name, plus `errors` and `snapshot_info`
from snapshot.json, the table `reachable` (regstat.analysis.reachability) and the analysis views of
`sql/` (VIEWS).

`regstat sql` only reads: a query must be one SELECT (or EXPLAIN of one); anything that could
write (COPY, CREATE, INSERT, ATTACH, EXPORT, SET, ...) is refused before it runs, so a query
can never change the snapshot, which stays immutable (docs/snapshot.md).
"""

from __future__ import annotations

import os
import re
import tempfile
import weakref
from collections.abc import Mapping, Sequence
from typing import Any

import duckdb
import pyarrow as pa

from .. import queries
from ..errors import RegstatError
from ..snapshot import TABLES, Snapshot, digest_ids
from . import engine, reachability, scope
from .duckdb_failure import duckdb_failure
from .engine import SparkOptions

# The analysis views, one `sql/NAME.sql` each, created in this order (docs/design.md "Definitions");
# a view may use the ones before it.
VIEWS = (
    "manifest_edges",
    "manifest_references",
    "repository_references",
    "blob_references",
    "manifest_exclusive_bytes",
    "orphan_reasons",
    "orphaned_manifests",
    "unreferenced_blobs",
    "layer_sharing",
    "dedup_summary",
    "repository_usage",
    "media_types",
    "largest_layers",
    "stale_uploads",
)

# Tables regstat adds to the snapshot's own: from snapshot.json, the media types' ranks (a
# table, not a view: a dozen rows the views join millions of descriptors with, and DuckDB
# sizes a join by what it knows of each side), and reachability.
MEDIA_TYPE_RANKS = "media_type_ranks"
EXTRA_TABLES = ("errors", "snapshot_info", MEDIA_TYPE_RANKS, reachability.TABLE)

_TIME = pa.timestamp("us", tz="UTC")
_ERRORS_SCHEMA = pa.schema(
    [("repository", pa.string()), ("path", pa.string()), ("kind", pa.string()), ("message", pa.string())]
)
# One row. taken_at is when the crawl finished: ages (stale_uploads) are measured to it.
_INFO_SCHEMA = pa.schema(
    [
        ("id", pa.string()),
        ("source_kind", pa.string()),
        ("source_location", pa.string()),
        ("started_at", _TIME),
        ("taken_at", _TIME),
        ("complete", pa.bool_()),
        ("partial", pa.bool_()),
    ]
)


class QueryError(RegstatError):
    """A query DuckDB rejected or failed to run, or one that would write."""


def connect(
    snapshot: Snapshot, *, memory_limit: str | None = None, reachable: bool = True, keyed: bool = False,
    ranks: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with a view per snapshot table, `digests`, `errors`,
    `snapshot_info`, the tables `media_type_ranks` and `reachable`, and the analysis views (VIEWS).

    With `reachable=False` the table `reachable` is left empty, and with `ranks=False` the
    table `media_type_ranks`: call `need_tables` before a query (`regstat sql`), so that
    queries not using them skip computing them. With `keyed`, every digest column holds the
    digest's id (regstat.snapshot.digest_ids): joins and group-bys run on integers;
    `digest_ids.decode` turns a result's ids back into digests.
    """
    con = track(duckdb.connect(config=duckdb_config(memory_limit)))
    bind(engine.DuckDB(con), snapshot, reachable=reachable, keyed=keyed, ranks=ranks)
    return con


def open_engine(
    snapshot: Snapshot, *, name: str = "duckdb", memory_limit: str | None = None, spark: SparkOptions | None = None,
    reachable: bool = True, keyed: bool = False,
) -> engine.Engine:
    """The snapshot bound (as `connect` binds it) in the engine `name` (engine.ENGINES): DuckDB,
    in memory, or Spark (regstat.analysis.spark), whose session `spark` says how to reach."""
    if name == "spark":
        try:  # pyspark is an optional extra: imported only when asked for
            from .spark import open_spark
        except ImportError as e:
            raise _without_spark(e) from None
        db: engine.Engine = open_spark(spark or SparkOptions())
        _SPARK.add(db)
    else:
        db = engine.DuckDB(track(duckdb.connect(config=duckdb_config(memory_limit))))
    try:
        bind(db, snapshot, reachable=reachable, keyed=keyed)
    except BaseException:
        db.close()
        raise
    return db


def open_snapshot_url(url: str, spark: SparkOptions) -> Snapshot:
    """The snapshot at `url` (hdfs://, s3a://, file://, ...), read by the Spark session `spark`
    says how to reach (regstat.analysis.spark_snapshot)."""
    try:
        from .spark_snapshot import open_url
    except ImportError as e:
        raise _without_spark(e) from None
    return open_url(url, spark)


def _without_spark(error: ImportError) -> engine.EngineUnavailable:
    return engine.EngineUnavailable(
        f"--engine spark needs the spark extra: pip install 'regstat[spark]' (and Java 17) ({error})")


def connect_pair(
    snapshots: Mapping[str, Snapshot], *, memory_limit: str | None = None
) -> duckdb.DuckDBPyConnection:
    """An in-memory DuckDB connection with each snapshot bound (as `connect` binds one, digests
    as text, so that they compare across snapshots) in a schema of its own, named by its key:
    `old.tags`, `new.orphaned_manifests`. The tables stay views over each snapshot's Parquet;
    the current schema is `main` again afterwards."""
    con = track(duckdb.connect(config=duckdb_config(memory_limit)))
    db = engine.DuckDB(con)
    for schema, snapshot in snapshots.items():
        engine.use_schema(con, schema)
        bind(db, snapshot)
        # Most views read these two: compute each once per snapshot, as the report does.
        db.materialise_view("repository_references")
        db.materialise_view("blob_references")
    engine.use_schema(con, "main")
    return con


# Connections whose statements a Ctrl-C must stop (interrupt_all). DuckDB runs a statement in
# C without the GIL: Python's SIGINT handler waits until the statement ends, which at 100M
# descriptors is minutes. So the CLI runs analysis commands in a worker thread, and the main
# thread, which receives the signal, interrupts these.
_OPEN: weakref.WeakSet[duckdb.DuckDBPyConnection] = weakref.WeakSet()
# Spark engines: Ctrl-C cancels their running jobs, for the same reason.
_SPARK: weakref.WeakSet[Any] = weakref.WeakSet()


def track(con: duckdb.DuckDBPyConnection) -> duckdb.DuckDBPyConnection:
    _OPEN.add(con)
    return con


def interrupt_all() -> None:
    """Stop the running statement of every tracked connection (it raises in its thread)."""
    for con in list(_OPEN):
        try:
            con.interrupt()
        except duckdb.Error:
            pass  # closed meanwhile
    for spark in list(_SPARK):
        spark.interrupt()


def duckdb_config(memory_limit: str | None) -> dict[str, str | bool | int | float | list[str]]:
    """DuckDB settings for an analysis connection: the memory limit, and where to spill past it.

    An in-memory DuckDB spills into `.tmp` under the working directory, which a cron job may
    not be able to write (or should not litter): spill under the system's temporary directory
    (TMPDIR) instead, one directory per process, which DuckDB removes when it closes."""
    config: dict[str, str | bool | int | float | list[str]] = {"temp_directory": spill_directory()}
    if memory_limit:
        config["memory_limit"] = memory_limit
    return config


def spill_directory() -> str:
    return os.path.join(tempfile.gettempdir(), f"regstat-spill-{os.getpid()}")


def need_tables(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Compute the tables `media_type_ranks` and `reachable` if `sql` reads them, directly or
    through a view (the ranks read every descriptor: 0.6 s at 100M descriptors).

    DuckDB names the tables behind views, so one lookup covers every view built on them."""
    tables = con.get_table_names(sql)
    if MEDIA_TYPE_RANKS in tables:
        media_type_ranks(engine.DuckDB(con))
    if reachability.TABLE in tables:
        reachability.materialise(engine.DuckDB(con))


def media_type_ranks(db: engine.Engine, *, empty: bool = False) -> None:
    """Create the table `media_type_ranks` (sql/media_type_ranks.sql), or, with `empty`, its
    columns alone, so that views over it can be defined before (or without) computing it."""
    select = engine.bare(queries.load(MEDIA_TYPE_RANKS))
    db.create_table(MEDIA_TYPE_RANKS, f"SELECT * FROM ({select}) AS r" + (" WHERE FALSE" if empty else ""),
                    replace=True)


def bind(db: engine.Engine, snapshot: Snapshot, *, reachable: bool = True, keyed: bool = False,
         ranks: bool = True) -> None:
    """Create the snapshot's tables, the extra tables and the views in `db`.
    `reachable=False`, `keyed`, `ranks`: see `connect`."""
    db.bind_snapshot(snapshot, keyed=keyed)
    for name, table in (("errors", errors_table(snapshot)), ("snapshot_info", info_table(snapshot))):
        db.load(name, table)
    media_type_ranks(db, empty=not ranks)
    reachability.create_empty(db)  # the views need it to exist
    for name in VIEWS:
        db.create_view(name, queries.load(name))
    if reachable:
        reachability.materialise(db)


def errors_table(snapshot: Snapshot) -> pa.Table:
    return pa.Table.from_pylist([e.to_json() for e in snapshot.info.errors], schema=_ERRORS_SCHEMA)


def info_table(snapshot: Snapshot) -> pa.Table:
    info = snapshot.info
    row = {
        "id": info.id,
        "source_kind": info.source.kind,
        "source_location": info.source.location,
        "started_at": info.started_at,
        "taken_at": info.finished_at,
        "complete": info.complete,
        "partial": info.partial,
    }
    return pa.Table.from_pylist([row], schema=_INFO_SCHEMA)


def query(
    snapshot: Snapshot, sql: str, *, memory_limit: str | None = None, repositories: Sequence[str] = ()
) -> tuple[list[str], list[tuple]]:
    """Run one read-only SQL statement over the snapshot; return column names and rows (with
    `repositories`, the rows whose `repository` column they select: regstat.analysis.scope)."""
    con = connect(snapshot, memory_limit=memory_limit, reachable=False, ranks=False)
    try:
        cursor = _execute(con, sql)
        if cursor.description is None:
            scope.check_scoped([], repositories)
            return [], []
        columns = [d[0] for d in cursor.description]
        return columns, scope.scoped_rows(columns, cursor.fetchall(), repositories)
    except duckdb.Error as e:
        raise duckdb_failure(e) or QueryError(f"query failed: {e}") from None
    finally:
        con.close()


def query_arrow(
    snapshot: Snapshot, sql: str, *, memory_limit: str | None = None, repositories: Sequence[str] = ()
) -> pa.Table:
    """Run one read-only SQL statement over the snapshot; return its result as Arrow."""
    con = connect(snapshot, memory_limit=memory_limit, reachable=False, ranks=False)
    try:
        check_read_only(con, sql)
        need_tables(con, sql)
        relation = con.sql(sql)
        scope.check_scoped(relation.columns, repositories)
        return scope.scoped_table(relation.to_arrow_table(), repositories)
    except duckdb.Error as e:
        raise duckdb_failure(e) or QueryError(f"query failed: {e}") from None
    finally:
        con.close()


def describe(snapshot: Snapshot) -> pa.Table:
    """Every table and view `regstat sql` offers, one row per column, in creation order:
    name, kind ('snapshot table', 'table' for regstat's own, 'view'), column, type."""
    con = connect(snapshot, reachable=False, ranks=False)
    try:
        relations = [(n, "snapshot table") for n in (digest_ids.TABLE, *TABLES)]
        relations += [(n, "table") for n in EXTRA_TABLES]
        relations += [(n, "view") for n in VIEWS]
        rows = []
        for name, kind in relations:
            for column, column_type, *_ in con.execute(f"DESCRIBE {name}").fetchall():
                rows.append({"name": name, "kind": kind, "column_name": column, "column_type": column_type})
    finally:
        con.close()
    schema = pa.schema([(c, pa.string()) for c in ("name", "kind", "column_name", "column_type")])
    return pa.Table.from_pylist(rows, schema=schema)


def check_read_only(con: duckdb.DuckDBPyConnection, sql: str) -> None:
    """Raise QueryError unless `sql` is exactly one SELECT, or EXPLAIN [ANALYZE] of one.

    DuckDB's own parser classifies the statement; DESCRIBE, SHOW, SUMMARIZE and FROM-first
    queries are SELECTs to it. EXPLAIN ANALYZE runs its statement, so that must be a SELECT too.
    """
    try:
        statements = con.extract_statements(sql)
    except duckdb.Error as e:
        raise QueryError(f"query failed: {e}") from None
    if len(statements) != 1:
        raise QueryError(f"one SQL statement at a time, not {len(statements)}")
    kind = statements[0].type
    if kind == duckdb.StatementType.EXPLAIN:
        inner = re.sub(r"^\s*EXPLAIN\s+(ANALYZE\s+)?", "", _strip_comments(sql), flags=re.IGNORECASE)
        check_read_only(con, inner)
    elif kind != duckdb.StatementType.SELECT:
        raise QueryError(
            f"regstat sql only reads: a {kind.name} statement is refused, because the snapshot "
            "is immutable; use SELECT, and --output FILE (with --format parquet, csv or json) to save results"
        )


def _execute(con: duckdb.DuckDBPyConnection, sql: str) -> duckdb.DuckDBPyConnection:
    check_read_only(con, sql)
    need_tables(con, sql)
    return con.execute(sql)


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*|/\*.*?\*/", " ", sql, flags=re.DOTALL)


