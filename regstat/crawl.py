"""Crawl a distribution storage tree (disk or S3) into a snapshot.

The crawl lists the tree in shards (blob prefixes, top-level repository directories), reads
link files, and fetches each manifest blob once however many repositories hold it, all on a
thread pool. Rows go to staging Parquet parts as they arrive; `assemble` joins them into the
snapshot's tables at the end, so memory stays bounded by the work in flight.
"""

from __future__ import annotations

import fnmatch
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable

from . import __version__
from .assemble import STAGING_SCHEMAS, assemble
from .errors import CrawlError, ManifestError
from .model import MAX_MANIFEST_BYTES, Manifest, is_digest, parse_manifest
from .progress import Progress
from .snapshot import FORMAT, SCHEMA_VERSION, PartWriter, PendingSnapshot, iso, new_snapshot_id, utc_now
from .sources.storage import Entry, Storage, open_storage
from .sources.storage_layout import (
    LINK_LIMIT,
    Link,
    RepositoryListing,
    add_repository_entry,
    blob_data_path,
    check_link,
    classify_blob,
    valid_repository_name,
)

LINKS_PER_TASK = 64

CAPABILITIES = {
    "untagged_manifests": True,
    "unreferenced_blobs": True,
    "stored_blob_sizes": True,
    "push_times": "approximate",  # modification times of link files
    "pull_times": None,
    "locks": None,
}


@dataclass(frozen=True, kw_only=True)
class CrawlOptions:
    """How to crawl. `repositories` are globs over full names (`*` matches `/` too)."""

    concurrency: int = 16
    repositories: tuple[str, ...] = ()
    endpoint_url: str | None = None
    force: bool = False
    progress: Progress = field(default_factory=lambda: Progress(enabled=False))


@dataclass(frozen=True)
class CrawlResult:
    path: Path
    metadata: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.metadata["complete"])


