"""The snapshot: Parquet tables plus snapshot.json, the contract between crawl and the rest.

Written into a hidden sibling directory and renamed into place only when finished, so a
crawl that dies leaves nothing any regstat command accepts (docs/snapshot.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import uuid
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Iterator

import pyarrow as pa
import pyarrow.parquet as pq

from . import __version__
from .errors import OutputExistsError, SnapshotError

FORMAT = "regstat.snapshot/1"
SCHEMA_VERSION = 1
ROWS_PER_PART = 500_000
_PARTIAL_MARK = ".regstat-partial-"

_TIME = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "repositories": pa.schema(
        [("repository", pa.string()), ("complete", pa.bool_()), ("error_count", pa.int64())]
    ),
    "tags": pa.schema(
        [("repository", pa.string()), ("tag", pa.string()), ("digest", pa.string()), ("updated_at", _TIME)]
    ),
    "manifests": pa.schema(
        [
            ("repository", pa.string()),
            ("digest", pa.string()),
            ("media_type", pa.string()),
            ("artifact_type", pa.string()),
            ("config_media_type", pa.string()),
            ("size", pa.int64()),
            ("subject_digest", pa.string()),
            ("status", pa.string()),
            ("pushed_at", _TIME),
            ("last_pulled_at", _TIME),
            ("locked", pa.bool_()),
        ]
    ),
    "descriptors": pa.schema(
        [
            ("repository", pa.string()),
            ("manifest_digest", pa.string()),
            ("role", pa.string()),
            ("position", pa.int32()),
            ("digest", pa.string()),
            ("media_type", pa.string()),
            ("size", pa.int64()),
            ("platform", pa.string()),
            ("artifact_type", pa.string()),
        ]
    ),
    "blobs": pa.schema(
        [("digest", pa.string()), ("size", pa.int64()), ("stored", pa.bool_()), ("modified_at", _TIME)]
    ),
    "repository_blobs": pa.schema(
        [("repository", pa.string()), ("digest", pa.string()), ("linked_at", _TIME)]
    ),
    "uploads": pa.schema(
        [
            ("repository", pa.string()),
            ("uuid", pa.string()),
            ("started_at", _TIME),
            ("size", pa.int64()),
            ("modified_at", _TIME),
        ]
    ),
}
TABLES = tuple(SCHEMAS)


class PartWriter:
    """Appends rows to a table directory as Parquet parts of at most `rows_per_part` rows.

    Memory stays bounded by one part's rows. A table that got no rows still gets one empty
    part, so readers can always glob `TABLE/*.parquet`.
    """

    def __init__(self, directory: Path, schema: pa.Schema, rows_per_part: int = ROWS_PER_PART) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.rows = 0
        self._parts = 0
        self._buffer: list[tuple] = []
        directory.mkdir(parents=True, exist_ok=True)

    def append(self, row: tuple) -> None:
        self._buffer.append(row)
        if len(self._buffer) >= self.rows_per_part:
            self._flush()

    def write_batches(self, batches: Iterable[pa.RecordBatch]) -> None:
        """Write Arrow batches (e.g. from DuckDB), cast to this table's schema."""
        for batch in batches:
            table = _conform(batch, self.schema)
            for chunk in table.to_batches(max_chunksize=self.rows_per_part):
                self._write(pa.Table.from_batches([chunk], schema=self.schema))

    def _flush(self) -> None:
        if self._buffer:
            columns = list(zip(*self._buffer))
            self._write(pa.table(columns, schema=self.schema))
            self._buffer = []

    def _write(self, table: pa.Table) -> None:
        pq.write_table(table, self.directory / f"part-{self._parts:05d}.parquet", compression="zstd")
        self._parts += 1
        self.rows += table.num_rows

    def close(self) -> int:
        self._flush()
        if self._parts == 0:
            self._write(self.schema.empty_table())
        return self.rows


def _conform(batch: pa.RecordBatch, schema: pa.Schema) -> pa.Table:
    """Cast a batch to `schema`; SQL's untyped NULL columns become nulls of the right type."""
    columns = []
    for column in schema:
        values = batch.column(column.name)
        if values.type != column.type and values.null_count == len(values):
            columns.append(pa.nulls(len(values), column.type))
        else:
            columns.append(values.cast(column.type))
    return pa.Table.from_arrays(columns, schema=schema)


def new_snapshot_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def utc_now() -> datetime:
    return datetime.now(timezone.utc)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(timezone.utc).isoformat().replace("+00:00", "Z") if moment else None


class PendingSnapshot:
    """A snapshot being written: a hidden directory beside OUTPUT, renamed on `publish`."""

    def __init__(self, output: str | os.PathLike[str], *, force: bool = False) -> None:
        self.output = Path(output).absolute()
        self.force = force
        if self.output.exists() and not force:
            raise OutputExistsError(f"{output}: already exists; choose a new --output or pass --force")
        self.output.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(self.output)
        self.path = self.output.parent / f".{self.output.name}{_PARTIAL_MARK}{os.getpid()}"
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()

    def table(self, name: str, rows_per_part: int = ROWS_PER_PART) -> PartWriter:
        return PartWriter(self.path / name, SCHEMAS[name], rows_per_part)

    def publish(self, metadata: dict[str, Any]) -> Path:
        """Write snapshot.json and move the directory into place, atomically."""
        for name in TABLES:
            if not (self.path / name).is_dir():
                raise AssertionError(f"table {name} was not written")
        tmp = self.path / "snapshot.json.tmp"
        tmp.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, self.path / "snapshot.json")
        if self.output.exists():  # only with --force
            old = self.output.parent / f".{self.output.name}.regstat-old-{os.getpid()}"
            os.rename(self.output, old)
            os.rename(self.path, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.path, self.output)
        return self.output

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _remove_stale_partials(output: Path) -> None:
    """Remove hidden directories left by earlier crawls to OUTPUT whose process is gone."""
    pattern = re.compile(re.escape(f".{output.name}{_PARTIAL_MARK}") + r"(\d+)")
    for candidate in output.parent.glob(f".{output.name}{_PARTIAL_MARK}*"):
        match = pattern.fullmatch(candidate.name)
        if match and not _process_alive(int(match.group(1))):
            shutil.rmtree(candidate, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier life of this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


@dataclass(frozen=True)
class Snapshot:
    """A finished snapshot, opened for reading."""

    path: Path
    metadata: dict[str, Any]

    @classmethod
    def open(cls, path: str | os.PathLike[str]) -> "Snapshot":
        directory = Path(path)
        if _PARTIAL_MARK in directory.name:
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
        if metadata.get("schema_version") != SCHEMA_VERSION:
            raise SnapshotError(
                f"{path}: schema version {metadata.get('schema_version')} is not supported "
                f"by regstat {__version__} (it reads version {SCHEMA_VERSION})"
            )
        if not metadata.get("finished_at"):
            raise SnapshotError(f"{path}: the crawl that wrote it did not finish")
        for name in TABLES:
            if not any((directory / name).glob("*.parquet")):
                raise SnapshotError(f"{path}: table {name} is missing")
        return cls(directory, metadata)

    @property
    def complete(self) -> bool:
        return bool(self.metadata.get("complete"))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.metadata.get("errors", []))

    def table_glob(self, name: str) -> str:
        return str(self.path / name / "*.parquet")

    def tables(self) -> Iterator[tuple[str, str]]:
        for name in TABLES:
            yield name, self.table_glob(name)
