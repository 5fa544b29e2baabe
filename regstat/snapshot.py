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
import pyarrow.compute as pc
import pyarrow.parquet as pq

from . import __version__
from .errors import OutputExistsError, OutputRefusedError, SnapshotError

FORMAT = "regstat.snapshot/1"
# 2: digests stored once, in `digests`; ids elsewhere (regstat.digest_ids). 3: descriptors.repeated.
# 4: manifests.root.
SCHEMA_VERSION = 4
# The columns each later version added, by table, with their DuckDB types: in a snapshot of an
# older version that regstat still reads (READABLE_VERSIONS) they read as NULL, "unknown",
# unless LEGACY_VALUES says what the source implies (Snapshot.missing_columns).
ADDED_COLUMNS: dict[int, dict[str, dict[str, str]]] = {
    3: {"descriptors": {"repeated": "BOOLEAN"}},
    4: {"manifests": {"root": "BOOLEAN"}},
}
# What a missing column reads as, by source kind, where NULL would not do. `root` before
# version 4: only OCI layouts have roots, and every manifest of a layout's snapshot was reached
# from index.json; which entries were unnamed is unknown, so each counts as one (fail closed:
# it is kept, tag rules or not). Other sources have no roots.
LEGACY_VALUES: dict[tuple[str, str], dict[str, str]] = {
    ("manifests", "root"): {"oci-layout": "TRUE", "*": "FALSE"},
}
READABLE_VERSIONS = (2, 3, 4)
ROWS_PER_PART = 500_000
PARTIAL_MARK = ".regstat-partial-"
_FORCE_REPLACES_ONLY = "--force replaces only a regstat snapshot or an empty directory: choose another DIR"

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
            # The source keeps it whatever its tags say: an entry of an OCI layout's index.json
            # without a ref.name lists it (a named entry is a tag). False elsewhere.
            ("root", pa.bool_()),
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
            # The manifest lists this digest more than once as config, layer or child (false
            # for subjects): only such rows need grouping to count each reference once.
            ("repeated", pa.bool_()),
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
# The snapshot's tables as readers see them (SCHEMAS: digests as text). On disk each digest
# column holds an id into the table `digests` instead (STORED_SCHEMAS; regstat.digest_ids).
TABLES = tuple(SCHEMAS)
DIGEST_COLUMNS: dict[str, dict[str, str]] = {
    "tags": {"digest": "digest_id"},
    "manifests": {"digest": "digest_id", "subject_digest": "subject_id"},
    "descriptors": {"manifest_digest": "manifest_id", "digest": "digest_id"},
    "blobs": {"digest": "digest_id"},
    "repository_blobs": {"digest": "digest_id"},
}
# Each table's row order on disk (ids sort as their digests do).
SORT_KEYS: dict[str, tuple[str, ...]] = {
    "repositories": ("repository",),
    "tags": ("repository", "tag"),
    "manifests": ("repository", "digest"),
    "descriptors": ("repository", "manifest_digest", "role", "position"),
    "blobs": ("digest",),
    "repository_blobs": ("repository", "digest"),
    "uploads": ("repository", "uuid"),
}


def _stored(name: str, schema: pa.Schema) -> pa.Schema:
    keys = DIGEST_COLUMNS.get(name, {})
    return pa.schema([pa.field(keys[f.name], pa.int64()) if f.name in keys else f for f in schema])


STORED_SCHEMAS: dict[str, pa.Schema] = {
    "digests": pa.schema([("digest_id", pa.int64()), ("digest", pa.string())]),
    **{name: _stored(name, schema) for name, schema in SCHEMAS.items()},
}
STORED_TABLES = tuple(STORED_SCHEMAS)


