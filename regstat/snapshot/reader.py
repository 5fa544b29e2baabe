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

import pyarrow.compute as pc
import pyarrow.parquet as pq

from .. import __version__
from ..errors import SnapshotError
from .info import SnapshotInfo
from .schemas import ADDED_COLUMNS, FORMAT, LEGACY_VALUES, PARTIAL_MARK, READABLE_VERSIONS, STORED_TABLES


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot, opened for reading: its directory, and snapshot.json as `info`."""

    path: Path
    info: SnapshotInfo

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> Snapshot:
        directory = Path(path)
        if PARTIAL_MARK in directory.name:
            raise SnapshotError(f"{path}: an unfinished crawl's directory, not a snapshot")
        if not directory.is_dir():
            raise SnapshotError(f"{path}: no such snapshot directory")
        meta_path = directory / "snapshot.json"
        try:
            metadata = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise SnapshotError(f"{path}: not a regstat snapshot (no snapshot.json)") from None
        except (OSError, ValueError) as e:
            raise SnapshotError(f"{path}: unreadable snapshot.json: {e}") from None
        if not isinstance(metadata, dict) or metadata.get("format") != FORMAT:
            raise SnapshotError(f"{path}: snapshot.json is not a {FORMAT} document")
        if metadata.get("schema_version") not in READABLE_VERSIONS:
            raise SnapshotError(
                f"{path}: schema version {metadata.get('schema_version')} is not supported "
                f"by regstat {__version__} (it reads versions {', '.join(map(str, READABLE_VERSIONS))})"
            )
        if not metadata.get("finished_at"):
            raise SnapshotError(f"{path}: the crawl that wrote it did not finish")
        for name in STORED_TABLES:
            if not any((directory / name).glob("*.parquet")):
                raise SnapshotError(f"{path}: table {name} is missing")
        try:
            info = SnapshotInfo.from_json(metadata)
        except SnapshotError as e:
            raise SnapshotError(f"{path}: {e}") from None
        return cls(directory, info)

    def table_glob(self, name: str) -> str:
        return str(self.path / name / "*.parquet")

    def stored_bytes(self) -> int:
        """The sizes of the blobs the source saw stored, summed (0 where it sees none)."""
        blobs = pq.read_table(self.path / "blobs", columns=["size", "stored"])
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
