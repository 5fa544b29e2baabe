"""apply-gc's target for an OCI image layout (`oci-layout`): one directory, one repository.

- A tag is an `index.json` entry named by `org.opencontainers.image.ref.name`: deleting it
  rewrites index.json without the entries of that name and digest, keeping everything else
  in the file (other entries, their annotations, keys regstat does not know). The rewrite is
  atomic: a temporary file beside it, fsynced, renamed over it, then the directory fsynced;
  if index.json changed while it was being rewritten (another writer), it is read and
  rewritten again, so the other writer's change is kept.
- A manifest leaves the layout when no entry lists it any more (its tags went in the tag
  phase): its deletion checks that, and refuses one index.json still lists, under a name the
  plan keeps (`tagged`) or none at all (`root`: an unnamed entry keeps it whatever the tags).
  Its blob is deleted in the blob phase, as any other.
- A blob is `blobs/<alg>/<hex>`, unlinked; `bytes_freed` is the size of the file removed.

Nothing is opened through a symbolic link (as the crawl reads the layout).
"""

from __future__ import annotations

import errno
import json
import os
import stat
import threading
from collections.abc import Callable, Sequence
from typing import Any

from ..errors import SourceError
from ..sources.oci_layout import INDEX_JSON_LIMIT, REF_NAME, blob_path, open_below, read_file, read_index_json
from .tag_rules import kept_tags
from .target import DELETED, FAILED, GONE, SKIPPED, Action, Live, LiveCheckError, Outcome, Planned

INDEX_JSON = "index.json"
REWRITE_ATTEMPTS = 5  # index.json changed under us this often: give up (FAILED), change nothing


