"""What ACR's ``/acr/v1/`` API tells, read from a docker-registry's storage tree on disk.

The stand-in must not learn the registry's content through regstat's crawler (that would test
regstat against itself), so this module reads the tree with its own few lines:

- repositories: directories under ``docker/registry/v2/repositories/`` holding ``_manifests``;
- manifests: ``<repo>/_manifests/revisions/sha256/<hex>/link`` (created: the link's mtime);
- tags: ``<repo>/_manifests/tags/<tag>/current/link`` (the digest; last update: its mtime;
  created: the oldest link under ``index/``);
- a manifest's bytes, and an image's config, from ``blobs/sha256/<xx>/<hex>/data``.

Times are nanoseconds since the epoch. A link removed while it is read (a DELETE running
meanwhile) counts as gone. Nothing here depends on pytest.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

OCI_INDEX = "application/vnd.oci.image.index.v1+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
INDEX_TYPES = (OCI_INDEX, DOCKER_LIST)


@dataclass(frozen=True)
class StoredTag:
    name: str
    digest: str
    created: int
    updated: int


@dataclass(frozen=True)
class StoredManifest:
    """One revision of a repository, with what ACR derives from its content."""

    digest: str
    created: int
    media_type: str
    size: int  # ACR's imageSize: the manifest, its config and its layers (an index: itself)
    config_media_type: str | None
    architecture: str | None
    os: str | None
    references: tuple[dict[str, str], ...]  # an index's children: digest, architecture, os


class StorageTree:
    """A registry's storage tree (the directory holding ``docker/``), read on each call."""

    def __init__(self, root: Path) -> None:
        self.v2 = root / "docker" / "registry" / "v2"

    @property
    def _repositories_dir(self) -> Path:
        return self.v2 / "repositories"

    def repositories(self) -> list[str]:
        base = self._repositories_dir
        if not base.is_dir():
            return []
        found = [p.parent.relative_to(base).as_posix() for p in base.rglob("_manifests") if p.is_dir()]
        return sorted(name for name in found if "/_" not in f"/{name}")

    def _manifests_dir(self, repository: str) -> Path:
        return self._repositories_dir / repository / "_manifests"

    def exists(self, repository: str) -> bool:
        return self._manifests_dir(repository).is_dir()

    def revisions(self, repository: str) -> dict[str, int]:
        """Digest -> the revision link's mtime (ns), for every manifest the repository holds."""
        out = {}
        for link in (self._manifests_dir(repository) / "revisions" / "sha256").glob("*/link"):
            read = _link(link)
            if read is not None:
                out[read[0]] = read[1]
        return out

    def tags(self, repository: str) -> dict[str, StoredTag]:
        out = {}
        for current in (self._manifests_dir(repository) / "tags").glob("*/current/link"):
            read = _link(current)
            if read is None:
                continue
            name, (digest, updated) = current.parent.parent.name, read
            index = [found[1] for p in (current.parent.parent / "index").glob("sha256/*/link") if (found := _link(p))]
            out[name] = StoredTag(name, digest, min([updated, *index]), updated)
        return out

    def blob(self, digest: str) -> bytes | None:
        algorithm, _, hex_ = digest.partition(":")
        path = self.v2 / "blobs" / algorithm / hex_[:2] / hex_ / "data"
        try:
            return path.read_bytes()
        except OSError:
            return None

    def manifest(self, digest: str, created: int) -> StoredManifest:
        body = self.blob(digest) or b"{}"
        doc = _json(body)
        media_type = doc.get("mediaType") or (OCI_INDEX if "manifests" in doc else OCI_MANIFEST)
        if media_type in INDEX_TYPES:
            references = tuple(
                {"digest": child.get("digest", ""), **_platform(child.get("platform") or {})}
                for child in doc.get("manifests") or []
            )
            return StoredManifest(digest, created, media_type, len(body), None, None, None, references)
        config = doc.get("config") or {}
        size = len(body) + int(config.get("size") or 0) + sum(int(d.get("size") or 0) for d in doc.get("layers") or [])
        platform = _platform(_json(self.blob(config.get("digest", "")) or b"{}"))
        return StoredManifest(digest, created, media_type, size, config.get("mediaType"),
                              platform.get("architecture"), platform.get("os"), ())


def _link(path: Path) -> tuple[str, int] | None:
    """A link file's digest and mtime; None when it went (a delete ran meanwhile)."""
    try:
        return path.read_text().strip(), path.stat().st_mtime_ns
    except OSError:
        return None


def _json(data: bytes) -> dict:
    try:
        doc = json.loads(data)
    except ValueError:
        return {}
    return doc if isinstance(doc, dict) else {}


def _platform(doc: dict) -> dict[str, str]:
    return {key: doc[key] for key in ("architecture", "os") if isinstance(doc.get(key), str)}
