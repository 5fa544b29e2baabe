"""The storage a distribution registry keeps its tree in: a local directory or an S3 bucket.

Both backends answer the same three questions (and apply-gc's one deletion, `remove`), with paths relative to the tree's
`docker/registry/v2` directory and always `/`-separated:

- `listdir(prefix)`: the directories and the files directly under a directory (for sharding
  listings, and to notice stray files at the top of the tree);
- `walk(prefix)`: every file below a directory, with its size and modification time (hints
  may let it skip directories the caller ignores, or look at the one file a directory keeps
  instead of listing it);
- `read_many(paths, limit)`: files' bytes (at most `limit` each), or the `OSError` that
  reading each one met: `FileNotFoundError` when it is missing.

Local storage is crawled by worker processes, each reading its files in turn; S3 storage by
threads, and `read_many` keeps many requests in flight.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Callable, Generator, Iterator
from stat import S_ISLNK, S_ISREG
from typing import NamedTuple, Protocol, runtime_checkable

from ...errors import SourceError
from ...snapshot.info import SourceInfo

LAYOUT_ROOT = "docker/registry/v2"
_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)


class Entry(NamedTuple):
    """A file in the tree. `symlink` entries are reported, never followed.

    A named tuple, not a frozen dataclass: a crawl makes one per file, and building a frozen
    dataclass costs several times as much.

    `modified_us` is the modification time in microseconds since the epoch (UTC): an integer,
    because a crawl makes one per file and datetimes are costly in bulk.

    `bad_name` entries are files or directories whose name is not UTF-8 (possible on disk, not
    in S3): `path` shows the name with its bytes escaped, so it names nothing that can be read;
    a directory among them is reported as one entry, not entered.
    """

    path: str
    size: int
    modified_us: int
    symlink: bool = False
    bad_name: bool = False


class Storage(Protocol):
    location: str
    driver: str
    processes: bool  # whether to crawl with worker processes (else threads)
    default_concurrency: int

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]: ...

    def walk(
        self, prefix: str, skip: Callable[[str], bool] | None = None, leaf: Callable[[str], str | None] | None = None
    ) -> Iterator[Entry]:
        """Every file below `prefix`. Two hints, which flat stores such as S3 ignore (they list
        every key regardless): `skip` may prune directories the caller ignores anyway; `leaf`
        names, for a directory, the one file each of its subdirectories is expected to hold."""
        ...

    def read_many(self, paths: list[str], limit: int) -> dict[str, bytes | OSError]: ...

    def remove(self, paths: list[str], directories: list[str]) -> dict[str, OSError]:
        """Delete files (apply-gc) and, where the storage has directories, these directories
        once empty; return the files that could not be deleted (an absent one is deleted)."""
        ...

    def describe(self) -> SourceInfo: ...


@runtime_checkable
class PagedStorage(Storage, Protocol):
    """A storage that lists in pages (S3): a whole directory's files in one request when they
    fit a page, and a listing resumed past any path, so that ranges of a large one (the
    blobs) can be listed in parallel. The crawl's jobs use it where the storage is one."""

    def list_page(self, prefix: str, after: str = "") -> tuple[list[Entry], bool]:
        """The first page of `walk(prefix)` (past the path `after`), and whether more follow."""
        ...

    def walk_pages(self, prefix: str, after: str | None = None) -> Generator[list[Entry], None, None]:
        """`walk(prefix)` a page at a time, from the first path past `after`; closing the
        generator stops the listing (list_blob_range stops at the end of its range)."""
        ...


