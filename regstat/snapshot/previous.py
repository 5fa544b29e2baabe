"""An earlier snapshot of the same source, as an incremental crawl reuses it (`crawl --previous`).

A manifest is content-addressed: what its body parses to never changes. So the facts an
earlier snapshot recorded for a digest that parsed `ok` (its `manifests` row less the
per-repository columns, its `descriptors`) are what reading the body again would give.
This module opens such a snapshot and keeps, per reusable digest, only what the crawl needs
while it runs: the manifest's size (checked against what the source lists now) and its
index children (the registry API walks them). The rows themselves are copied from the
snapshot's Parquet files when the crawl assembles (regstat.crawl.reuse).

A snapshot that cannot be trusted (damaged, of another format or schema version, of
another source) is never used: `open_previous` gives the reason instead, and the crawl reads
every manifest.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import duckdb

from ..errors import SnapshotError
from ..model import MAX_MANIFEST_BYTES, is_digest
from .. import queries
from .digest_ids import quote
from .info import SourceInfo
from .reader import Snapshot
from .schemas import SCHEMA_VERSION


@dataclass(frozen=True)
class PreviousManifests:
    """The reusable manifests of an earlier snapshot: digest -> size, and index children."""

    path: Path
    snapshot_id: str | None
    sizes: dict[str, int] = field(repr=False)
    # Index children as (digest, platform), in order; only manifests that have any.
    children: dict[str, tuple[tuple[str, str | None], ...]] = field(repr=False)

    def size(self, digest: str) -> int | None:
        """The stored size of a reusable manifest; None: not reusable (read it)."""
        return self.sizes.get(digest)

    def children_of(self, digest: str) -> tuple[str, ...]:
        return tuple(child for child, _ in self.children.get(digest, ()))

    def index_children(self, digest: str) -> tuple[tuple[str, str | None], ...]:
        """An index's children as (digest, platform), as `sources.base.index_children` gives them."""
        return self.children.get(digest, ())

    def __len__(self) -> int:
        return len(self.sizes)


class PreviousUnusable(SnapshotError):
    """The previous snapshot is not trusted; the message says why (one line)."""


def open_previous(path: str | Path, source: SourceInfo) -> PreviousManifests:
    """Open `path` as an earlier snapshot of `source`; raise PreviousUnusable if it is not one
    whose facts can be trusted."""
    try:
        snapshot = Snapshot.open(path)
    except SnapshotError as e:
        raise PreviousUnusable(str(e)) from None
    info = snapshot.info
    if info.schema_version != SCHEMA_VERSION:
        raise PreviousUnusable(f"{path}: schema version {info.schema_version}, not {SCHEMA_VERSION}")
    if info.source != source:
        raise PreviousUnusable(f"{path}: a snapshot of {info.source.to_json()}, not of {source.to_json()}")
    con = duckdb.connect(config={"threads": 1, "memory_limit": "256MB"})
    try:
        con.execute("SET enable_progress_bar = false")
        for name in ("digests", "manifests", "descriptors"):
            glob = quote(snapshot.table_glob(name))
            con.execute(f"CREATE VIEW previous_{name} AS SELECT * FROM read_parquet('{glob}')")
        sizes = dict(con.execute(queries.load("previous_manifest_sizes")).fetchall())
        listed: dict[str, list[tuple[str, str | None]]] = {}
        for digest, _position, child, platform in con.execute(queries.load("previous_manifest_children")).fetchall():
            listed.setdefault(digest, []).append((child, platform))  # in position order
        children = {digest: tuple(each) for digest, each in listed.items()}
    except duckdb.Error as e:
        raise PreviousUnusable(f"{path}: unreadable ({str(e).splitlines()[0]})") from None
    finally:
        con.close()
    for digest, size in sizes.items():
        # What a fresh parse would have refused never came from one: the snapshot is damaged.
        if not is_digest(digest) or not isinstance(size, int) or not 0 < size <= MAX_MANIFEST_BYTES:
            raise PreviousUnusable(f"{path}: damaged manifests table (digest {digest!r}, size {size!r})")
    return PreviousManifests(snapshot.directory, info.id, sizes, children)
