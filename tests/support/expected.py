"""What a populated registry holds, table by table, in the snapshot's column names.

- The row types (:class:`TagRow`, :class:`ManifestRow`, …) and :data:`ROW_TYPES`.
- :class:`Expected`, the rows of every table (with a JSON form, the committed trees' ``EXPECTED.json``).
- :class:`_Recorder` builds an :class:`Expected` while a scenario is pushed.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from . import images
from .components import Registry
from .images import Descriptor, Image, Index, Manifest, sha256_digest

# Row types name their fields after the snapshot's columns (docs/snapshot.md), so a test can
# select exactly these columns from a snapshot table and compare sets of tuples.


class RepositoryRow(NamedTuple):
    repository: str
    complete: bool = True
    error_count: int = 0


class TagRow(NamedTuple):
    repository: str
    tag: str
    digest: str


class ManifestRow(NamedTuple):
    repository: str
    digest: str
    media_type: str
    artifact_type: str | None
    config_media_type: str | None
    size: int
    subject_digest: str | None
    status: str = "ok"


class DescriptorRow(NamedTuple):
    repository: str
    manifest_digest: str
    role: str
    position: int
    digest: str
    media_type: str | None
    size: int
    platform: str | None
    artifact_type: str | None
    repeated: bool = False


def with_repeats(rows: list[DescriptorRow]) -> list[DescriptorRow]:
    """`rows` (one manifest's) with `repeated` set where the manifest names a digest more than
    once as config, layer or child (schema 1's empty layer, for one)."""
    references = [r.digest for r in rows if r.role != "subject"]
    return [r._replace(repeated=r.role != "subject" and references.count(r.digest) > 1) for r in rows]


class BlobRow(NamedTuple):
    digest: str
    size: int
    stored: bool = True


class RepositoryBlobRow(NamedTuple):
    repository: str
    digest: str


class UploadRow(NamedTuple):
    repository: str
    uuid: str
    size: int  # bytes sent; only the filesystem driver keeps them as a `data` file


ROW_TYPES: dict[str, type] = {
    "repositories": RepositoryRow,
    "tags": TagRow,
    "manifests": ManifestRow,
    "descriptors": DescriptorRow,
    "blobs": BlobRow,
    "repository_blobs": RepositoryBlobRow,
    "uploads": UploadRow,
}


@dataclass
class Expected:
    """Exactly what a populated registry's storage holds, table by table.

    ``names`` maps the scenario's symbolic names (``"web_old"``, ``"signature"``,
    ``"unreferenced_blob"``, ``"upload"``, …) to digests or upload uuids, so tests can talk
    about a particular object without recomputing it.
    """

    repositories: set[RepositoryRow] = field(default_factory=set)
    tags: set[TagRow] = field(default_factory=set)
    manifests: set[ManifestRow] = field(default_factory=set)
    descriptors: set[DescriptorRow] = field(default_factory=set)
    blobs: set[BlobRow] = field(default_factory=set)
    repository_blobs: set[RepositoryBlobRow] = field(default_factory=set)
    uploads: set[UploadRow] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> set[tuple[Any, ...]]:
        """The rows of table ``name``."""
        return getattr(self, name)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: each table a sorted list of {column: value} objects."""
        out: dict[str, Any] = {
            "format": "regstat.tests.expected/1",
            "names": dict(sorted(self.names.items())),
        }
        for name in ROW_TYPES:
            rows = sorted(self.table(name), key=_sort_key)
            out[name] = [row._asdict() for row in rows]
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> Expected:
        tables = {name: {row_type(**row) for row in doc[name]} for name, row_type in ROW_TYPES.items()}
        return cls(**tables, names=dict(doc["names"]))


class Populated(NamedTuple):
    """A registry holding the standard scenario, and what its storage holds."""

    registry: Registry
    expected: Expected


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # None sorts before everything, without comparing None with str.
    return tuple((value is not None, value) for value in row)


class _Recorder:
    """Builds an :class:`Expected` while the scenario is pushed, mirroring what the registry
    does to its storage (links, overwritten tags, deletions that leave blobs behind)."""

    def __init__(self) -> None:
        self.repositories: set[str] = set()
        self.tags: dict[tuple[str, str], str] = {}
        self.manifests: dict[tuple[str, str], ManifestRow] = {}
        self.descriptors: dict[tuple[str, str], list[DescriptorRow]] = {}
        self.blobs: dict[str, int] = {}
        self.links: set[RepositoryBlobRow] = set()
        self.uploads: set[UploadRow] = set()
        self.names: dict[str, str] = {}

    def blob(self, repo: str, data: bytes) -> str:
        """A blob uploaded into ``repo``: stored once registry-wide, linked into ``repo``."""
        digest = sha256_digest(data)
        self.repositories.add(repo)
        self.blobs[digest] = len(data)
        self.links.add(RepositoryBlobRow(repo, digest))
        return digest

    def image(self, repo: str, image: Image) -> str:
        """An image manifest put into ``repo`` after its blobs were uploaded there."""
        for data in image.blobs.values():
            self.blob(repo, data)
        rows = [self._descriptor(repo, image.digest, "config", 0, image.config)]
        rows += [self._descriptor(repo, image.digest, "layer", i, d) for i, d in enumerate(image.layers)]
        if image.subject is not None:
            rows.append(self._descriptor(repo, image.digest, "subject", 0, image.subject))
        return self._manifest(repo, image, image.config.media_type, rows)

    def index(self, repo: str, index: Index) -> str:
        """An index put into ``repo`` after its children were put there by digest."""
        for child in index.children:
            self.image(repo, child)
        rows = [
            self._descriptor(repo, index.digest, "manifest", i, d)
            for i, d in enumerate(index.child_descriptors)
        ]
        return self._manifest(repo, index, None, rows)

    def schema1(self, repo: str, payload: bytes, layers: Mapping[str, bytes]) -> str:
        """A Docker schema 1 manifest (stored as its JWS payload) and its layers.

        Schema 1 layers have no media type or size of their own: the descriptor's size is
        the stored blob's, and positions follow ``fsLayers`` as stored (newest layer first).
        """
        for data in layers.values():
            self.blob(repo, data)
        digest = sha256_digest(payload)
        fs_layers = [entry["blobSum"] for entry in json.loads(payload)["fsLayers"]]
        rows = [
            DescriptorRow(repo, digest, "layer", i, d, None, self.blobs[d], None, None)
            for i, d in enumerate(fs_layers)
        ]
        self.blobs[digest] = len(payload)
        self.manifests[(repo, digest)] = ManifestRow(
            repo, digest, images.DOCKER_SCHEMA1_SIGNED, None, None, len(payload), None
        )
        self.descriptors[(repo, digest)] = with_repeats(rows)
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        self.tags[(repo, tag)] = digest

    def delete(self, repo: str, digest: str) -> None:
        """A manifest deleted through the API: its revision link and every tag pointing at it
        go; its blob and its config and layers stay stored and linked (until a GC)."""
        del self.manifests[(repo, digest)]
        del self.descriptors[(repo, digest)]
        for key in [k for k, v in self.tags.items() if k[0] == repo and v == digest]:
            del self.tags[key]

    def upload(self, repo: str, uuid: str, size: int) -> None:
        self.repositories.add(repo)
        self.uploads.add(UploadRow(repo, uuid, size))

    def expected(self) -> Expected:
        return Expected(
            repositories={RepositoryRow(r) for r in self.repositories},
            tags={TagRow(r, t, d) for (r, t), d in self.tags.items()},
            manifests=set(self.manifests.values()),
            descriptors={row for rows in self.descriptors.values() for row in rows},
            blobs={BlobRow(d, size) for d, size in self.blobs.items()},
            repository_blobs=set(self.links),
            uploads=set(self.uploads),
            names=dict(self.names),
        )

    def _descriptor(
        self, repo: str, manifest: str, role: str, position: int, d: Descriptor
    ) -> DescriptorRow:
        platform = str(d.platform) if d.platform is not None else None
        return DescriptorRow(
            repo, manifest, role, position, d.digest, d.media_type, d.size, platform, d.artifact_type
        )

    def _manifest(
        self, repo: str, m: Manifest, config_type: str | None, rows: list[DescriptorRow]
    ) -> str:
        self.repositories.add(repo)
        self.blobs[m.digest] = m.size  # a manifest is itself a stored blob (not linked)
        artifact_type = m.artifact_type if isinstance(m, Image) else None
        subject = m.subject.digest if isinstance(m, Image) and m.subject else None
        self.manifests[(repo, m.digest)] = ManifestRow(
            repo, m.digest, m.media_type, artifact_type, config_type, m.size, subject
        )
        self.descriptors[(repo, m.digest)] = with_repeats(rows)
        return m.digest
