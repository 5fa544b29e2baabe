"""snapshot.json as types: SnapshotInfo, with its SourceInfo and Capabilities.

The crawl builds a SnapshotInfo and writes it (`to_json`); every reader gets the one that
`Snapshot.open` parsed (`from_json`), and reads fields, never the JSON. Parsing fails closed:
a key of the wrong type is a SnapshotError, not a default. Keys older snapshots lack read as
what the crawl would have meant by their absence (no capability, no error, no count).
docs/snapshot.md describes every key.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from types import MappingProxyType
from typing import Any, TypeVar

from ..errors import CrawlError, SnapshotError
from .schemas import FORMAT, iso

T = TypeVar("T")


def _take(doc: Mapping[str, Any], key: str, kind: type[T] | tuple[type, ...], default: Any, where: str) -> Any:
    """doc[key], checked to be of `kind`; `default` if absent or null."""
    value = doc.get(key)
    if value is None:
        return default
    # bool is an int in Python: a count of True is refused
    if not isinstance(value, kind) or (isinstance(value, bool) and bool not in _types(kind)):
        raise SnapshotError(f"snapshot.json: {where}{key} is {value!r}, not {_names(kind)}")
    return value


def _types(kind: type | tuple[type, ...]) -> tuple[type, ...]:
    return kind if isinstance(kind, tuple) else (kind,)


def _names(kind: type | tuple[type, ...]) -> str:
    return " or ".join({str: "text", bool: "true or false", int: "a number", list: "a list",
                        dict: "an object"}.get(t, t.__name__) for t in _types(kind))


def _object(doc: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    return _take(doc, key, dict, {}, "")


def _texts(doc: Mapping[str, Any], key: str, where: str = "") -> tuple[str, ...]:
    values = _take(doc, key, list, [], where)
    if not all(isinstance(v, str) for v in values):
        raise SnapshotError(f"snapshot.json: {where}{key} holds something other than text")
    return tuple(values)


def parse_time(text: str | None, key: str = "time") -> datetime | None:
    """An ISO 8601 time of snapshot.json ('...Z'), or None."""
    if text is None:
        return None
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except (TypeError, ValueError):
        raise SnapshotError(f"snapshot.json: {key} is {text!r}, not an ISO 8601 time") from None
    if moment.tzinfo is None:
        raise SnapshotError(f"snapshot.json: {key} is {text!r}, a time without its zone")
    return moment


@dataclass(frozen=True, kw_only=True)
class SourceInfo:
    """Where a crawl read (`source` in snapshot.json): never a secret.

    `kind` is storage-layout, distribution-api, acr, ecr or oci-layout; `driver` (filesystem or
    s3) is a storage layout's; `registry_id` an ECR's (null for the caller's own registry);
    `repository` an OCI layout's name; `endpoint_url` for S3 and ECR when one was set.
    """

    kind: str
    location: str | None = None
    driver: str | None = None
    registry_id: str | None = None
    repository: str | None = None
    endpoint_url: str | None = None

    @property
    def local_directory(self) -> Path | None:
        """The directory on this machine the source reads (a storage root on disk or an OCI
        layout); None for S3 and registries."""
        if self.location is not None and (
            self.kind == "oci-layout" or (self.kind == "storage-layout" and self.driver == "filesystem")
        ):
            return Path(self.location)
        return None

    def to_json(self) -> dict[str, Any]:
        doc: dict[str, Any] = {"kind": self.kind}
        if self.driver is not None:
            doc["driver"] = self.driver
        doc["location"] = self.location
        if self.kind == "ecr":  # written even when null: the caller's own registry
            doc["registry_id"] = self.registry_id
        for key in ("repository", "endpoint_url"):
            if getattr(self, key) is not None:
                doc[key] = getattr(self, key)
        return doc

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SourceInfo:
        """`source` of snapshot.json; a missing one reads as kind 'unknown'."""
        fields = {key: _take(doc, key, str, None, "source.")
                  for key in ("location", "driver", "registry_id", "repository", "endpoint_url")}
        return cls(kind=_take(doc, "kind", str, "unknown", "source."), **fields)


@dataclass(frozen=True, kw_only=True)
class Capabilities:
    """What a source can see (`capabilities` in snapshot.json; docs/design.md).

    A figure that needs a capability the source lacks is unknown or an estimate, and the
    planner never turns it into a blob deletion. Absent keys read as lacking (fail closed).
    `push_times`/`pull_times`: "exact", "approximate" (file modification times) or None;
    `locks`: "exact" (the source says which items are locked: ACR) or None.
    """

    untagged_manifests: bool = False
    unreferenced_blobs: bool = False
    stored_blob_sizes: bool = False
    push_times: str | None = None
    pull_times: str | None = None
    locks: str | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "untagged_manifests": self.untagged_manifests,
            "unreferenced_blobs": self.unreferenced_blobs,
            "stored_blob_sizes": self.stored_blob_sizes,
            "push_times": self.push_times,
            "pull_times": self.pull_times,
            "locks": self.locks,
        }

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Capabilities:
        flags = {key: _take(doc, key, bool, False, "capabilities.")
                 for key in ("untagged_manifests", "unreferenced_blobs", "stored_blob_sizes")}
        kinds = {key: _take(doc, key, str, None, "capabilities.") for key in ("push_times", "pull_times", "locks")}
        return cls(**flags, **kinds)


@dataclass(frozen=True, kw_only=True)
class ShardInfo:
    """`shard` in snapshot.json: the snapshot holds shard `index` of `count` of a crawl
    (`regstat crawl --shard`), and `regstat merge` joins the shards into one snapshot, which
    can see what `capabilities` says (the shard's own say it cannot see unreferenced blobs)."""

    index: int
    count: int
    capabilities: Capabilities

    def to_json(self) -> dict[str, Any]:
        return {"index": self.index, "count": self.count, "capabilities": self.capabilities.to_json()}

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> ShardInfo:
        index, count = _take(doc, "index", int, 0, "shard."), _take(doc, "count", int, 0, "shard.")
        if not 1 <= index <= count:
            raise SnapshotError(f"snapshot.json: shard is {index}/{count}, not K/N with 1 <= K <= N")
        return cls(index=index, count=count, capabilities=Capabilities.from_json(_object(doc, "capabilities")))


def _error(doc: Any) -> CrawlError:
    if not isinstance(doc, dict):
        raise SnapshotError(f"snapshot.json: an error is {doc!r}, not an object")
    return CrawlError(
        repository=_take(doc, "repository", str, None, "errors[]."),
        path=_take(doc, "path", str, "", "errors[]."),
        kind=_take(doc, "kind", str, "", "errors[]."),
        message=_take(doc, "message", str, "", "errors[]."),
    )


def _counts(doc: Mapping[str, Any]) -> Mapping[str, int]:
    counts = _object(doc, "counts")
    for table in counts:
        _take(counts, table, int, 0, "counts.")
    return MappingProxyType(dict(counts))


@dataclass(frozen=True, kw_only=True)
class SnapshotInfo:
    """snapshot.json: what was crawled, from where, what the source could see, and how it went.
    Each field defaults to what its key's absence means (from_json).

    `complete`: no errors and no --repository filter. `partial`: --repository restricted the
    crawl (`repository_filter`). `source_repositories`: the repositories the source had, or
    None when unknown (not listed, or a snapshot older than the key). `errors` are the crawl's
    problems; `incomplete_repositories` the repositories they hit. `counts`: rows per table.
    """

    schema_version: int
    regstat_version: str | None = None
    id: str | None = None
    source: SourceInfo = SourceInfo(kind="unknown")
    capabilities: Capabilities = Capabilities()
    started_at: datetime | None = None
    finished_at: datetime | None = None
    resumed_at: tuple[datetime, ...] = ()
    complete: bool = False
    partial: bool = False
    repository_filter: tuple[str, ...] = ()
    source_repositories: int | None = None
    incomplete_repositories: tuple[str, ...] = ()
    errors: tuple[CrawlError, ...] = ()
    counts: Mapping[str, int] = field(default_factory=lambda: MappingProxyType({}))
    shard: ShardInfo | None = None  # one shard of a crawl, for `regstat merge`

    @property
    def errored_repositories(self) -> frozenset[str]:
        """The repositories with crawl errors, as either list of snapshot.json names them."""
        return frozenset(self.incomplete_repositories) | {e.repository for e in self.errors if e.repository}

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "schema_version": self.schema_version,
            "regstat_version": self.regstat_version,
            "id": self.id,
            "source": self.source.to_json(),
            "capabilities": self.capabilities.to_json(),
            "started_at": iso(self.started_at),
            "finished_at": iso(self.finished_at),
            "resumed_at": [iso(t) for t in self.resumed_at],
            "complete": self.complete,
            "partial": self.partial,
            "repository_filter": list(self.repository_filter),
            "source_repositories": self.source_repositories,
            "incomplete_repositories": list(self.incomplete_repositories),
            "errors": [e.to_json() for e in self.errors],
            "counts": {name: self.counts[name] for name in sorted(self.counts)},
        } | ({"shard": self.shard.to_json()} if self.shard else {})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> SnapshotInfo:
        """Parse snapshot.json (its format and version already checked: Snapshot.open)."""
        errors = _take(doc, "errors", list, [], "")
        return cls(
            schema_version=_take(doc, "schema_version", int, None, ""),
            regstat_version=_take(doc, "regstat_version", str, None, ""),
            id=_take(doc, "id", str, None, ""),
            source=SourceInfo.from_json(_object(doc, "source")),
            capabilities=Capabilities.from_json(_object(doc, "capabilities")),
            started_at=parse_time(_take(doc, "started_at", str, None, ""), "started_at"),
            finished_at=parse_time(_take(doc, "finished_at", str, None, ""), "finished_at"),
            resumed_at=tuple(parse_time(t, "resumed_at") for t in _texts(doc, "resumed_at")),  # type: ignore[misc]
            complete=_take(doc, "complete", bool, False, ""),
            partial=_take(doc, "partial", bool, False, ""),
            repository_filter=_texts(doc, "repository_filter"),
            source_repositories=_take(doc, "source_repositories", int, None, ""),
            incomplete_repositories=_texts(doc, "incomplete_repositories"),
            errors=tuple(_error(e) for e in errors),
            counts=_counts(doc),
            shard=ShardInfo.from_json(_object(doc, "shard")) if doc.get("shard") is not None else None,
        )
