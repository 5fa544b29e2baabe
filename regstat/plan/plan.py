"""The Plan object: a plan's actions file (Parquet, written and read a batch at a time), its
summary, notes and JSON header (`regstat.plan/1`); `Plan.load` reads a plan's JSON back."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
import weakref
from collections.abc import Collection, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from ..analysis.engine import Engine
from ..errors import RegstatError


FORMAT = "regstat.plan/1"


# The kinds of action, in the order a plan applies them.
KINDS = ("delete_tag", "delete_manifest", "delete_blob", "delete_upload")


def summary_key(kind: str) -> str:
    """The plan summary's key counting actions of `kind`: delete_tag -> tags."""
    return kind.removeprefix("delete_") + "s"


# The keys each kind of action has in a plan's JSON (the Parquet table has every column).
ACTION_KEYS = {
    "delete_tag": ("action", "repository", "tag", "digest", "size", "reason", "rule"),
    "delete_manifest": ("action", "repository", "digest", "size", "reason", "rule", "bytes_freed",
                        "media_type", "artifact_type"),
    "delete_blob": ("action", "digest", "size", "reason"),
    "delete_upload": ("action", "repository", "uuid", "size", "reason"),
}


# The actions file's rows per batch: a plan of millions of actions is written and read in
# batches of this many rows, never held whole.
BATCH_ROWS = 250_000

# The actions file's columns (write_actions: plan_actions.sql's, numbered), as Plan.load writes them too.
ACTIONS_SCHEMA = pa.schema([
    ("position", pa.int64()),
    pa.field("action", pa.string(), nullable=False),
    ("repository", pa.string()),
    ("tag", pa.string()),
    ("digest", pa.string()),
    ("uuid", pa.string()),
    ("size", pa.int64()),  # null: unknown (an upload in S3, its data an unfinished multipart upload)
    ("bytes_freed", pa.int64()),
    pa.field("reason", pa.string(), nullable=False),
    ("rule", pa.string()),
    ("media_type", pa.string()),
    ("artifact_type", pa.string()),
])


class PlanFileError(RegstatError):
    """A file given as a plan that is not one regstat wrote (`regstat.plan/1`), or is damaged."""