class PartWriter:
    """Appends rows to a table directory as Parquet parts of at most `rows_per_part` rows.

    Memory stays bounded by one part's rows. A table that got no rows still gets one empty
    part, so readers can always glob `TABLE/*.parquet`.
    """

    def __init__(
        self, directory: Path, schema: pa.Schema, rows_per_part: int = ROWS_PER_PART, first_part: int = 0
    ) -> None:
        self.directory = directory
        self.schema = schema
        self.rows_per_part = rows_per_part
        self.rows = 0
        self._parts = first_part  # a resumed crawl numbers its parts after the kept ones
        self._buffer: list[tuple] = []
        self._new: list[str] = []  # parts written since the last take_written()
        self._encodings = column_encodings(directory.name, schema)
        self._level = COMPRESSION_LEVELS.get(directory.name)
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
        name = part_name(self._parts)
        pq.write_table(
            table,
            self.directory / name,
            compression="zstd",
            compression_level=self._level,
            use_dictionary=dictionary_columns(self.schema),
            column_encoding=self._encodings or None,
        )
        self._new.append(name)
        self._parts += 1
        self.rows += table.num_rows

    def take_written(self) -> list[str]:
        """Write the buffered rows; the names of the parts written since the last call."""
        self._flush()
        new, self._new = self._new, []
        return new

    def close(self) -> int:
        self._flush()
        if self._parts == 0:
            self._write(self.schema.empty_table())
        return self.rows


def dictionary_columns(schema: pa.Schema) -> list[str]:
    """The string columns worth dictionary-encoding: repeated names and media types, not
    digests or upload ids. A digest is 64 random hex digits, which zstd packs to their 32
    bytes of entropy: a dictionary of them only adds its indexes (and outgrows its page, at
    which point Parquet falls back to plain anyway)."""
    return [
        f.name for f in schema if pa.types.is_string(f.type) and "digest" not in f.name and f.name != "uuid"
    ]


# Id columns that rise along their table's sort order, each id at most once per run of the
# leading key: DELTA_BINARY_PACKED stores their small steps in a few bits (digests.digest_id
# and blobs.digest_id nearly nothing), where zstd over the plain 8 bytes left 0.4-1.4 bytes a
# row. Measured per column on the 20,010-manifest tree (bytes per descriptor, plain -> delta):
# digests.digest_id 0.76 -> 0.00, blobs.digest_id 0.76 -> 0.00, manifests.digest_id 0.53 ->
# 0.41, repository_blobs.digest_id 1.40 -> 1.28, tags.digest_id 0.36 -> 0.33 (0.45 -> 0.37 on
# the 99,765-manifest tree). Not for descriptors' ids (repeated or in no order: delta 0.57 ->
# 1.00 and 2.16 -> 2.24), nor a dictionary for any id (worse everywhere).
DELTA_COLUMNS: dict[str, tuple[str, ...]] = {
    "digests": ("digest_id",),
    "blobs": ("digest_id",),
    "manifests": ("digest_id",),
    "repository_blobs": ("digest_id",),
    "tags": ("digest_id",),
}
# zstd levels other than the default (1) for the snapshot's large tables of ids, sizes and
# times: level 9 takes 99,765 manifests' snapshot from 37.1 to 35.9 bytes per descriptor
# (descriptors 5.88 -> 5.14, blobs 3.61 -> 3.33), for ~0.3 CPU s more per 500,000 rows
# written. Not `digests` (hex text: level 3 or 9 is larger than 1, 24.4 -> 26.1), nor the
# crawl's staging tables (written while crawling; same names only for `uploads`, left out).
COMPRESSION_LEVELS: dict[str, int] = {
    "tags": 9,
    "manifests": 9,
    "descriptors": 9,
    "blobs": 9,
    "repository_blobs": 9,
}


def column_encodings(table: str, schema: pa.Schema) -> dict[str, str]:
    """Parquet encodings other than the default for the snapshot table `table` (DELTA_COLUMNS;
    none for other tables, such as the crawl's staging tables)."""
    return {
        name: "DELTA_BINARY_PACKED"
        for name in DELTA_COLUMNS.get(table, ())
        if name in schema.names and pa.types.is_integer(schema.field(name).type)
    }


def part_name(number: int) -> str:
    return f"part-{number:05d}.parquet"


