"""Join the shards of a crawl (`regstat crawl --shard K/N`) into one snapshot: `regstat merge`.

Each repository lives in one shard, so the per-repository tables are the shards' rows side by
side. What belongs to no repository is joined: `blobs` (a stored blob is listed by the one
shard of its blobs/ range, and named unstored by any shard whose manifests reference it:
sql/merge_blobs.sql), schema 1 layer sizes taken from stored blobs (sql/merge_descriptors.sql),
and the `digests` table, numbered again over every shard's digests, so that ids follow the
digests' order as a single crawl's do. snapshot.json: the earliest start, the latest finish,
the errors of every shard once, the capabilities the shards say the whole has
(docs/scale.md).
"""

from __future__ import annotations

import shutil
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from types import MappingProxyType

import duckdb

from .. import __version__, queries
from ..errors import CrawlError, SnapshotError
from ..snapshot import DIGEST_COLUMNS, SCHEMA_VERSION, SCHEMAS, Snapshot, SnapshotInfo, new_snapshot_id
from ..snapshot import digest_ids
from ..snapshot.outputs import check_crawl_output
from .publish import PendingSnapshot

MEMORY_LIMIT = "512MB"
BATCH_ROWS = 100_000
_MERGED_DIGESTS = "merged_digests"
# Tables whose merged rows are not every shard's rows side by side.
_JOINED = {"blobs": "merge_blobs", "descriptors": "merge_descriptors"}


@dataclass(frozen=True)
class MergeResult:
    path: Path
    info: SnapshotInfo
    shards: tuple[Path, ...]


def shard_paths(inputs: list[str]) -> list[Path]:
    """The shard snapshots: the directories given, or the snapshots inside the one directory
    given when it is not a snapshot itself (hidden directories, such as unfinished crawls',
    left out)."""
    if len(inputs) == 1 and not (Path(inputs[0]) / "snapshot.json").exists() and Path(inputs[0]).is_dir():
        found = sorted(p for p in Path(inputs[0]).iterdir()
                       if p.is_dir() and not p.name.startswith(".") and (p / "snapshot.json").is_file())
        if not found:
            raise SnapshotError(f"{inputs[0]}: neither a snapshot nor a directory of shard snapshots")
        return found
    return [Path(p) for p in inputs]


def open_shards(paths: list[Path]) -> list[Snapshot]:
    """The shards, checked to be every shard of one crawl, once, in this schema version."""
    shards = [Snapshot.open(p) for p in paths]
    for shard in shards:
        if shard.info.shard is None:
            raise SnapshotError(f"{shard.path}: not a shard (regstat crawl --shard K/N writes one)")
        if shard.info.schema_version != SCHEMA_VERSION:
            raise SnapshotError(f"{shard.path}: schema version {shard.info.schema_version}, not "
                                f"{SCHEMA_VERSION}: crawl every shard with this regstat")
    first = shards[0]
    assert first.info.shard is not None
    count = first.info.shard.count
    for shard in shards[1:]:
        info, shard_info = shard.info, shard.info.shard
        assert shard_info is not None
        if shard_info.count != count:
            raise SnapshotError(f"{shard.path} is a shard of {shard_info.count}, {first.path} of {count}")
        if info.source != first.info.source:
            raise SnapshotError(f"{shard.path} read {info.source.to_json()}, {first.path} "
                                f"{first.info.source.to_json()}: shards of different sources")
        if info.repository_filter != first.info.repository_filter:
            raise SnapshotError(f"{shard.path} and {first.path} were crawled with different --repository")
        if shard_info.capabilities != first.info.shard.capabilities:
            raise SnapshotError(f"{shard.path} and {first.path} say different things of what the source shows")
    held = Counter(s.info.shard.index for s in shards if s.info.shard)
    twice = sorted(k for k, n in held.items() if n > 1)
    if twice:
        both = [str(s.path) for s in shards if s.info.shard and s.info.shard.index == twice[0]]
        raise SnapshotError(f"shard {twice[0]}/{count} given twice: {', '.join(both)}")
    missing = [k for k in range(1, count + 1) if k not in held]
    if missing:
        raise SnapshotError(f"shard{'s' if len(missing) > 1 else ''} {', '.join(f'{k}/{count}' for k in missing)} "
                            "missing: give every shard of the crawl")
    return sorted(shards, key=lambda s: s.info.shard.index if s.info.shard else 0)


