"""Crawl a source into a snapshot: the driver.

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
import sys
import threading
import time
from collections import deque
from collections.abc import Iterator
from types import MappingProxyType
from contextlib import contextmanager
from concurrent.futures import FIRST_COMPLETED, Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor, wait
from datetime import datetime
from typing import Any

import pyarrow.parquet as pq

from .. import __version__, interrupts
from ..errors import CrawlError, NotResumable, SnapshotError
from ..snapshot import SCHEMA_VERSION, PartWriter, SnapshotInfo, iso, new_snapshot_id, part_number, utc_now
from ..snapshot.info import ShardInfo, parse_time
from ..sources.base import CrawlOptions, Job, JobResult, Source, add_unselected
from .assemble import STAGING_SCHEMAS, assemble
from .checkpoint import (
    Delta,
    JobCodec,
    JournalState,
    JournalWriter,
    SharedState,
    fsync_directory,
    fsync_file,
    mark_resumed,
    write_header,
)
from .digest_set import DIGESTS, DigestSet
from .publish import PendingSnapshot
from .reuse import REUSED, confirm_by_listing, reuses_by_listing, stage_reused
from ..snapshot.previous import PreviousManifests

MANIFESTS_PER_JOB = 64
# Staging rows are written out in parts of at most this many rows: what the crawl holds
# between checkpoints stays small however fast jobs return.
STAGING_ROWS_PER_PART = 20_000
# How often finished work is made durable for --resume: at most this much is fetched again
# after a crash. REGSTAT_CHECKPOINT_SECONDS overrides it (the tests checkpoint constantly).
CHECKPOINT_SECONDS = 5.0
CHECKPOINT_VARIABLE = "REGSTAT_CHECKPOINT_SECONDS"
STAGING = "_staging"
HANDOVER_SECONDS = 0.0005  # the GIL switch interval while worker processes crawl
CHECK_SECONDS = 0.2  # how soon a recorded SIGINT/SIGTERM stops the crawl (regstat.interrupts)


def _checkpoint_seconds() -> float:
    try:
        return float(os.environ.get(CHECKPOINT_VARIABLE, CHECKPOINT_SECONDS))
    except ValueError:
        return CHECKPOINT_SECONDS


class Crawl:
    """Runs a source's jobs on a pool and writes what they return, on this thread.

    Every few seconds it checkpoints: staging rows are flushed to Parquet parts and the
    journal (regstat.crawl.checkpoint) records which jobs those parts hold, so `--resume` reruns only
    the jobs that had not finished.
    """

    def __init__(
        self,
        source: Source,
        pending: PendingSnapshot,
        options: CrawlOptions,
        resumed: JournalState | None = None,
        previous: PreviousManifests | None = None,
    ) -> None:
        self.source = source
        self.previous = previous
        # Storage trees: manifests of the previous snapshot wait here, unread, until every
        # listing is done and the blob listing confirms them (regstat.crawl.reuse).
        self._by_listing = reuses_by_listing(source, previous)
        self._unconfirmed: list[str] = []
        self._must_read: set[str] = set()  # set aside, and not confirmed: read them
        self.manifests_read = self.manifests_reused = 0
        self.pending = pending
        self.options = options
        self.concurrency = options.concurrency or source.default_concurrency
        self.progress = options.progress
        self.errors: list[CrawlError] = []
        self.repositories: dict[str, int] = {}  # name -> errors recorded against it
        self.unselected: int | None = 0  # repositories --repository left out (None: unknown)
        self.stage = pending.path / STAGING
        self._to_fetch: list[str] = []
        self.delta = Delta()
        self.jobs_run = self.jobs_reused = self.items = 0
        self._every = _checkpoint_seconds()
        self._checkpointed = time.monotonic()
        self._shared: dict[tuple[type, str], SharedState] = {}
        self._revisions: dict[str, set[str]] | None = None
        self._journaled_errors: set[CrawlError] = set()
        self.resumed = resumed
        first_parts = self._keep_committed_parts(resumed) if resumed else {}
        self.out: dict[str, PartWriter] = {
            name: PartWriter(
                self.stage / name, schema, rows_per_part=STAGING_ROWS_PER_PART, first_part=first_parts.get(name, 0)
            )
            for name, schema in STAGING_SCHEMAS.items()
        }
        # Manifest digests asked for or written: on disk, rebuilt from the journal on resume.
        self._digests = DigestSet(self.stage / DIGESTS)
        if resumed:
            self._restore(resumed)
        else:
            self._start()

    # --- starting and resuming ----------------------------------------------------------

    def _start(self) -> None:
        self.started = utc_now()
        self.header = write_header(self.stage, self.source, self.options, iso(self.started) or "")
        self.journal = JournalWriter(self.stage)
        self.codec = JobCodec(self.source)
        self.crawled = False
        self.queue: deque[tuple[int, Job]] = deque()
        self._next_id = 0
        self.queue.extend(self._number(self.source.first_jobs()))
        self._checkpoint()  # the first jobs: from here on, the crawl can be resumed

    def _restore(self, state: JournalState) -> None:
        self.header = mark_resumed(self.stage, state.header, utc_now())
        self.started = datetime.fromisoformat(state.header["started_at"].replace("Z", "+00:00"))
        self.journal = JournalWriter(self.stage, number=state.checkpoints)
        self.codec = JobCodec(self.source, shared=self._shared_state, values=state.values)
        self.crawled = state.crawled
        for name in state.repositories:
            self.repositories.setdefault(name, 0)
        for error in state.errors:
            self._count_error(error)
        self._journaled_errors = set(state.errors)
        self.unselected = state.unselected
        self._digests.add_new(state.wanted)
        self._digests.mark_written(list(state.written))
        self._to_fetch = self._digests.unwritten(state.wanted)
        self.jobs_reused = len(state.done)
        self.queue = deque((i, self.codec.decode(state.jobs[i])) for i in state.pending)
        self._next_id = max(state.jobs, default=-1) + 1

    def _keep_committed_parts(self, state: JournalState) -> dict[str, int]:
        """Delete staging parts written after the last checkpoint; the next part number per table."""
        first = {}
        for name in STAGING_SCHEMAS:
            directory, kept = self.stage / name, state.parts.get(name, set())
            present = {p.name for p in directory.iterdir()} if directory.is_dir() else set()
            if kept - present:
                raise SnapshotError(f"{directory}: parts the journal names are missing; the crawl cannot be resumed")
            for stray in present - kept:
                (directory / stray).unlink()
            numbers = [n for n in map(part_number, kept) if n is not None]
            first[name] = max(numbers, default=-1) + 1
        return first

    def _shared_state(self, cls: type[SharedState], key: str) -> SharedState:
        """State a repository's pending jobs share, rebuilt from what its finished jobs wrote."""
        if (cls, key) not in self._shared:
            self._shared[(cls, key)] = cls.resumed(key, self._staged_revisions())
        return self._shared[(cls, key)]

    def _staged_revisions(self) -> dict[str, set[str]]:
        if self._revisions is None:
            self._revisions = {}
            for part in sorted((self.stage / "revisions").glob("*.parquet")):
                table = pq.read_table(part, columns=["repository", "digest"])
                for repository, digest in zip(*(c.to_pylist() for c in table.columns), strict=True):
                    self._revisions.setdefault(repository, set()).add(digest)
        return self._revisions

    @property
    def resumable(self) -> bool:
        """Whether an interrupted crawl can be resumed: a checkpoint beyond the first jobs."""
        journal = getattr(self, "journal", None)
        return journal is not None and not journal.broken and (self.resumed is not None or journal.number > 1)

    # --- running --------------------------------------------------------------------------

    def run(self) -> SnapshotInfo:
        self.progress.set_phase("crawling")
        if not self.crawled:
            with self._pool() as pool, _prompt_handover(self.source.processes):
                try:
                    self._drive(pool)
                except BaseException:
                    # Waits for the jobs running (short ones). Not wait=False: Python 3.11 then
                    # drops its handle on the pool's manager thread unjoined, and at exit that
                    # thread and Python's own clean-up race (EBADF tracebacks, seen).
                    pool.shutdown(cancel_futures=True)
                    raise
            for writer in self.out.values():
                writer.close()
            self._checkpoint(crawled=True)  # a crawl killed while assembling reassembles only
        else:
            for writer in self.out.values():
                writer.close()
        self._digests.close()
        self.progress.set_phase("assembling")
        self.pending.clear_tables()  # what an interrupted assembly left
        stage_reused(self.stage, self.previous, STAGING_SCHEMAS)
        counts, manifest_errors = assemble(self.stage, self.pending, self.source.manifest_path)
        for error in manifest_errors:
            self._error(error)
        self._write_repositories(counts)
        self.progress.close()
        interrupts.check()  # the last point before the snapshot is published
        return self._info(counts)

    def stats(self) -> dict[str, Any]:
        return {
            "resumed": self.resumed is not None,
            "jobs_run": self.jobs_run,
            "jobs_reused": self.jobs_reused,
            "items_read": self.items,
        }

    def manifest_counts(self) -> dict[str, int]:
        """Manifests this process read, and took from the previous snapshot instead."""
        return {"manifests_read": self.manifests_read, "manifests_reused": self.manifests_reused}

    def _pool(self) -> Executor:
        if self.source.processes:
            # fork starts workers in milliseconds with everything imported; it is safe here
            # because the crawl starts no threads of its own before its pool (DuckDB and the S3
            # readers run later or in thread mode). spawn where fork does not exist.
            methods = multiprocessing.get_all_start_methods()
            context = multiprocessing.get_context("fork" if "fork" in methods else "spawn")
            return ProcessPoolExecutor(
                self.concurrency, mp_context=context, initializer=_start_worker, initargs=(os.getpid(),)
            )
        return ThreadPoolExecutor(self.concurrency, thread_name_prefix="crawl")

    def _drive(self, pool: Executor) -> None:
        """Keep a bounded number of jobs in flight, manifest fetches first: finishing work
        before listing more is what bounds memory."""
        queue = self.queue
        inflight: dict[Future, int | None] = {}  # -> the job's id; None for manifest fetches
        window = self.concurrency * 2
        while True:
            while len(inflight) < window:
                job_id: int | None = None
                if len(self._to_fetch) >= MANIFESTS_PER_JOB or (self._to_fetch and not queue):
                    batch = self._to_fetch[:MANIFESTS_PER_JOB]
                    del self._to_fetch[:MANIFESTS_PER_JOB]
                    if self._by_listing:
                        batch = self._set_aside(batch)
                        if not batch:
                            continue
                    function, args = self.source.fetch_job(batch)
                elif queue:
                    job_id, (function, args) = queue.popleft()
                else:
                    break
                inflight[pool.submit(function, *args)] = job_id
            if not inflight:
                if not self._unconfirmed:
                    return
                self._confirm()
                continue
            # Wake at least every CHECK_SECONDS to see whether a signal asked the crawl to stop.
            done, _ = wait(inflight, timeout=CHECK_SECONDS, return_when=FIRST_COMPLETED)
            interrupts.check()
            for future in done:
                job_id = inflight.pop(future)
                result = future.result()
                self._record(result, job_id)
                # A job's own jobs go first (depth first): a repository's listing is finished
                # before the next one is read, which keeps listings out of memory.
                queue.extendleft(reversed(self._number(result.jobs)))
            if time.monotonic() - self._checkpointed >= self._every:
                self._checkpoint()

    def _set_aside(self, batch: list[str]) -> list[str]:
        """Of a batch of digests to read, keep aside those the previous snapshot holds; the rest."""
        assert self.previous is not None
        known = [d for d in batch if self.previous.size(d) is not None and d not in self._must_read]
        self._unconfirmed += known
        aside = set(known)
        return [d for d in batch if d not in aside] if known else batch

    def _confirm(self) -> None:
        """Every listing is done: reuse the manifests set aside whose blob this crawl listed at
        the size recorded, and read the others, as a crawl without --previous would."""
        assert self.previous is not None
        self._flush_staging()
        reusable, to_read = confirm_by_listing(self.stage, self.previous, self._unconfirmed)
        self._unconfirmed = []
        self._record_reused(reusable)
        self._must_read.update(to_read)
        self._to_fetch += to_read

    def _flush_staging(self) -> None:
        if self.journal.broken:
            for writer in self.out.values():
                writer.take_written()
        else:
            self._checkpoint()

    def _record_reused(self, digests: list[str]) -> None:
        writer = self.out[REUSED]
        fresh = self._digests.mark_written(digests)
        for digest in fresh:
            writer.append((digest,))
        self.delta.written += fresh
        self.manifests_reused += len(fresh)
        if fresh:
            self.progress.add("manifests", len(fresh))

    def _number(self, jobs: list[Job]) -> list[tuple[int, Job]]:
        """Give new jobs their ids and journal them (unless this crawl cannot be resumed)."""
        numbered = []
        for job in jobs:
            job_id, self._next_id = self._next_id, self._next_id + 1
            numbered.append((job_id, job))
            if not self.journal.broken:
                try:
                    self.delta.jobs.append((job_id, self.codec.encode(job)))
                except NotResumable as e:
                    self.journal.give_up(str(e))
        return numbered

    def _checkpoint(self, crawled: bool = False) -> None:
        """Make the staged rows durable, then record in the journal what they hold."""
        self._checkpointed = time.monotonic()
        if self.journal.broken:
            return
        parts = {name: writer.take_written() for name, writer in self.out.items()}
        parts = {name: names for name, names in parts.items() if names}
        for name, names in parts.items():
            for part in names:
                fsync_file(self.stage / name / part)
            fsync_directory(self.stage / name)
        self.journal.checkpoint(self.delta, parts, self.codec.take_values(), crawled)
        self.delta = Delta()

    def _record(self, result: JobResult, job_id: int | None) -> None:
        self.jobs_run += 1
        self.items += result.items
        if job_id is not None:
            self.delta.done.append(job_id)
        for table, rows in result.rows.items():
            writer = self.out[table]
            for row in rows:
                writer.append(row)
        for name in result.repositories:
            self.repositories.setdefault(name, 0)
            self.delta.repositories.append(name)
        self.unselected = add_unselected(self.unselected, result.unselected)
        self.delta.unselected = add_unselected(self.delta.unselected, result.unselected)
        for error in result.errors:
            # A job run again after a resume may meet what a finished one recorded already
            # (a manifest both reach that answered 404): record it once.
            if error not in self._journaled_errors:
                self._error(error)
                self.delta.errors.append(error)
        if result.manifests:
            new = self._digests.add_new(result.manifests)
            self._to_fetch += new
            self.delta.wanted += new
        self.manifests_read += len(result.parsed)
        self._record_manifests(result)
        if result.reused:
            self._record_reused(result.reused)
        # Manifests known and not fetched yet: the ETA covers the work discovered so far.
        self.progress.set_remaining("manifests", len(self._to_fetch))
        self.progress.add("items", result.items)
        if result.repositories:
            self.progress.add("repositories", len(result.repositories))

    def _record_manifests(self, result: JobResult) -> None:
        """Manifest facts are per digest: written once, however many jobs read the digest."""
        if not result.parsed:
            return
        info, descriptors = self.out["manifest_info"], self.out["manifest_descriptors"]
        digests = [parsed[0] if isinstance(parsed, tuple) else parsed.digest for parsed in result.parsed]
        fresh = set(self._digests.mark_written(digests))
        written = 0
        for digest, parsed in zip(digests, result.parsed, strict=True):
            if digest not in fresh:
                continue
            fresh.discard(digest)  # the same digest twice in one result: written once
            self.delta.written.append(digest)
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
                    (m.digest, d.role, d.position, d.digest, d.media_type, d.size, d.platform, d.artifact_type,
                     d.repeated)
                )
        if written:
            self.progress.add("manifests", written)

    def _error(self, error: CrawlError) -> None:
        self.errors.append(error)
        self._count_error(error)

    def _count_error(self, error: CrawlError) -> None:
        if error.repository is not None:
            self.repositories[error.repository] = self.repositories.get(error.repository, 0) + 1

    def _write_repositories(self, counts: dict[str, int]) -> None:
        writer = self.pending.table("repositories")
        for name in sorted(self.repositories):
            errors = self.repositories[name]
            writer.append((name, errors == 0, errors))
        counts["repositories"] = writer.close()

    def _info(self, counts: dict[str, int]) -> SnapshotInfo:
        errors = sorted(self.errors, key=lambda e: (e.repository or "", e.path, e.kind))
        filtered = bool(self.options.repositories)
        partial = filtered or self.options.shard is not None
        shard = self.options.shard
        return SnapshotInfo(
            schema_version=SCHEMA_VERSION,
            regstat_version=__version__,
            id=new_snapshot_id(self.started),
            source=self.source.describe(),
            capabilities=self.source.capabilities(partial),
            started_at=self.started,
            finished_at=utc_now(),
            resumed_at=tuple(parse_time(t) for t in self.header.get("resumed_at", [])),  # type: ignore[misc]
            complete=not errors and not partial,
            partial=partial,
            repository_filter=tuple(self.options.repositories),
            # The repositories the source had: those crawled and those --repository left out.
            source_repositories=add_unselected(counts["repositories"], self.unselected),
            incomplete_repositories=tuple(sorted(n for n, e in self.repositories.items() if e)),
            errors=tuple(errors),
            counts=MappingProxyType(dict(counts)),
            shard=ShardInfo(index=shard.index, count=shard.count, capabilities=self.source.capabilities(filtered))
            if shard else None,
        )


@contextmanager
def _prompt_handover(processes: bool) -> Iterator[None]:
    """With worker processes: switch this process's threads often while crawling.

    The pool's manager thread reads each worker's result from a pipe in 64 KiB chunks and
    needs the GIL between chunks; by default it waits up to 5 ms for this thread (busy writing
    rows) to let go, each time, and a worker cannot start its next job before its result is
    read. A profile showed workers spending a quarter of their time in that write.
    """
    if not processes:
        yield
        return
    previous = sys.getswitchinterval()
    sys.setswitchinterval(HANDOVER_SECONDS)
    try:
        yield
    finally:
        sys.setswitchinterval(previous)


def _start_worker(parent: int) -> None:
    """In a crawl worker: leave signals to the crawl, and exit when the crawl does, even
    when it is killed with SIGKILL (otherwise workers wait forever on a pipe their siblings
    hold open)."""
    interrupts.worker_defaults()
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