def part_number(name: str) -> int | None:
    match = re.fullmatch(r"part-(\d+)\.parquet", name)
    return int(match.group(1)) if match else None


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
        self.output = _check_output(output, force)
        self.force = force
        _remove_stale_partials(self.output)
        self.path = partial_path(self.output, os.getpid())
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()

    @classmethod
    def take_over(cls, output: str | os.PathLike[str], partial: Path, *, force: bool = False) -> "PendingSnapshot":
        """Continue writing the hidden directory an interrupted crawl to OUTPUT left.

        It is renamed to this process's name, so other crawls see a live owner; the other
        leftovers of dead crawls to OUTPUT go, as a new crawl would remove them.
        """
        pending = cls.__new__(cls)
        pending.output = _check_output(output, force)
        pending.force = force
        pending.path = partial_path(pending.output, os.getpid())
        if partial != pending.path:
            if pending.path.exists():
                shutil.rmtree(pending.path)  # our own leftover from an earlier life of this pid
            try:
                os.rename(partial, pending.path)
            except FileNotFoundError:
                raise SnapshotError(f"{partial}: another crawl took it over meanwhile") from None
        _remove_stale_partials(pending.output, keep=pending.path)
        return pending

    def table(self, name: str, rows_per_part: int = ROWS_PER_PART) -> PartWriter:
        return PartWriter(self.path / name, STORED_SCHEMAS[name], rows_per_part)

    def clear_tables(self) -> None:
        """Remove snapshot tables an interrupted assembly left half written."""
        for name in STORED_TABLES:
            shutil.rmtree(self.path / name, ignore_errors=True)

    @staticmethod
    def finished_in(partial: Path) -> dict[str, Any] | None:
        """snapshot.json, when an interrupted crawl had written it and only the rename was left."""
        try:
            metadata = json.loads((partial / "snapshot.json").read_text())
        except (OSError, ValueError):
            return None
        return metadata if isinstance(metadata, dict) else None

    def publish(self, metadata: dict[str, Any]) -> Path:
        """Write snapshot.json, drop the crawl's working files, move the directory into place.

        snapshot.json comes first: from then on the crawl is finished, and a resumed one only
        renames (the hidden name keeps every command away until then).
        """
        for name in STORED_TABLES:
            if not (self.path / name).is_dir():
                raise AssertionError(f"table {name} was not written")
        tmp = self.path / "snapshot.json.tmp"
        tmp.write_text(json.dumps(metadata, indent=2, sort_keys=False) + "\n")
        os.replace(tmp, self.path / "snapshot.json")
        for entry in self.path.iterdir():
            if entry.name != "snapshot.json" and entry.name not in STORED_SCHEMAS:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if os.path.lexists(self.output):  # only with --force
            # Checked as the crawl began (_check_output); again here, where it is replaced.
            problem = why_not_replaceable(self.output)
            if problem:
                raise OutputRefusedError(f"{self.output}: {problem}")
            old = self.output.parent / f".{self.output.name}.regstat-old-{os.getpid()}"
            os.rename(self.output, old)
            os.rename(self.path, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.path, self.output)
        return self.output

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _check_output(output: str | os.PathLike[str], force: bool) -> Path:
    path = Path(output).absolute()
    if os.path.lexists(path):
        if not force:
            raise OutputExistsError(f"{output}: already exists; choose a new --output or pass --force")
        problem = why_not_replaceable(path)
        if problem:
            raise OutputRefusedError(f"{output}: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def is_regstat_directory(directory: Path) -> bool:
    """Whether regstat wrote `directory` as a snapshot: a crawl's hidden directory, or one whose
    snapshot.json is regstat's (of any schema version, finished or damaged)."""
    return directory.is_dir() and (PARTIAL_MARK in directory.name or _has_regstat_metadata(directory))


def _has_regstat_metadata(directory: Path) -> bool:
    try:
        metadata = json.loads((directory / "snapshot.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(metadata, dict) and metadata.get("format") == FORMAT


def why_not_replaceable(path: Path) -> str | None:
    """Why `crawl --force` may not replace `path` (None: it may). It may replace an empty
    directory, or a snapshot holding only what regstat writes there (snapshot.json and its
    tables' parts); never a file, a symbolic link, or anything else, whoever wrote it."""
    if path.is_symlink():
        return f"is a symbolic link, not a regstat snapshot; {_FORCE_REPLACES_ONLY}"
    if not path.is_dir():
        return f"is a file, not a regstat snapshot; {_FORCE_REPLACES_ONLY}"
    try:
        with os.scandir(path) as it:
            entries = list(it)
        if not entries:
            return None
        if PARTIAL_MARK in path.name or not _has_regstat_metadata(path):
            return f"is not a regstat snapshot (it holds no regstat snapshot.json); {_FORCE_REPLACES_ONLY}"
        stray = next(filter(None, map(_stray, entries)), None)
    except OSError as e:
        return f"cannot be read ({e.strerror or e}); not replacing it"
    if stray:
        return f"holds {stray}, which regstat did not write there; move it out of the snapshot, or choose another DIR"
    return None


def _stray(entry: os.DirEntry[str]) -> str | None:
    """`entry` of a snapshot directory, or the first file in it, when regstat did not write it."""
    if entry.name == "snapshot.json" and entry.is_file(follow_symlinks=False):
        return None
    if entry.name not in STORED_TABLES or not entry.is_dir(follow_symlinks=False):
        return entry.name
    with os.scandir(entry.path) as parts:
        return next((f"{entry.name}/{part.name}" for part in parts
                     if part_number(part.name) is None or not part.is_file(follow_symlinks=False)), None)


def partial_path(output: Path, pid: int) -> Path:
    return output.parent / f".{output.name}{PARTIAL_MARK}{pid}"


def _partials(output: Path) -> Iterator[tuple[Path, int]]:
    """Hidden directories of crawls to OUTPUT, with the pid of the process that wrote each."""
    pattern = re.compile(re.escape(f".{output.name}{PARTIAL_MARK}") + r"(\d+)")
    for candidate in output.parent.glob(f".{output.name}{PARTIAL_MARK}*"):
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_dir():
            yield candidate, int(match.group(1))


def find_interrupted(output: str | os.PathLike[str]) -> Path:
    """The hidden directory of the latest interrupted crawl to OUTPUT (its process is gone).

    Raises SnapshotError, saying what to do, when there is none or its crawl still runs.
    """
    path = Path(output).absolute()
    dead = []
    for candidate, pid in _partials(path):
        if _process_alive(pid):
            raise SnapshotError(f"{output}: a crawl (pid {pid}) is still writing it; wait for it, or stop it first")
        dead.append(candidate)
    if not dead:
        finished = " (it exists: the crawl finished)" if path.exists() else ""
        raise SnapshotError(
            f"{output}: nothing to resume: no interrupted crawl to it is left{finished}; "
            "run the command without --resume to start a new crawl"
        )
    latest = max(dead, key=lambda p: p.stat().st_mtime)
    if hasattr(os, "getuid") and latest.stat().st_uid != os.getuid():
        raise SnapshotError(f"{latest}: written by another user; not resuming it")
    return latest


def _remove_stale_partials(output: Path, keep: Path | None = None) -> None:
    """Remove hidden directories left by earlier crawls to OUTPUT whose process is gone."""
    for candidate, pid in _partials(output):
        if candidate != keep and not _process_alive(pid):
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
        return cls(directory, metadata)

    @property
    def complete(self) -> bool:
        return bool(self.metadata.get("complete"))

    @property
    def errors(self) -> list[dict[str, Any]]:
        return list(self.metadata.get("errors", []))

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
        kind = (self.metadata.get("source") or {}).get("kind")
        missing: dict[str, dict[str, str]] = {}
        for version, tables in ADDED_COLUMNS.items():
            if self.metadata.get("schema_version", SCHEMA_VERSION) < version:
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
