"""Crawl a distribution storage tree (disk or S3) into a snapshot.

The crawl lists the tree in shards (blob prefixes, top-level repository directories), reads
link files, and fetches each manifest blob once however many repositories hold it, on worker
processes (disk) or threads (S3). Rows go to staging Parquet parts as they arrive; `assemble`
joins them into the snapshot's tables at the end, so memory stays bounded by the work in
flight.
"""

from __future__ import annotations

import ctypes
import multiprocessing
import os
import signal
import threading
import time
from collections import deque
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, Callable, Iterator

from . import __version__
from .assemble import STAGING_SCHEMAS, assemble
from .errors import CrawlError
from .progress import Progress
from .snapshot import FORMAT, SCHEMA_VERSION, PartWriter, PendingSnapshot, iso, new_snapshot_id, utc_now
from .sources.storage import Storage, open_storage
from .sources.storage_jobs import (
    ManifestResult,
    ShardResult,
    crawl_repository_shard,
    fetch_manifests,
    list_blob_shard,
)

MANIFESTS_PER_JOB = 64

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

    concurrency: int | None = None  # None: the storage's default
    repositories: tuple[str, ...] = ()
    verify_links: bool = False  # read every _layers link, not only check its size
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
    return crawl_storage(storage, output, options)


def crawl_storage(storage: Storage, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl an opened storage tree into a new snapshot directory OUTPUT."""
    pending = PendingSnapshot(output, force=options.force)
    try:
        metadata = _StorageLayoutCrawl(storage, pending, options).run()
        return CrawlResult(pending.publish(metadata), metadata)
    except BaseException:
        pending.discard()
        raise


class _StorageLayoutCrawl:
    """Runs the jobs of `storage_jobs` on a pool and writes what they return, on this thread."""

    def __init__(self, storage: Storage, pending: PendingSnapshot, options: CrawlOptions) -> None:
        self.storage = storage
        self.pending = pending
        self.options = options
        self.concurrency = options.concurrency or storage.default_concurrency
        self.progress = options.progress
        self.errors: list[CrawlError] = []
        self.repositories: dict[str, int] = {}  # name -> errors recorded against it
        self._requested: set[str] = set()
        self._unrequested: list[str] = []
        self.stage = pending.path / "_staging"
        self.out: dict[str, PartWriter] = {
            name: PartWriter(self.stage / name, schema) for name, schema in STAGING_SCHEMAS.items()
        }

    def run(self) -> dict[str, Any]:
        started = utc_now()
        self.progress.set_phase("crawling")
        with self._pool() as pool:
            try:
                self._drive(pool)
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

    def _pool(self) -> Executor:
        if self.storage.processes:
            # fork starts workers in milliseconds with everything imported; it is safe here
            # because the crawl starts no threads of its own before its pool (DuckDB and the S3
            # readers run later or in thread mode). spawn where fork does not exist.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            return ProcessPoolExecutor(
                self.concurrency, mp_context=context, initializer=_die_with_parent, initargs=(os.getpid(),)
            )
        return ThreadPoolExecutor(self.concurrency, thread_name_prefix="crawl")

    def _drive(self, pool: Executor) -> None:
        """Keep a bounded number of jobs in flight: manifests first, then listings."""
        listings = deque(self._listing_jobs())
        inflight: dict[Future, Callable[[Any], None]] = {}
        window = self.concurrency * 2
        while True:
            while len(inflight) < window and (self._unrequested or listings):
                if len(self._unrequested) >= MANIFESTS_PER_JOB or (self._unrequested and not listings):
                    batch = self._unrequested[:MANIFESTS_PER_JOB]
                    del self._unrequested[:MANIFESTS_PER_JOB]
                    inflight[pool.submit(fetch_manifests, self.storage, batch)] = self._on_manifests
                elif listings:
                    job, args, on_done = listings.popleft()
                    inflight[pool.submit(job, self.storage, *args)] = on_done
                else:
                    break
            if not inflight:
                return
            done, _ = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                inflight.pop(future)(future.result())

    def _listing_jobs(self) -> Iterator[tuple[Callable[..., ShardResult], tuple, Callable[[Any], None]]]:
        for algorithm in self._listdir("blobs"):
            for shard in self._listdir(f"blobs/{algorithm}"):
                yield list_blob_shard, (f"blobs/{algorithm}/{shard}",), self._on_shard
        for top in self._listdir("repositories"):
            if self._may_hold(top):
                args = (f"repositories/{top}", self.options.repositories, self.options.verify_links)
                yield crawl_repository_shard, args, self._on_shard

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

    def _may_hold(self, top: str) -> bool:
        """Whether a top-level directory can hold a repository the --repository globs select."""
        if not self.options.repositories:
            return True
        for glob in self.options.repositories:
            first = glob.split("/", 1)[0]
            if any(c in first for c in "*?[") or first == top:
                return True
        return False

    def _on_shard(self, result: ShardResult) -> None:
        for table, rows in result.rows.items():
            writer = self.out[table]
            for row in rows:
                writer.append(row)
        for name in result.repositories:
            self.repositories.setdefault(name, 0)
        for error in result.errors:
            self._error(error)
        for digest in result.manifests:
            if digest not in self._requested:
                self._requested.add(digest)
                self._unrequested.append(digest)
        self.progress.add("files", result.files)
        if result.repositories:
            self.progress.add("repositories", len(result.repositories))

    def _on_manifests(self, results: list[ManifestResult]) -> None:
        info, descriptors = self.out["manifest_info"], self.out["manifest_descriptors"]
        for result in results:
            if isinstance(result, tuple):
                digest, status, message = result
                info.append((digest, None, None, None, None, None, status, message))
                continue
            m = result
            info.append(
                (m.digest, m.media_type, m.artifact_type, m.config_media_type, m.size, m.subject_digest, m.status, None)
            )
            for d in m.descriptors:
                descriptors.append(
                    (m.digest, d.role, d.position, d.digest, d.media_type, d.size, d.platform, d.artifact_type)
                )
        self.progress.add("manifests", len(results))

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


def _die_with_parent(parent: int) -> None:
    """In a crawl worker: exit when the crawl does, even when it is killed with SIGKILL.

    Otherwise workers wait forever on a pipe their siblings hold open.
    """
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        if libc.prctl(1, signal.SIGKILL) == 0 and os.getppid() == parent:  # 1: PR_SET_PDEATHSIG
            return
    except (OSError, AttributeError):
        pass

    def watch() -> None:  # where prctl does not exist: poll
        while os.getppid() == parent:
            time.sleep(1)
        os._exit(1)

    threading.Thread(target=watch, daemon=True).start()
