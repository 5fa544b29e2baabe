"""Join a crawl's staging tables into the snapshot's tables with DuckDB.

The crawler stages facts per digest (a manifest parsed once) and per repository (its revision
links); the snapshot's tables are per repository, so `descriptors` is a join. DuckDB does the
joins and sorts, spilling to disk rather than holding everything in memory.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Callable

import duckdb
import pyarrow as pa

from . import queries
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
# DuckDB's share of the crawl's memory while assembling (it spills the rest to `_spill`).
# Measured (benchmarks/RESULTS.md, crawl memory): 512MB on one thread assembles 9.8 million
# descriptors of 1.9 million manifests; 256MB does not (out of memory in the descriptors
# sort), and the process's peak RSS is about this limit plus 300 MB either way.
MEMORY_LIMIT = "512MB"
THREADS = 1


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
        for name in STAGING_SCHEMAS:
            glob = str(stage / name / "*.parquet").replace("'", "''")
            con.execute(f"CREATE VIEW stage_{name} AS SELECT * FROM read_parquet('{glob}')")
        counts = {}
        for table in SNAPSHOT_TABLES:
            writer = pending.table(table)
            reader = con.sql(queries.load(f"snapshot_{table}")).to_arrow_reader(BATCH_ROWS)
            writer.write_batches(reader)
            counts[table] = writer.close()
        problems = [
            CrawlError(repository, manifest_path(repository, digest), _ERROR_KINDS[status], message or status)
            for repository, digest, status, message in con.execute(
                queries.load("snapshot_manifest_problems")
            ).fetchall()
        ]
    finally:
        con.close()
    shutil.rmtree(stage / "_spill", ignore_errors=True)
    return counts, problems


_ERROR_KINDS = {
    "missing": "missing_blob",
    "invalid": "invalid_manifest",
    "too_large": "manifest_too_large",
    "digest_mismatch": "digest_mismatch",
    "unreadable": "read_error",
}
