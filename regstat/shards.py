"""Shards of a crawl (`regstat crawl --shard K/N`): which repositories and blob listings are
shard K's, the same on every machine.

A repository belongs to one shard by a stable hash of its name: the first 8 bytes of the
SHA-256 of its UTF-8 bytes, as a big-endian integer, modulo N (never Python's `hash()`, which
is salted per process). A storage tree's blobs belong to no repository: they are split by
their path under `blobs/<algorithm>/` into N ranges of the two-hex-digit prefix directories,
contiguous so that an S3 listing of a shard is one key range. docs/scale.md explains why.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass

from .model import repository_selected

_FORM = re.compile(r"^\s*(\d+)\s*/\s*(\d+)\s*$")
MAX_SHARDS = 256  # one two-hex-digit blob prefix per shard at most


@dataclass(frozen=True)
class Shard:
    """Shard `index` (1 to `count`) of `count`."""

    index: int
    count: int

    def __post_init__(self) -> None:
        if not 1 <= self.count <= MAX_SHARDS or not 1 <= self.index <= self.count:
            raise ValueError(f"shard {self.index}/{self.count}: K/N needs 1 <= K <= N <= {MAX_SHARDS}")

    @classmethod
    def parse(cls, text: str) -> Shard:
        """`K/N`, e.g. 2/3; ValueError otherwise."""
        found = _FORM.match(text)
        if not found:
            raise ValueError(f"{text!r} is not K/N (e.g. 1/3: the first of three shards)")
        return cls(int(found.group(1)), int(found.group(2)))

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    def holds(self, repository: str) -> bool:
        """Whether the repository `repository` is this shard's."""
        return shard_of(repository, self.count) == self.index

    def blob_range(self, prefix: str) -> tuple[str, str | None]:
        """The paths under `prefix` (`blobs/<algorithm>`) this shard lists: those after the first
        bound and up to the second, inclusive ("": from the start; None: to the end). The bounds
        are prefix directories (`blobs/sha256/55`): a path sorts after its directory's name."""
        def bound(i: int) -> str:
            return f"{prefix}/{(i * 256 // self.count) - 1:02x}\U0010ffff"

        after = "" if self.index == 1 else bound(self.index - 1)
        until = None if self.index == self.count else bound(self.index)
        return after, until

    @property
    def span(self) -> tuple[float, float]:
        """Where blob_range starts and ends in the hex space of digests, from 0 to 1."""
        return (self.index - 1) * 256 // self.count / 256, self.index * 256 // self.count / 256

    def holds_path(self, prefix: str, path: str) -> bool:
        """Whether `path` (a blob prefix directory or a key under `prefix`) is in blob_range."""
        after, until = self.blob_range(prefix)
        return path > after and (until is None or path <= until)

    def to_json(self) -> dict[str, int]:
        return {"index": self.index, "count": self.count}


def shard_of(repository: str, count: int) -> int:
    """The shard (1 to `count`) of a repository name."""
    hashed = int.from_bytes(hashlib.sha256(repository.encode("utf-8")).digest()[:8], "big")
    return hashed % count + 1


@dataclass(frozen=True)
class Selection:
    """The repositories a crawl reads: those the --repository globs match (all, without any)
    and, with --shard, that are the shard's."""

    globs: tuple[str, ...] = ()
    shard: Shard | None = None

    def selects(self, repository: str) -> bool:
        return repository_selected(repository, self.globs) and (self.shard is None or self.shard.holds(repository))

    def lists_blobs(self, prefix: str, path: str) -> bool:
        """Whether this crawl lists the blobs at `path` under `prefix` (`blobs/<algorithm>`)."""
        return self.shard is None or self.shard.holds_path(prefix, path)