def merge(inputs: list[str], output: str, *, force: bool = False) -> MergeResult:
    """Merge the shard snapshots `inputs` (or the one directory holding them) into a new
    snapshot OUTPUT, which equals what one crawl of the source would have written."""
    shards = open_shards(shard_paths(inputs))
    check_crawl_output(output, shards[0].info.source.local_directory)
    for shard in shards:
        check_crawl_output(output, shard.path)  # never inside, or around, a shard read
    pending = PendingSnapshot(output, force=force)
    try:
        counts = _write_tables(shards, pending)
        info = _merged_info(shards, counts)
        return MergeResult(pending.publish(info), info, tuple(s.directory for s in shards))
    except BaseException:
        pending.discard()
        raise


def _write_tables(shards: list[Snapshot], pending: PendingSnapshot) -> dict[str, int]:
    spill = pending.path / "_spill"
    con = duckdb.connect(config={"memory_limit": MEMORY_LIMIT, "temp_directory": str(spill),
                                 "preserve_insertion_order": False})
    try:
        con.execute("SET enable_progress_bar = false")
        for i, shard in enumerate(shards):
            con.execute(f"CREATE VIEW digests_{i} AS SELECT * FROM read_parquet('{_glob(shard, digest_ids.TABLE)}')")
        for name in SCHEMAS:
            union = " UNION ALL ".join(
                digest_ids.public_sql(name, f"read_parquet('{_glob(shard, name)}')", f"digests_{i}")
                for i, shard in enumerate(shards)
            )
            con.execute(f"CREATE VIEW shard_{name} AS {union}")
        _check_disjoint(con, shards)
        for name in sorted(SCHEMAS, key=lambda n: n != "blobs"):  # descriptors join the merged blobs
            query = queries.load(_JOINED[name]) if name in _JOINED else f"SELECT * FROM shard_{name}"
            con.execute(f"CREATE TEMP TABLE merged_{name} AS {query}")
        digest_ids.create(con, _MERGED_DIGESTS, [
            f"SELECT {column} AS digest FROM merged_{name}" for name, columns in DIGEST_COLUMNS.items()
            for column in columns
        ])
        writer = pending.table(digest_ids.TABLE)
        writer.write_batches(con.sql(digest_ids.digests_sql(_MERGED_DIGESTS)).to_arrow_reader(BATCH_ROWS))
        counts = {digest_ids.TABLE: writer.close()}
        for name in SCHEMAS:
            writer = pending.table(name)
            sql = digest_ids.encode_sql(name, f"SELECT * FROM merged_{name}", _MERGED_DIGESTS)
            writer.write_batches(con.sql(sql).to_arrow_reader(BATCH_ROWS))
            counts[name] = writer.close()
    finally:
        con.close()
        shutil.rmtree(spill, ignore_errors=True)
    return counts


def _check_disjoint(con: duckdb.DuckDBPyConnection, shards: list[Snapshot]) -> None:
    """A repository in two shards: the shards were not cut by one rule (or one was edited)."""
    row = con.execute("SELECT repository FROM shard_repositories GROUP BY repository HAVING COUNT(*) > 1 "
                      "ORDER BY repository LIMIT 1").fetchone()
    if row:
        raise SnapshotError(f"repository {row[0]!r} is in more than one of the shards "
                            f"{', '.join(str(s.path) for s in shards)}: not shards of one crawl")


def _glob(shard: Snapshot, name: str) -> str:
    return digest_ids.quote(shard.table_glob(name))


def _merged_info(shards: list[Snapshot], counts: dict[str, int]) -> SnapshotInfo:
    infos = [s.info for s in shards]
    first = infos[0]
    assert first.shard is not None
    # Every shard records the same repository-less problems (a stray file at the top of the
    # tree, which each lists): once each.
    errors = sorted(set().union(*(i.errors for i in infos)), key=_error_order)
    started = min((i.started_at for i in infos if i.started_at), default=None)
    totals = [i.source_repositories for i in infos]
    return SnapshotInfo(
        schema_version=SCHEMA_VERSION,
        regstat_version=__version__,
        id=new_snapshot_id(started) if started else None,
        source=first.source,
        capabilities=first.shard.capabilities,
        started_at=started,
        finished_at=max((i.finished_at for i in infos if i.finished_at), default=None),
        resumed_at=tuple(sorted(t for i in infos for t in i.resumed_at)),
        complete=not errors and not first.repository_filter,
        partial=bool(first.repository_filter),
        repository_filter=first.repository_filter,
        # Each shard counts every repository the source listed; a repository pushed while the
        # shards ran is counted by those that listed after it.
        source_repositories=None if None in totals else max(t for t in totals if t is not None),
        incomplete_repositories=tuple(sorted(set().union(*(i.incomplete_repositories for i in infos)))),
        errors=tuple(errors),
        counts=MappingProxyType(dict(counts)),
    )


def _error_order(error: CrawlError) -> tuple[str, str, str, str]:
    return error.repository or "", error.path, error.kind, error.message