@dataclass(frozen=True)
class Plan:
    """A plan: what to delete, in order, and why; `notes` say what restricted it.

    The actions are in a Parquet file (`actions_file`, one row each in order, `position` from
    0, every column of ACTION_KEYS), in a temporary directory the plan removes when closed or
    collected: at 100M descriptors a plan holds tens of millions of actions, more than memory
    should. `batches` reads them in order; `actions` gives them as dicts, as the plan's JSON
    has them (for small plans)."""

    snapshot: dict[str, Any]
    policy: dict[str, Any]
    summary: dict[str, Any]
    notes: list[str]
    actions_file: Path
    # The checksum a loaded plan's JSON gave (None: a plan older than checksums, or made here).
    recorded_checksum: str | None = None
    # Removes the actions file's directory once, on close() or when the plan is collected.
    _remove: weakref.finalize[..., None] = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        object.__setattr__(self, "_remove", weakref.finalize(
            self, shutil.rmtree, self.actions_file.parent, ignore_errors=True))

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> Plan:
        """The plan `plan-gc -o` wrote to `path` (JSON): the one place that checks its format.
        Its actions go to an actions file, as a plan just made has them."""
        try:
            with open(path, encoding="utf-8") as f:
                doc = json.load(f)
        except (OSError, ValueError) as e:
            raise PlanFileError(f"{path}: not a plan: {e}") from None
        if not isinstance(doc, dict) or doc.get("format") != FORMAT:
            raise PlanFileError(f"{path}: not a regstat plan (format {FORMAT})")
        shapes = {"snapshot": dict, "policy": dict, "summary": dict, "notes": list, "actions": list}
        wrong = [key for key, shape in shapes.items() if not isinstance(doc.get(key), shape)]
        if wrong or not isinstance(doc["snapshot"].get("id"), str):
            raise PlanFileError(
                f"{path}: a damaged regstat plan ({', '.join(wrong) or 'snapshot id'} missing or wrong)")
        directory = Path(tempfile.mkdtemp(prefix="regstat-plan-"))
        try:
            actions_file = _write_loaded(doc["actions"], directory / "actions.parquet")
        except (pa.ArrowException, ValueError, AttributeError, TypeError) as e:
            shutil.rmtree(directory, ignore_errors=True)
            raise PlanFileError(f"{path}: a damaged regstat plan (its actions: {e})") from None
        recorded = doc.get("checksum")
        return cls(snapshot=doc["snapshot"], policy=doc["policy"], summary=doc["summary"],
                   notes=[str(n) for n in doc["notes"]], actions_file=actions_file,
                   recorded_checksum=recorded if isinstance(recorded, str) else None)

    @property
    def snapshot_id(self) -> str:
        """The id of the snapshot the plan was made from."""
        return str(self.snapshot["id"])

    @property
    def count(self) -> int:
        """How many actions the plan has."""
        return sum(self.summary[summary_key(kind)] for kind in KINDS)

    def batches(self) -> Iterator[pa.RecordBatch]:
        """The actions in order, a batch at a time."""
        return pq.ParquetFile(self.actions_file).iter_batches(BATCH_ROWS)

    def slice(self, start: int, length: int) -> pa.Table:
        """`length` actions from position `start`, reading only the row groups that hold them."""
        file = pq.ParquetFile(self.actions_file)
        groups, first = [], 0
        for i in range(file.num_row_groups):
            rows = file.metadata.row_group(i).num_rows
            if first + rows > start and first < start + length:
                groups.append(i)
            elif not groups:
                first += rows
        if not groups:
            return file.schema_arrow.empty_table()
        return file.read_row_groups(groups).slice(start - first, length)

    @property
    def actions(self) -> list[dict[str, Any]]:
        return [{k: row[k] for k in ACTION_KEYS[row["action"]]} for row in pq.read_table(self.actions_file).to_pylist()]

    def actions_on(self, digests: Collection[str]) -> list[dict[str, Any]]:
        """The actions on these digests (their tags, manifests or blobs), in order, as the
        plan's JSON has them and with their `position`; read a batch at a time."""
        wanted = pa.array(sorted(digests), pa.string())
        rows = []
        for batch in self.batches():
            rows += batch.filter(pc.is_in(batch.column("digest"), value_set=wanted)).to_pylist()
        return [{**{k: row[k] for k in ACTION_KEYS[row["action"]]}, "position": row["position"]} for row in rows]

    def checksum(self) -> str:
        """`sha256:` and the SHA-256 of the plan's snapshot object and its actions, in order, each
        as canonical JSON on its own line (docs/plan-gc.md, "The checksum"): apply-gc refuses a
        plan whose recorded checksum differs (edited by hand, cut short)."""
        digest = hashlib.sha256(_canonical(self.snapshot))
        for batch in self.batches():
            for row in batch.to_pylist():
                digest.update(_canonical({k: row[k] for k in ACTION_KEYS[row["action"]]}))
        return "sha256:" + digest.hexdigest()

    def header(self) -> dict[str, Any]:
        """The plan's JSON without its actions."""
        return {
            "format": FORMAT,
            "checksum": self.checksum(),
            "snapshot": self.snapshot,
            "policy": self.policy,
            "summary": self.summary,
            "notes": self.notes,
        }

    def to_json(self) -> dict[str, Any]:
        return {**self.header(), "actions": self.actions}

    def close(self) -> None:
        """Remove the actions file (its directory)."""
        self._remove()

    def __enter__(self) -> Plan:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def write_actions(db: Engine, directory: Path) -> Path:
    """Write the actions (view plan_actions) in order, numbered (`position`) and with their ids
    turned into digests, to a Parquet file in `directory` (ACTIONS_SCHEMA); return its path.
    The engine sorts and numbers them (Engine.write_numbered), never holding them whole."""
    path = db.write_numbered("plan_actions", ("kind_rank", "level", "repository", "tag", "digest", "uuid"),
                             ("kind_rank", "level"), ACTIONS_SCHEMA, directory, BATCH_ROWS,
                             release=("plan_tag_actions", "plan_deleted_manifests", "plan_order", "plan_blob_actions",
                                      "plan_upload_actions"))
    return path.rename(directory / "actions.parquet")


def _canonical(value: Any) -> bytes:
    """One line of the checksum's input: keys sorted, no spaces, ASCII only."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode() + b"\n"


def _write_loaded(actions: list[dict[str, Any]], path: Path) -> Path:
    """A plan's JSON actions as its actions file, numbered in their order."""
    with pq.ParquetWriter(path, ACTIONS_SCHEMA, compression="zstd") as writer:
        for start in range(0, len(actions), BATCH_ROWS):
            rows = [{**action, "position": start + i} for i, action in enumerate(actions[start:start + BATCH_ROWS])]
            for row in rows:
                keys = ACTION_KEYS.get(str(row.get("action")), ())
                if not keys or any(key not in row for key in keys):
                    raise ValueError(f"action #{row['position']} is not one plan-gc writes")
            writer.write_table(pa.Table.from_pylist(rows, schema=ACTIONS_SCHEMA))
    return path
