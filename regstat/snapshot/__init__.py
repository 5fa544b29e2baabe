"""The snapshot: Parquet tables plus snapshot.json, the contract between crawl and the rest.

schemas: the format; info: snapshot.json as types (SnapshotInfo, SourceInfo, Capabilities);
writer: Parquet parts; reader: Snapshot; digest_ids: digests stored once; outputs: where
regstat may write; history: a directory of snapshots (`crawl --into`), its selectors.
"""

from .info import Capabilities, SnapshotInfo, SourceInfo
from .reader import Snapshot
from .schemas import (
    ADDED_COLUMNS,
    DIGEST_COLUMNS,
    FORMAT,
    PARTIAL_MARK,
    ROWS_PER_PART,
    SCHEMA_VERSION,
    SCHEMAS,
    SORT_KEYS,
    STORED_SCHEMAS,
    STORED_TABLES,
    TABLES,
    iso,
    new_snapshot_id,
    part_number,
    utc_now,
)
from .writer import PartWriter

__all__ = [
    "ADDED_COLUMNS",
    "DIGEST_COLUMNS",
    "FORMAT",
    "PARTIAL_MARK",
    "ROWS_PER_PART",
    "SCHEMAS",
    "SCHEMA_VERSION",
    "SORT_KEYS",
    "STORED_SCHEMAS",
    "STORED_TABLES",
    "TABLES",
    "Capabilities",
    "PartWriter",
    "Snapshot",
    "SnapshotInfo",
    "SourceInfo",
    "iso",
    "new_snapshot_id",
    "part_number",
    "utc_now",
]
