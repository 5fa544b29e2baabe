"""The snapshot's format: its tables' schemas, how they are stored in Parquet parts, and the
ids and times snapshot.json records (docs/snapshot.md)."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime

import pyarrow as pa

FORMAT = "regstat.snapshot/1"
# 2: digests stored once, in `digests`; ids elsewhere (regstat.snapshot.digest_ids). 3: descriptors.repeated.
# 4: manifests.root. 5: tags.locked, manifests.updated_at (ACR's locks and times).
SCHEMA_VERSION = 5
# The columns each later version added, by table, with their DuckDB types: in a snapshot of an
# older version that regstat still reads (READABLE_VERSIONS) they read as NULL, "unknown",
# unless LEGACY_VALUES says what the source implies (Snapshot.missing_columns).
ADDED_COLUMNS: dict[int, dict[str, dict[str, str]]] = {
    3: {"descriptors": {"repeated": "BOOLEAN"}},
    4: {"manifests": {"root": "BOOLEAN"}},
    5: {"tags": {"locked": "BOOLEAN"}, "manifests": {"updated_at": "TIMESTAMP WITH TIME ZONE"}},
}
# What a missing column reads as, by source kind, where NULL would not do. `root` before
# version 4: only OCI layouts have roots, and every manifest of a layout's snapshot was reached
# from index.json; which entries were unnamed is unknown, so each counts as one (fail closed:
# it is kept, tag rules or not). Other sources have no roots.
LEGACY_VALUES: dict[tuple[str, str], dict[str, str]] = {
    ("manifests", "root"): {"oci-layout": "TRUE", "*": "FALSE"},
}
READABLE_VERSIONS = (2, 3, 4, 5)
ROWS_PER_PART = 500_000
PARTIAL_MARK = ".regstat-partial-"

_TIME = pa.timestamp("us", tz="UTC")

SCHEMAS: dict[str, pa.Schema] = {
    "repositories": pa.schema(
        [("repository", pa.string()), ("complete", pa.bool_()), ("error_count", pa.int64())]
    ),
    "tags": pa.schema(
        [
            ("repository", pa.string()),
            ("tag", pa.string()),
            ("digest", pa.string()),
            ("updated_at", _TIME),
            # The source refuses to delete or overwrite the tag (ACR's changeableAttributes); null: no locks.
            ("locked", pa.bool_()),
        ]
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
            # When the source last changed the manifest's record (ACR's lastUpdateTime); null: unknown.
            ("updated_at", _TIME),
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
# column holds an id into the table `digests` instead (STORED_SCHEMAS; regstat.snapshot.digest_ids).
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


def new_snapshot_id(now: datetime) -> str:
    return now.strftime("%Y%m%dT%H%M%SZ-") + uuid.uuid4().hex[:8]


def utc_now() -> datetime:
    return datetime.now(UTC)


def iso(moment: datetime | None) -> str | None:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z") if moment else None


