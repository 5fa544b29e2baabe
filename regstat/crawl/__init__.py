"""Crawl a source into a snapshot: the entry points.

driver: runs a source's jobs and writes their rows; digest_set: the manifest digests asked for
and written; checkpoint: the journal `--resume` reads; assemble: staging rows into the
snapshot's tables; publish: the hidden directory renamed into place when finished.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import RegstatError, SnapshotError
from ..snapshot import SnapshotInfo
from ..snapshot.outputs import check_crawl_output
from ..sources import open_source
from ..sources.base import CrawlOptions, Source
from .checkpoint import read_journal
from .driver import STAGING, Crawl
from .publish import PendingSnapshot, find_interrupted, partial_path
from .reuse import previous_for

__all__ = ["CrawlOptions", "CrawlResult", "crawl", "crawl_source", "kept_for_resume"]


@dataclass(frozen=True)
class CrawlResult:
    path: Path
    info: SnapshotInfo  # its snapshot.json
    stats: dict[str, Any] = field(default_factory=dict)  # jobs run and reused, items read
    manifests: dict[str, int] = field(default_factory=dict)  # manifests_read, manifests_reused

    @property
    def complete(self) -> bool:
        return self.info.complete


def crawl(source: str, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl SOURCE into a new snapshot directory OUTPUT (or resume the crawl to it)."""
    return crawl_source(open_source(source, options), output, options)


def crawl_source(source: Source, output: str, options: CrawlOptions) -> CrawlResult:
    """Crawl an opened source into a new snapshot directory OUTPUT.

    With `options.resume`, continue the interrupted crawl to OUTPUT instead. With
    `options.previous`, reuse the manifests that earlier snapshot parsed (regstat.crawl.reuse). OUTPUT is never
    inside a snapshot or the local SOURCE, nor around it; `options.force` replaces only a
    snapshot or an empty directory (regstat.snapshot.outputs).
    """
    check_crawl_output(output, source.describe().local_directory)
    if options.resume:
        return _resume(source, output, options)
    previous = previous_for(source, options)
    pending = PendingSnapshot(output, force=options.force)
    try:
        crawl = Crawl(source, pending, options, previous=previous)
    except BaseException:
        pending.discard()
        raise
    return _finish(crawl, pending, resumed=False)


def _resume(source: Source, output: str, options: CrawlOptions) -> CrawlResult:
    partial = find_interrupted(output)
    finished = PendingSnapshot.finished_in(partial)
    if finished is not None:
        if finished.source != source.describe():
            raise SnapshotError(f"{output}: the interrupted crawl read {finished.source.to_json()}, not this SOURCE")
        state = None
    else:
        state = read_journal(partial / STAGING, source, options)
    pending = PendingSnapshot.take_over(output, partial, force=options.force)
    if finished is not None:  # it had finished; only the rename was left
        stats = {"resumed": True, "jobs_run": 0, "jobs_reused": 0, "items_read": 0}
        return CrawlResult(pending.publish(finished), finished, stats)
    previous = previous_for(source, options)
    return _finish(Crawl(source, pending, options, state, previous), pending, resumed=True)


def _finish(crawl: Crawl, pending: PendingSnapshot, resumed: bool) -> CrawlResult:
    try:
        info = crawl.run()
        return CrawlResult(pending.publish(info), info, crawl.stats(), crawl.manifest_counts())
    except BaseException as e:
        # Keep what can be resumed (Ctrl-C, SIGTERM, a crash); a fresh crawl that failed
        # for a reason regstat reports (the source cannot be read) leaves nothing.
        if not (crawl.resumable and (resumed or not isinstance(e, RegstatError))):
            pending.discard()
        raise


def kept_for_resume(output: str) -> bool:
    """After an interrupted crawl in this process: whether `--resume` can continue it."""
    return partial_path(Path(output).absolute(), os.getpid()).is_dir()
