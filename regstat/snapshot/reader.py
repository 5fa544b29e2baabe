"""A finished snapshot, opened for reading.

A crawl writes into a hidden sibling directory and renames it into place only when finished
(regstat.crawl.publish), so a crawl that dies leaves nothing any regstat command accepts.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..errors import SnapshotError
from .info import SnapshotInfo
from .schemas import ADDED_COLUMNS, FORMAT, LEGACY_VALUES, PARTIAL_MARK, READABLE_VERSIONS, STORED_TABLES


class SnapshotFiles(Protocol):
    """Where a snapshot's files are read: a local directory (Snapshot.open), or a URL Spark
    reads (regstat.analysis.spark_snapshot)."""

    def is_dir(self) -> bool: ...

    def read_metadata(self) -> str:
        """snapshot.json's text; FileNotFoundError where there is none."""

    def has_parquet(self, table: str) -> bool:
        """Whether the directory `table` holds a Parquet file."""


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot, opened for reading: its local directory `path`, snapshot.json as
    `info`, and `url` when Spark reads it at a URL (file://, s3a://, ...; regstat.analysis.
    spark_snapshot). A snapshot at a URL has a `path` only if the URL is a local one (file://)."""

    path: Path | None
    info: SnapshotInfo
    url: str | None = None

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Snapshot:
        return cls.read(str(path), _Directory(Path(path)), path=Path(path))

    @classmethod
    def read(cls, where: str, files: SnapshotFiles, *, path: Path | None, url: str | None = None) -> Snapshot:
        """The snapshot at `where` (as the user named it, for messages), its files read through
        `files`: refused unless finished, whole, and of a version this regstat reads."""
        if PARTIAL_MARK in where.rstrip("/").rsplit("/", 1)[-1]:
            raise SnapshotError(f"{where}: an unfinished crawl's directory, not a snapshot")
        if not files.is_dir():
            raise SnapshotError(f"{where}: no such snapshot directory")
        try:
            metadata = json.loads(files.read_metadata())
        except FileNotFoundError:
            raise SnapshotError(f"{where}: not a regstat snapshot (no snapshot.json)") from None
        except (OSError, ValueError) as e:
            raise SnapshotError(f"{where}: unreadable snapshot.json: {e}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise SnapshotError(f"{where}: snapshot.json is not a {FORMAT} document")
        if metadata.get("schema_version") not in READABLE_VERSIONS:
            raise SnapshotError(
                f"{where}: schema version {metadata.get('schema_version')} is not supported "
                f"by regstat {__version__} (it reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        if not metadata.get("finished_at"):
            raise SnapshotError(f"{where}: the crawl that wrote it did not finish")
        for name in STORED_TABLES:
            if not files.has_parquet(name):
                raise SnapshotError(f"{where}: table {name} is missing")
        try:
            info = SnapshotInfo.from_json(metadata)
        except SnapshotError as e:
            raise SnapshotError(f"{where}: {e}") from None
        return cls(path, info, url)

    @property
    def directory(self) -> Path:
        """The local directory, for what reads a snapshot's files itself (crawl --previous,
        merge, report --history): never one only Spark reads, at a remote URL."""
        if self.path is None:
            raise SnapshotError(f"{self.url}: a snapshot at a URL is read by Spark alone")
        return self.path

    def table_glob(self, name: str) -> str:
        if self.url:
            return f"{self.url.rstrip('/')}/{name}/*.parquet"
        return str(self.directory / name / "*.parquet")

    def stored_bytes(self) -> int:
        """The sizes of the blobs the source saw stored, summed (0 where it sees none)."""
        blobs = pq.read_table(self.directory / "blobs", columns=["size", "stored"])
        return int(pc.sum(pc.filter(blobs.column("size"), pc.fill_null(blobs.column("stored"), False))).as_py() or 0)

    @property
    def missing_columns(self) -> dict[str, dict[str, str]]:
        """The columns this snapshot's version lacks, by table: name -> the SQL value each
        reads as (NULL of its type, or its LEGACY_VALUES for this snapshot's source)."""
        kind = self.info.source.kind
        missing: dict[str, dict[str, str]] = {}
        for version, tables in ADDED_COLUMNS.items():
            if self.info.schema_version < version:
                for table, columns in tables.items():
                    for column, type_ in columns.items():
                        legacy = LEGACY_VALUES.get((table, column), {})
                        value = legacy.get(kind, legacy.get("*", "NULL"))
                        missing.setdefault(table, {})[column] = f"CAST({value} AS {type_})"
        return missing

    def tables(self) -> Iterator[tuple[str, str]]:
        """The stored tables (STORED_TABLES: `digests` and the others with ids) and their globs."""
        for name in STORED_TABLES:
            yield name, self.table_glob(name)


@dataclass(frozen=True)
class _Directory:
    """A snapshot's files in a local directory."""

    path: Path

    def is_dir(self) -> bool:
        return self.path.is_dir()

    def read_metadata(self) -> str:
        return (self.path / "snapshot.json").read_text()

    def has_parquet(self, table: str) -> bool:
        return any((self.path / table).glob("*.parquet"))