class FilesystemStorage:
    """A storage tree on a local (or mounted) file system."""

    driver = "filesystem"
    processes = True  # the per-file work is Python: worker processes, one per core
    default_concurrency = os.cpu_count() or 2

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

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="storage-layout", driver=self.driver, location=self.location)

    def _local(self, path: str) -> str:
        return os.path.join(self._base, *[p for p in path.split("/") if p])

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]:
        directories, files = [], []
        try:
            with os.scandir(self._local(prefix)) as it:
                for e in it:
                    st = e.stat(follow_symlinks=False)
                    if not _is_utf8(e.name):
                        files.append(_bad_name_entry(prefix, e.name, st))
                    elif stat.S_ISDIR(st.st_mode):
                        directories.append(e.name)
                    else:
                        path = f"{prefix}/{e.name}"
                        files.append(Entry(path, st.st_size, st.st_mtime_ns // 1000, stat.S_ISLNK(st.st_mode)))
        except FileNotFoundError:
            pass
        return sorted(directories), files

    def walk(
        self, prefix: str, skip: Callable[[str], bool] | None = None, leaf: Callable[[str], str | None] | None = None
    ) -> Iterator[Entry]:
        # A crawl calls this for every one of a tree's directories (one per blob, one per
        # link): each carries its local path (DirEntry.path) so none is joined again.
        top = prefix.rstrip("/")
        stack = [(top, self._local(top))]
        while stack:
            directory, local = stack.pop()
            try:
                it = os.scandir(local)
            except (FileNotFoundError, NotADirectoryError):
                continue  # removed (or replaced) while we walked; the caller sees it as absent
            expected = leaf(directory) if leaf else None
            with it:
                for e in it:
                    name = e.name
                    path = f"{directory}/{name}"
                    if not (name.isascii() or _is_utf8(name)):
                        yield _bad_name_entry(directory, name, e.stat(follow_symlinks=False))
                        continue
                    if e.is_dir(follow_symlinks=False):  # from the directory entry: no syscall
                        if skip is not None and skip(path):
                            continue
                        found = _leaf_entry(path, e.path, expected) if expected else None
                        if found is None:
                            stack.append((path, e.path))
                        else:
                            yield found
                        continue
                    file = _file_entry(path, e.stat(follow_symlinks=False))
                    if file is not None:
                        yield file

    def read_many(self, paths: list[str], limit: int) -> dict[str, bytes | OSError]:
        contents: dict[str, bytes | OSError] = {}
        for path in paths:
            try:
                contents[path] = self._read(path, limit)
            except OSError as e:
                contents[path] = e
        return contents

    def remove(self, paths: list[str], directories: list[str]) -> dict[str, OSError]:
        """Delete these files, then each of `directories` where nothing is left below it
        (apply-gc: the registry's own deletions remove whole directories); return the files
        that could not be deleted. A file already absent counts as deleted."""
        failed: dict[str, OSError] = {}
        for path in paths:
            try:
                os.unlink(self._local(path))
            except FileNotFoundError:
                pass
            except OSError as e:
                failed[path] = e
        for directory in directories:
            _remove_empty(self._local(directory))
        return failed

    def _read(self, path: str, limit: int) -> bytes:
        # O_NOFOLLOW: a symlink planted in the tree must not make us read outside it.
        fd = os.open(self._local(path), os.O_RDONLY | _NOFOLLOW)
        try:
            return read_fd(fd, limit)
        finally:
            os.close(fd)


def _remove_empty(top: str) -> None:
    """Remove `top` and the directories below it, if no file is left in them."""
    for local, _, _ in os.walk(top, topdown=False):  # deepest first
        try:
            os.rmdir(local)
        except OSError:
            pass  # not empty (a file appeared, or was not deleted): it stays


def _leaf_entry(directory: str, local: str, name: str) -> Entry | None:
    """The file `name` in a directory that should hold it alone (a digest's `link` or `data`),
    looked at directly: one lstat instead of opening, listing and closing the directory, for
    each of a tree's hundreds of thousands of such directories (the 141,376 layer links of
    benchmarks/RESULTS.md's 5,000-repository tree: 1.2 s of CPU listed, 0.5 s looked at).
    None when it is missing or not a file or symlink: the caller then lists the directory
    as any other, so whatever it holds is reported. What this cannot see is an extra file
    beside `name`, which no figure reads and the registry never writes."""
    try:
        return _file_entry(f"{directory}/{name}", os.lstat(f"{local}/{name}"))
    except OSError:
        return None


def _file_entry(path: str, st: os.stat_result) -> Entry | None:
    """A regular file or a symlink (reported, never followed); None for anything else."""
    mode = st.st_mode
    if S_ISREG(mode):
        return Entry(path, st.st_size, st.st_mtime_ns // 1000)
    if S_ISLNK(mode):
        return Entry(path, st.st_size, st.st_mtime_ns // 1000, True)
    return None


def _is_utf8(name: str) -> bool:
    """Whether a name from the file system is UTF-8 (Python decodes other bytes as surrogates,
    which no Parquet or JSON writer accepts)."""
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def _bad_name_entry(directory: str, name: str, st: os.stat_result) -> Entry:
    shown = os.fsencode(name).decode("utf-8", "backslashreplace")
    return Entry(f"{directory}/{shown}", st.st_size, st.st_mtime_ns // 1000, stat.S_ISLNK(st.st_mode), True)


def read_fd(fd: int, limit: int) -> bytes:
    """At most `limit` bytes from an open file (os.read may return fewer than asked)."""
    chunks = []
    while limit > 0:
        chunk = os.read(fd, limit)
        if not chunk:
            break
        chunks.append(chunk)
        limit -= len(chunk)
    return b"".join(chunks)