class OciLayoutTarget:
    """Deletes from the OCI image layout at `location` (an absolute path)."""

    deletes_blobs = True

    def __init__(self, location: str) -> None:
        self.location = location
        self._rewriting = threading.Lock()  # batches in flight (--concurrency) rewrite index.json one at a time

    def live_tag(self, repository: str, tag: str) -> str | None:
        tags = self._index().tags
        return next((digest for name, digest in tags if name == tag), None)

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        if action.kind in ("delete_tag", "delete_blob"):
            return None
        if action.kind != "delete_manifest":
            return Outcome(SKIPPED, "not_deletable", f"an OCI layout has no {action.kind}")
        try:
            index = self._index()
        except LiveCheckError as e:
            return Outcome(FAILED, e.reason, e.detail)
        digest, repository = action.digest or "", action.repository or ""
        if index.unnamed is None or digest in index.unnamed:
            return Outcome(SKIPPED, "root", "index.json lists it without a name: it is kept whatever its tags")
        named = sorted({tag for tag, listed in index.tags if listed == digest} | set(kept_tags(action, planned, live)))
        kept = [tag for tag in named if not planned.deletes_tag(repository, tag)]
        if kept:
            return Outcome(SKIPPED, "tagged", f"index.json names it {', '.join(kept[:5])}")
        return None

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        if not actions:
            return []
        kind = actions[0].kind
        if kind == "delete_tag":
            return self._delete_tags(actions)
        if kind == "delete_manifest":
            listed = set(self._index().roots)
            return [Outcome(SKIPPED, "tagged", "index.json lists it again") if a.digest in listed
                    else Outcome(DELETED if self._blob_size(a.digest or "") is not None else GONE) for a in actions]
        if kind == "delete_blob":
            return self._delete_blobs(actions)
        return [Outcome(SKIPPED, "not_deletable", f"an OCI layout has no {kind}") for _ in actions]

    def close(self) -> None:
        pass

    # -- index.json

    def _index(self) -> Any:
        try:
            return read_index_json(self.location)
        except SourceError as e:
            raise LiveCheckError("unreadable", str(e)) from None

    def _delete_tags(self, actions: Sequence[Action]) -> list[Outcome]:
        wanted = {(a.tag, a.digest) for a in actions}
        removed: set[tuple[str, str]] = set()

        def keep(entry: Any) -> bool:
            annotations = entry.get("annotations") if isinstance(entry, dict) else None
            name = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
            key = (name, entry.get("digest") if isinstance(entry, dict) else None)
            if key in wanted:
                removed.add(key)  # type: ignore[arg-type]
                return False
            return True

        try:
            with self._rewriting:
                self._rewrite_index(keep, removed)
        except (OSError, ValueError) as e:
            detail = f"cannot rewrite index.json: {e}"
            return [Outcome(FAILED, "io_error", detail) for _ in actions]
        return [Outcome(DELETED if (a.tag, a.digest) in removed else GONE) for a in actions]

    def _rewrite_index(self, keep: Callable[[Any], bool], removed: set) -> None:
        """Replace index.json by itself without the entries `keep` refuses; `removed` holds
        what the replacement left out (empty when nothing needed to change)."""
        directory = os.open(self.location, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        try:
            for _ in range(REWRITE_ATTEMPTS):
                removed.clear()
                before = _identity(directory)
                body, _ = read_file(self.location, INDEX_JSON, INDEX_JSON_LIMIT + 1)
                document = json.loads(body)
                entries = document.get("manifests") if isinstance(document, dict) else None
                if not isinstance(entries, list):
                    raise ValueError("index.json has no list of manifests")
                kept = [entry for entry in entries if keep(entry)]
                if len(kept) == len(entries):
                    return
                document["manifests"] = kept
                if _replace(directory, json.dumps(document, separators=(",", ":"), ensure_ascii=False).encode(),
                            before):
                    return
            raise ValueError(f"it kept changing while being rewritten ({REWRITE_ATTEMPTS} tries)")
        finally:
            os.close(directory)

    # -- blobs

    def _blob_size(self, digest: str) -> int | None:
        try:
            fd = open_below(self.location, blob_path(digest), directory=False)
        except FileNotFoundError:
            return None
        try:
            return os.fstat(fd).st_size
        finally:
            os.close(fd)

    def _delete_blobs(self, actions: Sequence[Action]) -> list[Outcome]:
        outcomes = []
        folders: dict[str, int | OSError] = {}  # blobs/<alg> -> its open descriptor
        try:
            for action in actions:
                folder, _, name = blob_path(action.digest or "").rpartition("/")
                if folder not in folders:
                    try:
                        folders[folder] = open_below(self.location, folder, directory=True)
                    except OSError as e:
                        folders[folder] = e
                directory = folders[folder]
                if isinstance(directory, FileNotFoundError):
                    outcomes.append(Outcome(GONE))
                elif isinstance(directory, OSError):
                    outcomes.append(Outcome(FAILED, "io_error", f"{folder}: {directory.strerror or directory}"))
                else:
                    outcomes.append(_unlink(directory, name))
            for directory in folders.values():
                if isinstance(directory, int):
                    os.fsync(directory)  # the removals survive a crash once they are journaled
        finally:
            for directory in folders.values():
                if isinstance(directory, int):
                    os.close(directory)
        return outcomes


def _identity(directory: int) -> tuple[int, int, int] | None:
    try:
        status = os.stat(INDEX_JSON, dir_fd=directory, follow_symlinks=False)
    except FileNotFoundError:
        return None
    return status.st_ino, status.st_mtime_ns, status.st_size


def _replace(directory: int, data: bytes, before: tuple[int, int, int] | None) -> bool:
    """Write `data` as index.json: temporary file, fsync, rename, fsync of the directory; but
    False, and index.json left alone, when it changed since `before` (another writer)."""
    temporary = f".{INDEX_JSON}.regstat-{os.getpid()}"
    mode = stat.S_IMODE(os.stat(INDEX_JSON, dir_fd=directory, follow_symlinks=False).st_mode)
    fd = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | getattr(os, "O_NOFOLLOW", 0), mode,
                 dir_fd=directory)
    replaced = False
    try:
        try:
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view):]
            os.fchmod(fd, mode)
            os.fsync(fd)
        finally:
            os.close(fd)
        if _identity(directory) == before:
            os.replace(temporary, INDEX_JSON, src_dir_fd=directory, dst_dir_fd=directory)
            replaced = True
            os.fsync(directory)
    finally:
        if not replaced:
            os.unlink(temporary, dir_fd=directory)
    return replaced


def _unlink(directory: int, name: str) -> Outcome:
    """Remove the blob file `name` from the open directory; its size is what was freed."""
    try:
        status = os.stat(name, dir_fd=directory, follow_symlinks=False)
        if not stat.S_ISREG(status.st_mode):
            return Outcome(FAILED, "not_a_blob", "not a regular file; left alone")
        os.unlink(name, dir_fd=directory)
    except FileNotFoundError:
        return Outcome(GONE)
    except OSError as e:
        reason = "permission_denied" if e.errno in (errno.EACCES, errno.EPERM) else "io_error"
        return Outcome(FAILED, reason, e.strerror or str(e))
    return Outcome(DELETED, bytes_freed=status.st_size)
