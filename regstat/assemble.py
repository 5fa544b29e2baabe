"""Join a crawl's staging tables into the snapshot's tables with DuckDB.

The crawler stages facts per digest (a manifest parsed once) and per repository (its revision
links); the snapshot's tables are per repository, so `descriptors` is a join. DuckDB does the
joins and sorts a range of the output's leading sort key at a time (repositories, or digests
for `blobs`), so that memory stays bounded whatever the registry's size; the ranges are
written in order, so each table comes out in the order its query sorts it.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from . import digest_ids, queries
from .errors import CrawlError
from .snapshot import SCHEMAS, PendingSnapshot

_TIME = pa.timestamp("us", tz="UTC")


def _without(schema: pa.Schema, name: str) -> pa.Schema:
    return schema.remove(schema.get_field_index(name))


# Facts per digest (a manifest parsed once) or per repository (its links), as the jobs of
# `sources.storage_jobs` return them; most are a snapshot table's schema less a column.
STAGING_SCHEMAS: dict[str, pa.Schema] = {
    "stored_blobs": _without(SCHEMAS["blobs"], "stored"),
    "revisions": pa.schema(
        [
            ("repository", pa.string()),
            ("digest", pa.string()),
            ("pushed_at", _TIME),
            ("last_pulled_at", _TIME),
            ("locked", pa.bool_()),
        ]
    ),
    "tag_links": SCHEMAS["tags"],
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
}

SNAPSHOT_TABLES = ("tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")
BATCH_ROWS = 100_000
# Each table is assembled in ranges of its leading sort key, so that no join or sort holds
# more than a range: repositories for the tables sorted by repository first (a range holds
# at least one repository, else about this many revisions: ~5 descriptors each), digests for
# `blobs` (about this many stored blobs a range). Measured with benchmarks/bench_assemble.py
# on 955,593 manifests (5.0M descriptors): peak RSS 346 MB ranged at 128MB, 772 MB unranged
# at 512MB; CPU 66 s instead of 41 s (every range scans the staged descriptors again).
RANGE_REVISIONS = 100_000
RANGE_BLOBS = 500_000
# DuckDB's share of the crawl's memory while assembling (it spills the rest to `_spill`).
# A range's sort nearly fits it; 128MB unranged runs out of memory.
MEMORY_LIMIT = "128MB"
THREADS = 1
# Staging columns a range restricts (the tables that have them): each pair of DuckDB
# variables `<column>_from` / `<column>_to` bounds it when set, [from, to).
_RANGED_COLUMNS = ("repository", "digest")
_PER_TABLE_RANGES = {table: "repository" for table in SNAPSHOT_TABLES} | {"blobs": "digest"}
_DIGESTS = "stage_digests"


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
        con.execute(f"CREATE TEMP TABLE stage_unsized_blobs AS {queries.load('snapshot_unsized_blobs')}")
        ranges = {"repository": _repository_ranges(con), "digest": _digest_ranges(con)}
        # Every digest the tables below name, numbered once for all ranges (regstat.digest_ids).
        digest_ids.create(con, _DIGESTS, [queries.load("snapshot_digests")])
        writer = pending.table(digest_ids.TABLE)
        writer.write_batches(con.sql(digest_ids.digests_sql(_DIGESTS)).to_arrow_reader(BATCH_ROWS))
        counts = {digest_ids.TABLE: writer.close()}
        for table in SNAPSHOT_TABLES:
            writer = pending.table(table)
            column = _PER_TABLE_RANGES[table]
            sql = digest_ids.encode_sql(table, queries.load(f"snapshot_{table}").strip().rstrip(";"), _DIGESTS)
            for bounds in ranges[column]:
                _restrict(con, column, bounds)
                writer.write_batches(con.sql(sql).to_arrow_reader(BATCH_ROWS))
            counts[table] = writer.close()
        _restrict(con, None, (None, None))
        problems = [
            CrawlError(repository, manifest_path(repository, digest), _ERROR_KINDS[status], message or status)
            for repository, digest, status, message in con.execute(
                queries.load("snapshot_manifest_problems")
            ).fetchall()
        ]
    except (duckdb.InterruptException, RuntimeError) as e:
        # A signal while DuckDB runs (SIGINT, or SIGTERM, whose handler raises) comes out as
        # DuckDB's "Query interrupted": it is an interruption, resumable, not a crash.
        if isinstance(e, duckdb.InterruptException) or str(e) == "Query interrupted":
            raise KeyboardInterrupt from e
        raise
    finally:
        con.close()
    shutil.rmtree(stage / "_spill", ignore_errors=True)
    return counts, problems


Bounds = tuple[str | None, str | None]  # [from, to); None: unbounded


def _bind_staging(con: duckdb.DuckDBPyConnection, stage: Path) -> None:
    """Views `stage_<name>` over the staging parts, restricted to the current range."""
    for name, schema in STAGING_SCHEMAS.items():
        glob = str(stage / name / "*.parquet").replace("'", "''")
        where = " AND ".join(
            f"(getvariable('{c}_from') IS NULL OR {c} >= getvariable('{c}_from')) AND "
            f"(getvariable('{c}_to') IS NULL OR {c} < getvariable('{c}_to'))"
            for c in _RANGED_COLUMNS
            if c in schema.names
        )
        con.execute(f"CREATE VIEW stage_{name} AS SELECT * FROM read_parquet('{glob}') WHERE {where or 'TRUE'}")


def _restrict(con: duckdb.DuckDBPyConnection, column: str | None, bounds: Bounds) -> None:
    """Restrict the staging views to `bounds` of `column`, and nothing else (None: no range)."""
    for c in _RANGED_COLUMNS:
        low, high = bounds if c == column else (None, None)
        con.execute(f"SET VARIABLE {c}_from = CAST(? AS VARCHAR)", [low])
        con.execute(f"SET VARIABLE {c}_to = CAST(? AS VARCHAR)", [high])


def _split(boundaries: list[str]) -> list[Bounds]:
    """Consecutive ranges that cover every string: (None, b1), [b1, b2), ..., [bn, None)."""
    edges: list[str | None] = [None, *boundaries, None]
    return list(zip(edges[:-1], edges[1:]))


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
    """Ranges of digests with about RANGE_BLOBS stored blobs each: digests are uniform in hex,
    so equal steps of their first two hex digits (any digest of another algorithm falls in
    the first or the last range)."""
    (stored,) = con.execute("SELECT COUNT(*) FROM stage_stored_blobs").fetchone() or (0,)
    parts = min(256, max(1, -(-stored // RANGE_BLOBS)))
    return _split([f"sha256:{i * 256 // parts:02x}" for i in range(1, parts)])


_ERROR_KINDS = {
    "missing": "missing_blob",
    "invalid": "invalid_manifest",
    "too_large": "manifest_too_large",
    "digest_mismatch": "digest_mismatch",
    "unreadable": "read_error",
}
