"""Checking a registry's storage against :class:`~expected.Expected`, independently of regstat.

Not a crawler: it only looks at which link files and blob data exist (and reads tag links),
to prove the fixtures push what Expected says.

- :class:`FilesystemView` and :class:`S3View` read a tree; :func:`storage_view` picks one.
- :func:`verify_tree`, :func:`verify_api` and :func:`verify_storage` compare.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

from .components import ComponentError, Registry, S3Storage, aws_client
from .expected import Expected

LAYOUT_PREFIX = "docker/registry/v2/"


class StorageView:
    """Read-only access to a registry's tree: paths are relative to ``docker/registry/v2``."""

    def files(self) -> dict[str, int]:
        """Every file (object) with its size."""
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError


class FilesystemView(StorageView):
    def __init__(self, root: Path) -> None:
        self.base = root / LAYOUT_PREFIX

    def files(self) -> dict[str, int]:
        return {
            p.relative_to(self.base).as_posix(): p.stat().st_size
            for p in self.base.rglob("*")
            if p.is_file()
        }

    def read(self, path: str) -> bytes:
        return (self.base / path).read_bytes()


class S3View(StorageView):
    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.prefix = storage.key_prefix + LAYOUT_PREFIX
        self._client = aws_client("s3", storage.endpoint_url)

    def files(self) -> dict[str, int]:
        out: dict[str, int] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.storage.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
        return out

    def read(self, path: str) -> bytes:
        response = self._client.get_object(Bucket=self.storage.bucket, Key=self.prefix + path)
        return bytes(response["Body"].read())


def storage_view(registry: Registry) -> StorageView:
    """A view of ``registry``'s storage, whichever driver it uses."""
    if registry.root is not None:
        return FilesystemView(registry.root)
    assert registry.s3 is not None
    return S3View(registry.s3)


@dataclass
class _Observed:
    blobs: set[tuple[str, int]] = field(default_factory=set)
    revisions: set[tuple[str, str]] = field(default_factory=set)
    tags: set[tuple[str, str, str]] = field(default_factory=set)
    layers: set[tuple[str, str]] = field(default_factory=set)
    uploads: set[tuple[str, str]] = field(default_factory=set)
    upload_sizes: dict[tuple[str, str], int] = field(default_factory=dict)


def _observe(view: StorageView) -> _Observed:
    seen = _Observed()
    for path, size in view.files().items():
        parts = path.split("/")
        if parts[0] == "blobs" and parts[-1] == "data":
            seen.blobs.add((f"{parts[1]}:{parts[3]}", size))
        elif parts[0] == "repositories":
            _observe_repository_file(view, parts[1:], size, seen)
    return seen


def _observe_repository_file(view: StorageView, parts: list[str], size: int, seen: _Observed) -> None:
    for marker in ("_manifests", "_layers", "_uploads"):
        if marker in parts:
            at = parts.index(marker)
            repo, rest = "/".join(parts[:at]), parts[at + 1 :]
            break
    else:
        raise ComponentError(f"unexpected file in repositories/: {'/'.join(parts)}")
    if marker == "_layers" and rest[-1] == "link":
        seen.layers.add((repo, f"{rest[0]}:{rest[1]}"))
    elif marker == "_uploads":
        seen.uploads.add((repo, rest[0]))
        if rest[1:] == ["data"]:
            seen.upload_sizes[(repo, rest[0])] = size
    elif rest[0] == "revisions" and rest[-1] == "link":
        seen.revisions.add((repo, f"{rest[1]}:{rest[2]}"))
    elif rest[0] == "tags" and rest[2:] == ["current", "link"]:
        target = view.read("/".join(["repositories", *parts])).decode()
        seen.tags.add((repo, rest[1], target))


def verify_tree(view: StorageView, expected: Expected, *, upload_sizes: bool = True) -> None:
    """Raise ComponentError unless the tree holds exactly what ``expected`` says: blob data
    and sizes, revision, tag and layer links, and uploads (with their ``data`` sizes when
    ``upload_sizes``: the S3 driver keeps a partial upload as a multipart upload, not a file).
    """
    seen = _observe(view)
    want = _Observed(
        blobs={(b.digest, b.size) for b in expected.blobs},
        revisions={(m.repository, m.digest) for m in expected.manifests},
        tags=set(expected.tags),
        layers=set(expected.repository_blobs),
        uploads={(u.repository, u.uuid) for u in expected.uploads},
        upload_sizes={(u.repository, u.uuid): u.size for u in expected.uploads},
    )
    names = ["blobs", "revisions", "tags", "layers", "uploads"]
    if upload_sizes:
        names.append("upload_sizes")
    problems = []
    for name in names:
        got, exp = getattr(seen, name), getattr(want, name)
        if got != exp:
            problems.append(f"{name}: {got}, expected {exp}")
    if problems:
        raise ComponentError("storage differs from Expected:\n" + "\n".join(problems))


def verify_api(registry: Registry, expected: Expected) -> None:
    """Raise ComponentError unless the registry's catalog and tag lists match ``expected``."""
    problems = []
    repositories = sorted(r.repository for r in expected.repositories)
    if registry.catalog() != repositories:
        problems.append(f"catalog {registry.catalog()}, expected {repositories}")
    for repo in repositories:
        tags = sorted(t.tag for t in expected.tags if t.repository == repo)
        if registry.tags(repo) != tags:
            problems.append(f"{repo} tags {registry.tags(repo)}, expected {tags}")
    if problems:
        raise ComponentError("registry API differs from Expected:\n" + "\n".join(problems))


def verify_storage(registry: Registry, expected: Expected) -> None:
    """:func:`verify_tree` on the registry's storage, then :func:`verify_api`."""
    verify_tree(storage_view(registry), expected, upload_sizes=registry.root is not None)
    verify_api(registry, expected)
