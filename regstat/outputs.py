"""Where regstat may write (DESIGN safety rule 8): never inside a snapshot or a local SOURCE.

What `crawl --force` may replace is the snapshot's own rule (`snapshot.why_not_replaceable`).
Paths are compared with symbolic links resolved, and by inode too, so that a second path to
the same directory (a bind mount) is still seen for what it is.
"""

from __future__ import annotations

import os
from pathlib import Path

from .errors import OutputRefusedError
from .snapshot import Snapshot, is_regstat_directory
from .sources import local_directory


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
        raise OutputRefusedError(f"{output}: inside the snapshot {snapshot}, which is never written; choose a DIR outside it")
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
    if within(target, snapshot.path):
        enclosing: Path | None = snapshot.path
    else:
        enclosing = enclosing_snapshot(target)
    if enclosing is not None:
        raise OutputRefusedError(f"{path}: inside the snapshot {enclosing}, which is never written; choose a path outside it")
    source = local_directory(snapshot.metadata.get("source") or {})
    if source is not None and within(target, source):
        raise OutputRefusedError(
            f"{path}: inside {source}, the SOURCE the snapshot was crawled from, which regstat never "
            "writes; choose a path outside it"
        )
    if target.is_dir():
        raise OutputRefusedError(f"{path}: is a directory; give the path of a file")
    return target
