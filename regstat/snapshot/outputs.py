"""Where regstat may write (DESIGN safety rule 8): never inside a snapshot or a local SOURCE.

What `crawl --force` may replace is the snapshot's own rule (`why_not_replaceable`).
Paths are compared with symbolic links resolved, and by inode too, so that a second path to
the same directory (a bind mount) is still seen for what it is.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

from ..errors import OutputRefusedError
from .reader import Snapshot
from .schemas import FORMAT, PARTIAL_MARK, STORED_TABLES, part_number

_FORCE_REPLACES_ONLY = "--force replaces only a regstat snapshot or an empty directory: choose another DIR"


def within(inner: Path, outer: Path) -> bool:
    """Whether `inner` is `outer` or lies below it (neither needs to exist)."""
    inner, outer = inner.resolve(), outer.resolve()
    if inner.is_relative_to(outer):
        return True
    try:
        target = outer.stat()
    except OSError:
        return False
    for ancestor in (inner, *inner.parents):
        try:
            if os.path.samestat(ancestor.stat(), target):
                return True
        except OSError:
            continue  # not there (yet): its parent may be
    return False


def enclosing_snapshot(path: Path) -> Path | None:
    """The snapshot (or crawl's hidden directory) that `path` is or lies inside, if any."""
    resolved = path.resolve()
    return next((d for d in (resolved, *resolved.parents) if is_regstat_directory(d)), None)


def check_crawl_output(output: str | os.PathLike[str], source: Path | None) -> None:
    """Refuse a crawl's DIR inside a snapshot, or equal to, inside or around the local SOURCE
    (`source`; None for S3 and registries), before the crawl writes anything."""
    path = Path(output).absolute()
    snapshot = enclosing_snapshot(path.parent)  # DIR itself may be a snapshot, for --force
    if snapshot is not None:
        raise OutputRefusedError(
            f"{output}: inside the snapshot {snapshot}, which is never written; choose a DIR outside it")
    if source is None:
        return
    inside, around = within(path, source), within(source, path)
    if inside or around:
        where = "is" if inside and around else ("lies inside" if inside else "holds")
        raise OutputRefusedError(
            f"{output}: {where} the SOURCE {source}; a crawl never writes inside what it reads nor "
            "replaces it: choose a DIR outside it"
        )


def check_file_output(snapshot: Snapshot, path: str | os.PathLike[str]) -> Path:
    """`path`, resolved, for a file written from `snapshot` (a report, a plan, a query result, a
    database): not a directory, not inside a snapshot (this one or another) or the local SOURCE
    the snapshot was crawled from. An existing file there is the caller's to replace."""
    target = Path(path).resolve()
    if snapshot.path is not None and within(target, snapshot.path):  # None: a remote URL, nothing local
        enclosing: Path | None = snapshot.path
    else:
        enclosing = enclosing_snapshot(target)
    if enclosing is not None:
        raise OutputRefusedError(
            f"{path}: inside the snapshot {enclosing}, which is never written; choose a path outside it")
    source = snapshot.info.source.local_directory
    if source is not None and within(target, source):
        raise OutputRefusedError(
            f"{path}: inside {source}, the SOURCE the snapshot was crawled from, which regstat never "
            "writes; choose a path outside it"
        )
    if target.is_dir():
        raise OutputRefusedError(f"{path}: is a directory; give the path of a file")
    return target


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

