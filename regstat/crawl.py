"""Crawl a source into a snapshot.

A source (`regstat.sources`) says how to start; its jobs return rows, errors and more jobs.
This driver runs the jobs on worker processes or threads, as the source asks, keeps a bounded
number in flight, fetches each manifest named by digest once however many repositories hold
it, and writes rows to staging Parquet parts as they arrive; `assemble` joins them into the
snapshot's tables at the end, so memory stays bounded by the work in flight.
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
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from . import __version__
from .assemble import STAGING_SCHEMAS, assemble
from .errors import CrawlError
from .snapshot import FORMAT, SCHEMA_VERSION, PartWriter, PendingSnapshot, iso, new_snapshot_id, utc_now
from .sources import open_source
from .sources.base import CrawlOptions, Job, JobResult, Source

__all__ = ["CrawlOptions", "CrawlResult", "crawl", "crawl_source"]

MANIFESTS_PER_JOB = 64


@dataclass(frozen=True)
class CrawlResult:
    path: Path
    metadata: dict[str, Any]

    @property
    def complete(self) -> bool:
        return bool(self.metadata["complete"])


def crawl(source: str, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl SOURCE into a new snapshot directory OUTPUT."""
    return crawl_source(open_source(source, options), output, options)


def crawl_source(source: Source, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl an opened source into a new snapshot directory OUTPUT."""
    pending = PendingSnapshot(output, force=options.force)
    try:
        metadata = _Crawl(source, pending, options).run()
        return CrawlResult(pending.publish(metadata), metadata)
    except BaseException:
        pending.discard()
        raise


class _Crawl:
    """Runs a source's jobs on a pool and writes what they return, on this thread."""

    def __init__(self, source: Source, pending: PendingSnapshot, options: CrawlOptions) -> None:
        self.source = source
        self.pending = pending
        self.options = options
        self.concurrency = options.concurrency or source.default_concurrency
        self.progress = options.progress
        self.errors: list[CrawlError] = []
        self.repositories: dict[str, int] = {}  # name -> errors recorded against it
        self._known: set[str] = set()  # manifest digests asked for or written
        self._written: set[str] = set()  # manifest digests whose facts are written
        self._to_fetch: list[str] = []
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
        counts, manifest_errors = assemble(self.stage, self.pending, self.source.manifest_path)
        for error in manifest_errors:
            self._error(error)
        self._write_repositories(counts)
        self.progress.close()
        return self._metadata(started, counts)

    def _pool(self) -> Executor:
        if self.source.processes:
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
        """Keep a bounded number of jobs in flight, manifest fetches first: finishing work
        before listing more is what bounds memory."""
        queue: deque[Job] = deque(self.source.first_jobs())
        inflight: set[Future] = set()
        window = self.concurrency * 2
        while True:
            while len(inflight) < window:
                if len(self._to_fetch) >= MANIFESTS_PER_JOB or (self._to_fetch and not queue):
                    batch = self._to_fetch[:MANIFESTS_PER_JOB]
                    del self._to_fetch[:MANIFESTS_PER_JOB]
                    function, args = self.source.fetch_job(batch)
                elif queue:
                    function, args = queue.popleft()
                else:
                    break
                inflight.add(pool.submit(function, *args))
            if not inflight:
                return
            done, inflight = wait(inflight, return_when=FIRST_COMPLETED)
            for future in done:
                result = future.result()
                self._record(result)
                # A job's own jobs go first (depth first): a repository's listing is finished
                # before the next one is read, which keeps listings out of memory.
                queue.extendleft(reversed(result.jobs))

    def _record(self, result: JobResult) -> None:
        for table, rows in result.rows.items():
            writer = self.out[table]
            for row in rows:
                writer.append(row)
        for name in result.repositories:
            self.repositories.setdefault(name, 0)
        for error in result.errors:
            self._error(error)
        for digest in result.manifests:
            if digest not in self._known:
                self._known.add(digest)
                self._to_fetch.append(digest)
        self._record_manifests(result)
        self.progress.add("items", result.items)
        if result.repositories:
            self.progress.add("repositories", len(result.repositories))

    def _record_manifests(self, result: JobResult) -> None:
        """Manifest facts are per digest: written once, however many jobs read the digest."""
        info, descriptors = self.out["manifest_info"], self.out["manifest_descriptors"]
        written = 0
        for parsed in result.parsed:
            digest = parsed[0] if isinstance(parsed, tuple) else parsed.digest
            if digest in self._written:
                continue
            self._written.add(digest)
            self._known.add(digest)
            written += 1
            if isinstance(parsed, tuple):
                info.append((digest, None, None, None, None, None, parsed[1], parsed[2]))
                continue
            m = parsed
            info.append(
                (m.digest, m.media_type, m.artifact_type, m.config_media_type, m.size, m.subject_digest, m.status, None)
            )
            for d in m.descriptors:
                descriptors.append(
                    (m.digest, d.role, d.position, d.digest, d.media_type, d.size, d.platform, d.artifact_type)
                )
        if written:
            self.progress.add("manifests", written)

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
            "source": self.source.describe(),
            "capabilities": self.source.capabilities(partial),
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
