"""Join a crawl's staging tables into the snapshot's tables with DuckDB.

The crawler stages facts per digest (a manifest parsed once) and per repository (its revision
links); the snapshot's tables are per repository, so `descriptors` is a join. DuckDB does the
joins and sorts a range of the output's leading sort key at a time (repositories, or digests
for `blobs`), so that memory stays bounded whatever the registry's size; the ranges are
written in order, so each table comes out in the order its query sorts it.

The snapshot stores digests once, in `digests`, and ids elsewhere (regstat.snapshot.digest_ids). The
digests are numbered first; then each staging table's digests are replaced by their ids once
(_bind_ids: a pass per digest column, each joining one range of digests at a time), and the
ranged queries run on the ids: their joins are on integers, and none of them joins
`digests` (a hash table of every digest ran out of 128MB at 1M manifests).
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import duckdb
import pyarrow as pa

from .. import interrupts, queries
from ..snapshot import digest_ids
from ..errors import CrawlError
from ..snapshot import DIGEST_COLUMNS, SCHEMAS, SORT_KEYS
from .publish import PendingSnapshot

_TIME = pa.timestamp("us", tz="UTC")


def _without(schema: pa.Schema, name: str) -> pa.Schema:
    return schema.remove(schema.get_field_index(name))


# Facts per digest (a manifest parsed once) or per repository (its links), as the jobs of
# `sources.storage_tree.jobs` return them; most are a snapshot table's schema less a column.
STAGING_SCHEMAS: dict[str, pa.Schema] = {
    "stored_blobs": _without(SCHEMAS["blobs"], "stored"),
    "revisions": pa.schema(
        [
            ("repository", pa.string()),
            ("digest", pa.string()),
            ("pushed_at", _TIME),
            ("last_pulled_at", _TIME),
            ("locked", pa.bool_()),
            ("updated_at", _TIME),
        ]
    ),
    "tag_links": SCHEMAS["tags"],
    # Manifests the source keeps whatever their tags (an OCI layout's unnamed index.json entries).
    "roots": pa.schema([("repository", pa.string()), ("digest", pa.string())]),
    "layer_links": SCHEMAS["repository_blobs"],
    "uploads": SCHEMAS["uploads"],
    "manifest_info": pa.schema(
        [
            ("digest", pa.string()),
            ("media_type", pa.string()),
            ("artifact_type", pa.string()),
            ("config_media_type", pa.string()),
            ("size", pa.int64()),
            ("subject_digest", pa.string()),
            ("status", pa.string()),
            ("message", pa.string()),
        ]
    ),
    "manifest_descriptors": _without(SCHEMAS["descriptors"], "repository"),
    # Manifests taken from the previous snapshot (regstat.crawl.reuse), whose manifest_info
    # and manifest_descriptors rows are copied from it before assembling.
    "reused_manifests": pa.schema([("digest", pa.string())]),
}

SNAPSHOT_TABLES = ("tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")
BATCH_ROWS = 100_000
# Each table is assembled in ranges of its leading sort key, so that no join or sort holds
# more than a range: repositories for the tables sorted by repository first (a range holds
# at least one repository, else about this many revisions: ~5 descriptors each), digests for
# `blobs` (about this many stored blobs a range). Measured with benchmarks/bench_assemble.py
# on 955,593 manifests (5.0M descriptors): peak RSS 346 MB ranged at 128MB, 772 MB unranged
# at 512MB; CPU 66 s instead of 41 s (every range scans the staged descriptors again).
# With ids (schema 2, the same staging): 299 MB, CPU ~107 s under load 5-6 (55 s for schema
# 1's text digests then): numbering the digests and the passes of _bind_ids take most of it;
# the ranged queries on ids are cheaper than on text.
RANGE_REVISIONS = 100_000
RANGE_BLOBS = 500_000
# DuckDB's share of the crawl's memory while assembling (it spills the rest to `_spill`).
# A range's sort nearly fits it; 128MB unranged runs out of memory.
MEMORY_LIMIT = "128MB"
THREADS = 1
# Staging columns a range restricts (the tables that have them): each pair of DuckDB
# variables `<column>_from` / `<column>_to` bounds it when set, [from, to).
_RANGED_COLUMNS = ("repository", "digest")
# The staging tables' digest columns, replaced by their ids before the tables are assembled,
# one pass each (_bind_ids).
_STAGED_DIGESTS: dict[str, tuple[str, ...]] = {
    "stored_blobs": ("digest",),
    "revisions": ("digest",),
    "tag_links": ("digest",),
    "roots": ("digest",),
    "layer_links": ("digest",),
    "manifest_info": ("digest", "subject_digest"),
    "manifest_descriptors": ("manifest_digest", "digest"),
}
# Digests a pass joins at once: a range's hash table fits DuckDB's MEMORY_LIMIT. 250,000 did
# not always: an incremental crawl of the 45,612-manifest tree (175,944 digests, one range)
# ran out of 128MB joining its 238,684 staged descriptors, which two ranges of this size join.
RANGE_DIGESTS = 120_000
_PER_TABLE_RANGES = {table: "repository" for table in SNAPSHOT_TABLES} | {"blobs": "digest"}
_DIGESTS = "stage_digests"
_IDS = "_ids"  # the staging tables with ids, under the staging directory


def assemble(
    stage: Path,
    pending: PendingSnapshot,
    manifest_path: Callable[[str, str], str],
    memory_limit: str = MEMORY_LIMIT,
) -> tuple[dict[str, int], list[CrawlError]]:
    """Write the snapshot's tables from the staging tables under `stage`.

    `stage` stays until the snapshot is published: a crawl killed while assembling is
    resumed from it.

    Returns the row counts and one error per (repository, manifest) that could not be read.
    """
    con = duckdb.connect(
        config={
            "memory_limit": memory_limit,
            "threads": THREADS,
            "preserve_insertion_order": False,
            "temp_directory": str(stage / "_spill"),
        }
    )
    try:
        con.execute("SET enable_progress_bar = false")  # it would print into the crawl's output
        _bind_staging(con, stage)
        _restrict(con, None, (None, None))
        # Problems name their manifest's digest as text: found before the digests become ids.
        problems = [
            CrawlError(repository, manifest_path(repository, digest), _ERROR_KINDS[status], message or status)
            for repository, digest, status, message in con.execute(
                queries.load("snapshot_manifest_problems")
            ).fetchall()
        ]
        # Every digest the tables below name, numbered once for all ranges (regstat.snapshot.digest_ids).
        digest_ids.create(con, _DIGESTS, [queries.load("snapshot_digests")])
        writer = pending.table(digest_ids.TABLE)
        writer.write_batches(con.sql(digest_ids.digests_sql(_DIGESTS)).to_arrow_reader(BATCH_ROWS))
        counts = {digest_ids.TABLE: writer.close()}
        con.execute(f"DROP TABLE {_DIGESTS}")
        _bind_ids(con, stage, writer.directory, counts[digest_ids.TABLE])
        _restrict(con, None, (None, None))
        con.execute(f"CREATE TEMP TABLE stage_unsized_blobs AS {queries.load('snapshot_unsized_blobs')}")
        ranges = {"repository": _repository_ranges(con), "digest": _digest_ranges(con)}
        for table in SNAPSHOT_TABLES:
            writer = pending.table(table)
            column = _PER_TABLE_RANGES[table]
            sql = _stored_sql(table, queries.load(f"snapshot_{table}").strip().rstrip(";"))
            if table == "descriptors":
                # Joins as written: the range's revisions and the few unsized blobs are the hash
                # tables. DuckDB has no row estimates for the staged files, and its own choice
                # (every staged descriptor as a hash table) ran out of 128MB, at 45,612 manifests
                # in one range as at 1M manifests in eleven.
                con.execute("SET disabled_optimizers = 'join_order,build_side_probe_side'")
            for bounds in ranges[column]:
                interrupts.check()
                _restrict(con, column, bounds)
                writer.write_batches(con.sql(sql).to_arrow_reader(BATCH_ROWS))
            con.execute("RESET disabled_optimizers")
            counts[table] = writer.close()
    except (duckdb.InterruptException, RuntimeError) as e:
        # Ctrl-C while DuckDB runs, where signals are not deferred (regstat.interrupts), comes
        # out as DuckDB's "Query interrupted": an interruption, resumable, not a crash.
        if isinstance(e, duckdb.InterruptException) or str(e) == "Query interrupted":
            raise KeyboardInterrupt from e
        raise
    finally:
        con.close()
    shutil.rmtree(stage / "_spill", ignore_errors=True)
    shutil.rmtree(stage / _IDS, ignore_errors=True)
    return counts, problems


Bounds = tuple[str | int | None, str | int | None]  # [from, to); None: unbounded


def _bind_staging(con: duckdb.DuckDBPyConnection, stage: Path) -> None:
    """Views `stage_<name>` over the staging parts, restricted to the current range."""
    for name, schema in STAGING_SCHEMAS.items():
        glob = digest_ids.quote(str(stage / name / "*.parquet"))
        con.execute(f"CREATE VIEW stage_{name} AS SELECT * FROM read_parquet('{glob}') WHERE {_where(schema)}")


def _bind_ids(con: duckdb.DuckDBPyConnection, stage: Path, digests: Path, count: int) -> None:
    """Replace the views `stage_<name>` by the same rows with each digest as its id, from the
    written `digests` table's parts in `digests` (`count` rows), restricted to the current
    range like the staging views (a `digest` range is then a range of ids).

    Each staging table is written again under `stage/_ids`, one digest column a pass
    (_STAGED_DIGESTS), and each pass one range of digests at a time (about RANGE_DIGESTS):
    a join of a staging table with all 4.0M digests of a 1M-manifest crawl ran out of 128MB,
    spilling or not; a range's digests fit. With several ranges, rows without a digest are
    written apart; with one (a crawl of up to RANGE_DIGESTS digests), one left join a column."""
    con.execute(f"CREATE OR REPLACE VIEW {_DIGESTS} AS SELECT digest, digest_id FROM "
                f"read_parquet('{digest_ids.quote(str(digests / '*.parquet'))}')")
    shutil.rmtree(stage / _IDS, ignore_errors=True)
    (stage / _IDS).mkdir()
    parts = min(65536, max(1, -(-count // RANGE_DIGESTS)))
    bounds = _split([f"sha256:{i * 65536 // parts:04x}" for i in range(1, parts)])
    for name, schema in STAGING_SCHEMAS.items():
        source = f"read_parquet('{digest_ids.quote(str(stage / name / '*.parquet'))}')"
        for step, column in enumerate(_STAGED_DIGESTS.get(name, ())):
            target = stage / _IDS / f"{name}-{step}"
            target.mkdir()
            ids = ", ".join(f"k.digest_id AS {c}" if c == column else f"t.{c}" for c in schema.names)
            if len(bounds) == 1:  # one range: the left join keeps the rows without a digest
                _copy(con, f"SELECT {ids} FROM {source} AS t LEFT JOIN {_DIGESTS} AS k ON k.digest = t.{column}",
                      target / "part-00000.parquet")
            else:
                nulls = ", ".join(f"CAST(NULL AS BIGINT) AS {c}" if c == column else f"t.{c}" for c in schema.names)
                _copy(con, f"SELECT {nulls} FROM {source} AS t WHERE t.{column} IS NULL", target / "nulls.parquet")
                for i, (low, high) in enumerate(bounds):
                    query = (
                        f"SELECT {ids} FROM (SELECT * FROM {source} AS t WHERE {_between(f't.{column}', low, high)}) "
                        f"AS t LEFT JOIN (SELECT digest, digest_id FROM {_DIGESTS} AS k "
                        f"WHERE {_between('k.digest', low, high)}) AS k ON k.digest = t.{column}"
                    )
                    _copy(con, query, target / f"part-{i:05d}.parquet")
            source = f"read_parquet('{digest_ids.quote(str(target / '*.parquet'))}')"
        con.execute(f"CREATE OR REPLACE VIEW stage_{name} AS SELECT * FROM {source} WHERE {_where(schema)}")


def _copy(con: duckdb.DuckDBPyConnection, query: str, path: Path) -> None:
    interrupts.check()
    con.execute(f"COPY ({query}) TO '{digest_ids.quote(str(path))}' (FORMAT PARQUET)")


def _between(column: str, low: str | int | None, high: str | int | None) -> str:
    """SQL for `column` in [low, high) (None: unbounded), with text bounds as literals."""
    conditions = [f"{column} IS NOT NULL"]
    if low is not None:
        conditions.append(f"{column} >= '{digest_ids.quote(str(low))}'")
    if high is not None:
        conditions.append(f"{column} < '{digest_ids.quote(str(high))}'")
    return " AND ".join(conditions)


def _stored_sql(table: str, logical: str) -> str:
    """A snapshot table's query over the id views (digest columns hold ids) as the stored
    table's rows: its digest columns renamed as stored (DIGEST_COLUMNS), sorted by its key
    (ids sort as their digests do)."""
    keys = DIGEST_COLUMNS.get(table, {})
    columns = [f"t.{c} AS {keys[c]}" if c in keys else f"t.{c}" for c in SCHEMAS[table].names]
    order = ", ".join(f"t.{c}" for c in SORT_KEYS[table])
    return f"SELECT {', '.join(columns)} FROM ({logical}) AS t ORDER BY {order}"


def _where(schema: pa.Schema) -> str:
    return " AND ".join(
        f"(getvariable('{c}_from') IS NULL OR {c} >= getvariable('{c}_from')) AND "
        f"(getvariable('{c}_to') IS NULL OR {c} < getvariable('{c}_to'))"
        for c in _RANGED_COLUMNS
        if c in schema.names
    ) or "TRUE"


def _restrict(con: duckdb.DuckDBPyConnection, column: str | None, bounds: Bounds) -> None:
    """Restrict the staging views to `bounds` of `column`, and nothing else (None: no range)."""
    for c in _RANGED_COLUMNS:
        low, high = bounds if c == column else (None, None)
        kind = "BIGINT" if isinstance(low, int) or isinstance(high, int) else "VARCHAR"
        con.execute(f"SET VARIABLE {c}_from = CAST(? AS {kind})", [low])
        con.execute(f"SET VARIABLE {c}_to = CAST(? AS {kind})", [high])


def _split(boundaries: list) -> list[Bounds]:
    """Consecutive ranges that cover every value: (None, b1), [b1, b2), ..., [bn, None)."""
    edges: list = [None, *boundaries, None]
    return list(pairwise(edges))


def _repository_ranges(con: duckdb.DuckDBPyConnection) -> list[Bounds]:
    """Ranges of whole repositories, each with about RANGE_REVISIONS revisions (or one repository)."""
    boundaries: list[str] = []
    held = 0
    result = con.execute("SELECT repository, COUNT(*) FROM stage_revisions GROUP BY repository ORDER BY repository")
    while rows := result.fetchmany(10_000):
        for repository, revisions in rows:
            if held >= RANGE_REVISIONS:
                boundaries.append(repository)
                held = 0
            held += revisions
    return _split(boundaries)


def _digest_ranges(con: duckdb.DuckDBPyConnection) -> list[Bounds]:
    """Ranges of digest ids with about RANGE_BLOBS stored blobs each: equal steps of the ids
    (digests are uniform, and numbered in their order), at most 256 ranges."""
    (stored,) = con.execute("SELECT COUNT(*) FROM stage_stored_blobs").fetchone() or (0,)
    (numbered,) = con.execute(f"SELECT COUNT(*) FROM {_DIGESTS}").fetchone() or (0,)
    parts = min(256, max(1, -(-stored // RANGE_BLOBS)), max(1, numbered))
    return _split([i * numbered // parts for i in range(1, parts)])


_ERROR_KINDS = {
    "missing": "missing_blob",
    "invalid": "invalid_manifest",
    "too_large": "manifest_too_large",
    "digest_mismatch": "digest_mismatch",
    "unreadable": "read_error",
}