def crawl(source: str, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl SOURCE into a new snapshot directory OUTPUT."""
    storage = open_storage(source, endpoint_url=options.endpoint_url, concurrency=options.concurrency)
    pending = PendingSnapshot(output, force=options.force)
    try:
        metadata = _StorageLayoutCrawl(storage, pending, options).run()
        return CrawlResult(pending.publish(metadata), metadata)
    except BaseException:
        pending.discard()
        raise


class _Scheduler:
    """Runs tasks on a pool, at most `window` at a time, handling results on this thread.

    Handlers may submit more work. Lower priority numbers go first, so a shard's links and
    manifests are finished before more shards are listed: that is what bounds memory.
    """

    def __init__(self, pool: ThreadPoolExecutor, window: int) -> None:
        self._pool = pool
        self._window = window
        self._queues: tuple[deque, ...] = (deque(), deque(), deque())
        self._inflight: dict[Future, Callable[[Any], None]] = {}

    def submit(self, priority: int, task: Callable[[], Any], on_done: Callable[[Any], None]) -> None:
        self._queues[priority].append((task, on_done))

    def run(self) -> None:
        while True:
            for queue in self._queues:
                while queue and len(self._inflight) < self._window:
                    task, on_done = queue.popleft()
                    self._inflight[self._pool.submit(task)] = on_done
            if not self._inflight:
                return
            done, _ = wait(self._inflight, return_when=FIRST_COMPLETED)
            for future in done:
                self._inflight.pop(future)(future.result())


MANIFESTS, LINKS, LISTINGS = 0, 1, 2


@dataclass
class _RepositoryState:
    listing: RepositoryListing
    waiting: int = 0
    contents: dict[str, bytes | Exception] = field(default_factory=dict)


class _StorageLayoutCrawl:
    def __init__(self, storage: Storage, pending: PendingSnapshot, options: CrawlOptions) -> None:
        self.storage = storage
        self.pending = pending
        self.options = options
        self.progress = options.progress
        self.errors: list[CrawlError] = []
        self.repositories: dict[str, int] = {}  # name -> errors recorded against it
        self._requested: set[str] = set()
        stage = pending.path / "_staging"
        self.stage = stage
        self.out: dict[str, PartWriter] = {
            name: PartWriter(stage / name, schema) for name, schema in STAGING_SCHEMAS.items()
        }

    # -- driving ---------------------------------------------------------------------------

    def run(self) -> dict[str, Any]:
        started = utc_now()
        self.progress.set_phase("crawling")
        with ThreadPoolExecutor(self.options.concurrency, thread_name_prefix="crawl") as pool:
            self.scheduler = _Scheduler(pool, window=self.options.concurrency * 4)
            try:
                self._plan_listings()
                self.scheduler.run()
            except BaseException:
                pool.shutdown(wait=False, cancel_futures=True)
                raise
        for writer in self.out.values():
            writer.close()
        self.progress.set_phase("assembling")
        counts, manifest_errors = assemble(self.stage, self.pending)
        for error in manifest_errors:
            self._error(error)
        self._write_repositories(counts)
        self.progress.close()
        return self._metadata(started, counts)

    def _plan_listings(self) -> None:
        for algorithm in self._listdir("blobs"):
            for shard in self._listdir(f"blobs/{algorithm}"):
                prefix = f"blobs/{algorithm}/{shard}"
                self.scheduler.submit(LISTINGS, self._walker(prefix), self._on_blob_shard)
        for top in self._listdir("repositories"):
            if self._may_hold(top):
                prefix = f"repositories/{top}"
                self.scheduler.submit(LISTINGS, self._walker(prefix), self._on_repository_shard)

    def _listdir(self, prefix: str) -> list[str]:
        """The directories under `prefix`; files there are not part of the layout."""
        try:
            directories, files = self.storage.listdir(prefix)
        except OSError as e:
            self._error(CrawlError(None, prefix, "read_error", f"cannot list: {e}"))
            return []
        for entry in files:
            kind = "symlink" if entry.symlink else "outside_layout"
            self._error(CrawlError(None, entry.path, kind, "not part of the storage layout"))
        return directories

    def _walker(self, prefix: str) -> Callable[[], tuple[str, list[Entry] | OSError]]:
        def walk() -> tuple[str, list[Entry] | OSError]:
            try:
                return prefix, list(self.storage.walk(prefix))
            except OSError as e:
                return prefix, e

        return walk

    def _may_hold(self, top: str) -> bool:
        """Whether a top-level directory can hold a repository the --repository globs select."""
        if not self.options.repositories:
            return True
        for glob in self.options.repositories:
            first = glob.split("/", 1)[0]
            if any(c in first for c in "*?[") or first == top:
                return True
        return False

    def _selected(self, name: str) -> bool:
        globs = self.options.repositories
        return not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)

    # -- listings --------------------------------------------------------------------------

    def _on_blob_shard(self, result: tuple[str, list[Entry] | OSError]) -> None:
        prefix, entries = result
        if isinstance(entries, OSError):
            self._error(CrawlError(None, prefix, "read_error", f"cannot list: {entries}"))
            return
        for entry in entries:
            blob = classify_blob(entry)
            if blob is None:
                kind = "symlink" if entry.symlink else "outside_layout"
                self._error(CrawlError(None, entry.path, kind, "not a blob's data file"))
                continue
            self.out["stored_blobs"].append((blob.digest, blob.size, blob.modified_at))
        self.progress.add("blobs", len(entries))

    def _on_repository_shard(self, result: tuple[str, list[Entry] | OSError]) -> None:
        prefix, entries = result
        if isinstance(entries, OSError):
            self._error(CrawlError(None, prefix, "read_error", f"cannot list: {entries}"))
            return
        listings: dict[str, RepositoryListing] = {}
        for entry in entries:
            problem = add_repository_entry(listings, entry)
            if problem:
                self._error(CrawlError(None, entry.path, "outside_layout", problem))
        for name in sorted(listings):
            if self._selected(name):
                self._start_repository(listings[name])

    def _start_repository(self, listing: RepositoryListing) -> None:
        self.repositories[listing.name] = 0
        if not valid_repository_name(listing.name):
            listing.problems.append(
                (f"repositories/{listing.name}", "invalid_name", "not a valid repository name")
            )
        if not listing.has_manifests and not listing.uploads:
            # With an upload in progress this is a first push in flight, which is normal.
            listing.problems.append(
                (
                    f"repositories/{listing.name}",
                    "no_manifests_dir",
                    "repository directory without _manifests (an interrupted first push leaves this)",
                )
            )
        state = _RepositoryState(listing)
        paths = [link.path for link in (*listing.tags.values(), *listing.revisions, *listing.layers)]
        paths += [u.started_path for u in listing.uploads.values() if u.started_path]
        for start in range(0, len(paths), LINKS_PER_TASK):
            state.waiting += 1
            batch = paths[start : start + LINKS_PER_TASK]
            self.scheduler.submit(LINKS, self._reader(batch), lambda r, s=state: self._on_links(s, r))
        if state.waiting == 0:
            self._finish_repository(state)

    def _reader(self, paths: list[str]) -> Callable[[], dict[str, bytes | Exception]]:
        def read() -> dict[str, bytes | Exception]:
            contents: dict[str, bytes | Exception] = {}
            for path in paths:
                try:
                    contents[path] = self.storage.read(path, LINK_LIMIT)
                except OSError as e:
                    contents[path] = e
            return contents

        return read

    def _on_links(self, state: _RepositoryState, contents: dict[str, bytes | Exception]) -> None:
        state.contents.update(contents)
        state.waiting -= 1
        self.progress.add("links", len(contents))
        if state.waiting == 0:
            self._finish_repository(state)

    # -- one repository, links read --------------------------------------------------------

    def _finish_repository(self, state: _RepositoryState) -> None:
        listing, contents = state.listing, state.contents
        name = listing.name
        for path, kind, message in listing.problems:
            self._error(CrawlError(name, path, kind, message))

        def link_digest(link: Link) -> str | None:
            content = contents[link.path]
            if isinstance(content, Exception):
                self._error(CrawlError(name, link.path, "read_error", _describe(content)))
                return None
            digest, kind, message = check_link(link, content)
            if kind:
                self._error(CrawlError(name, link.path, kind, message or ""))
            return digest

        revisions = set()
        for link in listing.revisions:
            link_digest(link)
            # The path names the manifest even when the link file is damaged: keep the row, so
            # nothing it references looks unreferenced (the repository is incomplete anyway).
            if link.expected and is_digest(link.expected):
                revisions.add(link.expected)
                self.out["revisions"].append((name, link.expected, link.modified_at))
                self._request_manifest(link.expected)
        for tag, link in sorted(listing.tags.items()):
            digest = link_digest(link)
            if digest is None:
                continue
            if digest not in revisions:
                self._error(
                    CrawlError(name, link.path, "dangling_tag", f"tag {tag} points at {digest}, not in {name}")
                )
            self.out["tag_links"].append((name, tag, digest, link.modified_at))
        for link in listing.layers:
            link_digest(link)
            if link.expected and is_digest(link.expected):
                self.out["layer_links"].append((name, link.expected, link.modified_at))
        for upload in listing.uploads.values():
            started = None
            if upload.started_path:
                started = _parse_started_at(contents[upload.started_path])
                if started is None:
                    self._error(
                        CrawlError(name, upload.started_path, "bad_link", "startedat is not an RFC 3339 time")
                    )
            self.out["uploads"].append((name, upload.uuid, started, upload.size, upload.modified_at))
        self.progress.add("repositories")

    # -- manifests -------------------------------------------------------------------------

    def _request_manifest(self, digest: str) -> None:
        if digest in self._requested:
            return
        self._requested.add(digest)
        self.scheduler.submit(MANIFESTS, lambda: self._fetch_manifest(digest), self._on_manifest)

    def _fetch_manifest(self, digest: str) -> Manifest | tuple[str, str, str]:
        try:
            body = self.storage.read(blob_data_path(digest), MAX_MANIFEST_BYTES + 1)
        except FileNotFoundError:
            return digest, "missing", "the manifest's blob data is missing"
        except OSError as e:
            return digest, "unreadable", f"cannot read the manifest's blob: {_describe(e)}"
        try:
            return parse_manifest(body, digest)
        except ManifestError as e:
            return digest, e.status, str(e)

    def _on_manifest(self, result: Manifest | tuple[str, str, str]) -> None:
        self.progress.add("manifests")
        if isinstance(result, tuple):
            digest, status, message = result
            self.out["manifest_info"].append((digest, None, None, None, None, None, status, message))
            return
        m = result
        self.out["manifest_info"].append(
            (m.digest, m.media_type, m.artifact_type, m.config_media_type, m.size, m.subject_digest, m.status, None)
        )
        for d in m.descriptors:
            self.out["manifest_descriptors"].append(
                (m.digest, d.role, d.position, d.digest, d.media_type, d.size, d.platform, d.artifact_type)
            )

    # -- results ---------------------------------------------------------------------------

    def _error(self, error: CrawlError) -> None:
        self.errors.append(error)
        if error.repository is not None:
            self.repositories[error.repository] = self.repositories.get(error.repository, 0) + 1

    def _write_repositories(self, counts: dict[str, int]) -> None:
        writer = self.pending.table("repositories")
        for name in sorted(self.repositories):
            errors = self.repositories[name]
            writer.append((name, errors == 0, errors))
        counts["repositories"] = writer.close()

    def _metadata(self, started: datetime, counts: dict[str, int]) -> dict[str, Any]:
        errors = sorted(self.errors, key=lambda e: (e.repository or "", e.path, e.kind))
        partial = bool(self.options.repositories)
        return {
            "format": FORMAT,
            "schema_version": SCHEMA_VERSION,
            "regstat_version": __version__,
            "id": new_snapshot_id(started),
            "source": self.storage.describe(),
            "capabilities": {**CAPABILITIES, "unreferenced_blobs": not partial},
            "started_at": iso(started),
            "finished_at": iso(utc_now()),
            "complete": not errors and not partial,
            "partial": partial,
            "repository_filter": list(self.options.repositories),
            "incomplete_repositories": sorted(n for n, e in self.repositories.items() if e),
            "errors": [e.to_json() for e in errors],
            "counts": {name: counts[name] for name in sorted(counts)},
        }


def _describe(error: Exception) -> str:
    if isinstance(error, FileNotFoundError):
        return "vanished during the crawl"
    return str(error) or type(error).__name__


def _parse_started_at(content: bytes | Exception) -> datetime | None:
    if isinstance(content, Exception):
        return None
    text = content.decode("ascii", "replace").strip()
    # The registry writes RFC 3339 with nanoseconds; Python parses at most microseconds.
    head, dot, rest = text.partition(".")
    if dot:
        digits = "".join(c for c in rest if c.isdigit())
        zone = rest[len(digits) :]
        text = f"{head}.{digits[:6]}{zone}"
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo else None
