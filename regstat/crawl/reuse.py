"""Incremental crawls: manifests an earlier snapshot of the same source already parsed.

A source's listings (tags, revisions, blobs, links) are always read fresh; only a manifest's
body, which its digest names for good, is taken from the previous snapshot
(regstat.snapshot.previous) instead of read, and only once this crawl has confirmed the
source still holds it: storage trees by their fresh listing of blobs at the size recorded
(`confirm_by_listing`); registry APIs by a HEAD answering the digest and that size; ECR
and ACR by their fresh listings of manifests naming the digest; OCI layouts by the
manifest's blob file having that size (these sources' jobs put such digests in
`JobResult.reused`). The crawl stages each reused digest in `reused_manifests` (journaled
like any staging rows, so `--resume` keeps them); before assembling, `stage_reused` copies
their `manifest_info` and `manifest_descriptors` rows from the previous snapshot, as a fresh
parse would have staged them.
"""

from __future__ import annotations

from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.dataset as ds
import pyarrow.parquet as pq

from .. import queries
from ..errors import SnapshotError
from ..snapshot import digest_ids
from ..snapshot.schemas import dictionary_columns
from ..snapshot.previous import PreviousManifests, PreviousUnusable, open_previous
from ..sources.base import CrawlOptions, ListsManifestBlobs, ReusesManifests, Source

REUSED = "reused_manifests"
_FILES = "reused-*.parquet"  # beside the staged parts; never part names, so --resume drops them
# Files of the size and encodings of the crawl's own staging parts (snapshot.PartWriter: digests
# not dictionary-encoded), not one large file: assembling joins them a range of digests at a
# time within 128MB (assemble.RANGE_DIGESTS).
ROWS_PER_FILE = 5_000
_SQL_TYPES = {pa.string(): "VARCHAR", pa.int64(): "BIGINT", pa.int32(): "INTEGER", pa.bool_(): "BOOLEAN"}


def previous_for(source: Source, options: CrawlOptions) -> PreviousManifests | None:
    """The previous snapshot `options.previous` names, if it can be trusted; else None, with a
    one-line warning. Every source reuses it: storage trees by their blob listing, the others
    in their own jobs (`ReusesManifests`), which get it here."""
    if options.previous is None:
        return None
    try:
        previous = open_previous(options.previous, source.describe())
    except PreviousUnusable as e:
        options.warn(f"--previous ignored, every manifest is read: {e}")
        return None
    if isinstance(source, ReusesManifests):
        source.previous = previous
    return previous


def reuses_by_listing(source: Source, previous: PreviousManifests | None) -> bool:
    return previous is not None and isinstance(source, ListsManifestBlobs) and source.lists_manifest_blobs()


def confirm_by_listing(stage: Path, previous: PreviousManifests, digests: list[str]) -> tuple[list[str], list[str]]:
    """(reusable, to read) of `digests`: reusable when this crawl's staged blob listing holds
    the manifest's blob at the size the previous snapshot recorded. Call it once every
    listing job has finished and the staged `stored_blobs` are flushed."""
    parts = sorted((stage / "stored_blobs").glob("*.parquet"))
    listed: dict[str, int] = {}
    if parts and digests:
        table = ds.dataset(parts, format="parquet").to_table(
            columns=["digest", "size"], filter=ds.field("digest").isin(digests)
        )
        listed = dict(zip(*(c.to_pylist() for c in table.columns), strict=True))
    reusable: list[str] = []
    to_read: list[str] = []
    for digest in digests:
        size = listed.get(digest)
        (reusable if size is not None and size == previous.size(digest) else to_read).append(digest)
    return reusable, to_read


def stage_reused(stage: Path, previous: PreviousManifests | None, schemas: dict[str, pa.Schema]) -> int:
    """Write the `manifest_info` and `manifest_descriptors` staging rows of the reused
    manifests (staged in `reused_manifests`) from the previous snapshot; how many manifests."""
    parts = list((stage / REUSED).glob("*.parquet"))
    for table in ("manifest_info", "manifest_descriptors"):
        for stale in (stage / table).glob(_FILES):
            stale.unlink()
    if not parts or ds.dataset(parts, format="parquet").count_rows() == 0:
        return 0
    if previous is None:
        raise SnapshotError(
            "the interrupted crawl reused manifests of a previous snapshot this crawl cannot read; "
            "start it again without --resume"
        )
    con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB", "temp_directory": str(stage / "_spill")})
    try:
        con.execute("SET enable_progress_bar = false")
        con.execute(f"CREATE VIEW reused AS SELECT digest FROM read_parquet('{_glob(stage / REUSED)}')")
        for name in ("digests", "manifests", "descriptors"):
            con.execute(f"CREATE VIEW previous_{name} AS SELECT * FROM read_parquet('{_glob(previous.path / name)}')")
        ((wanted,),) = con.execute("SELECT COUNT(DISTINCT digest) FROM reused").fetchall()
        written = {
            table: _write(con, queries.load(f"reused_{table}"), stage / table, schemas[table])
            for table in ("manifest_info", "manifest_descriptors")
        }
        found = written["manifest_info"]  # one row per manifest
    except duckdb.Error as e:
        raise SnapshotError(f"{previous.path}: cannot copy the reused manifests ({str(e).splitlines()[0]})") from None
    finally:
        con.close()
    if found != wanted:
        raise SnapshotError(
            f"{previous.path} holds {found} of the {wanted} manifests the crawl reused from it (it changed "
            "since the crawl started); start the crawl again"
        )
    return int(found)


def _write(con: duckdb.DuckDBPyConnection, query: str, directory: Path, schema: pa.Schema) -> int:
    """The rows of `query` as files `reused-NNNNN.parquet` in `directory`; how many rows."""
    columns = ", ".join(f"CAST({f.name} AS {_SQL_TYPES[f.type]}) AS {f.name}" for f in schema)
    reader = con.sql(f"SELECT {columns} FROM ({query}) AS q").to_arrow_reader(ROWS_PER_FILE)
    rows = 0
    for number, batch in enumerate(reader):
        table = pa.Table.from_batches([batch]).cast(schema)
        pq.write_table(table, directory / f"reused-{number:05d}.parquet", compression="zstd",
                       use_dictionary=dictionary_columns(schema))
        rows += table.num_rows
    return rows


def _glob(directory: Path, name: str = "*.parquet") -> str:
    return digest_ids.quote(str(directory / name))
