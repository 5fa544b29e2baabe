"""The storage a distribution registry keeps its tree in: a local directory or an S3 bucket.

Both backends answer the same three questions, with paths relative to the tree's
`docker/registry/v2` directory and always `/`-separated:

- `listdir(prefix)`: the directories and the files directly under a directory (for sharding
  listings, and to notice stray files at the top of the tree);
- `walk(prefix)`: every file below a directory, with its size and modification time;
- `read(path, limit)`: a file's bytes.

A missing file is `FileNotFoundError`; any other failure to read is `OSError`.
"""

from __future__ import annotations

import os
import stat
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Iterator, Protocol

from ..errors import SourceError

LAYOUT_ROOT = "docker/registry/v2"


@dataclass(frozen=True)
class Entry:
    """A file in the tree. `symlink` entries are reported, never followed."""

    path: str
    size: int
    modified_at: datetime
    symlink: bool = False


class Storage(Protocol):
    location: str
    driver: str

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]: ...

    def walk(self, prefix: str) -> Iterator[Entry]: ...

    def read(self, path: str, limit: int) -> bytes: ...

    def describe(self) -> dict[str, str]: ...


class FilesystemStorage:
    """A storage tree on a local (or mounted) file system."""

    driver = "filesystem"

    def __init__(self, root: str) -> None:
        self.location = os.path.abspath(root)
        self._base = os.path.join(self.location, *LAYOUT_ROOT.split("/"))
        if not os.path.isdir(self.location):
            raise SourceError(f"{root}: no such directory")
        if not os.path.isdir(self._base):
            raise SourceError(
                f"{root}: not a registry storage root (no {LAYOUT_ROOT} inside it); "
                "give the directory the registry's `rootdirectory` setting names"
            )
        if not os.access(self._base, os.R_OK | os.X_OK):
            raise SourceError(f"{root}: permission denied")

    def describe(self) -> dict[str, str]:
        return {"kind": "storage-layout", "driver": self.driver, "location": self.location}

    def _local(self, path: str) -> str:
        return os.path.join(self._base, *[p for p in path.split("/") if p])

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]:
        directories, files = [], []
        try:
            with os.scandir(self._local(prefix)) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        directories.append(e.name)
                    else:
                        path = f"{prefix}/{e.name}"
                        files.append(Entry(path, st.st_size, _utc(st.st_mtime), stat.S_ISLNK(st.st_mode)))
        except FileNotFoundError:
            pass
        return sorted(directories), files

    def walk(self, prefix: str) -> Iterator[Entry]:
        stack = [prefix.rstrip("/")]
        while stack:
            directory = stack.pop()
            try:
                it = os.scandir(self._local(directory))
            except FileNotFoundError:
                continue  # removed while we walked; the caller sees it as absent
            with it:
                for e in it:
                    path = f"{directory}/{e.name}"
                    st = e.stat(follow_symlinks=False)
                    if stat.S_ISDIR(st.st_mode):
                        stack.append(path)
                    elif stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
                        yield Entry(path, st.st_size, _utc(st.st_mtime), stat.S_ISLNK(st.st_mode))

    def read(self, path: str, limit: int) -> bytes:
        local = self._local(path)
        # O_NOFOLLOW: a symlink planted in the tree must not make us read outside it.
        fd = os.open(local, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        with os.fdopen(fd, "rb") as f:
            return f.read(limit)


def _utc(timestamp: float) -> datetime:
    return datetime.fromtimestamp(timestamp, tz=timezone.utc)


def open_storage(source: str, *, endpoint_url: str | None = None, concurrency: int = 16) -> Storage:
    """Open SOURCE: a directory, `file://PATH` or `s3://bucket[/prefix]`."""
    if source.startswith("s3://"):
        from .s3 import S3Storage

        return S3Storage(source, endpoint_url=endpoint_url, max_connections=concurrency)
    if source.startswith("file://"):
        source = source[len("file://") :]
    elif "://" in source:
        raise SourceError(
            f"{source}: unsupported source; give a directory, file://PATH or s3://BUCKET[/PREFIX]"
        )
    return FilesystemStorage(source)
