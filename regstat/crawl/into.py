"""`crawl --into DIR`: a crawl into a snapshot history (regstat.snapshot.history): a new
directory named by the time it began, `latest` pointed at it once published, and older
snapshots removed as `--retain` says."""

from __future__ import annotations

from dataclasses import dataclass, replace
from pathlib import Path

from ..errors import OutputRefusedError, SnapshotError
from ..snapshot import history, utc_now
from ..snapshot.outputs import is_regstat_directory
from ..sources.base import CrawlOptions
from . import CrawlResult, crawl
from .checkpoint import recorded_previous
from .driver import STAGING
from .publish import find_interrupted


@dataclass(frozen=True)
class IntoResult:
    crawl: CrawlResult
    removed: tuple[Path, ...]  # older snapshots --retain removed


def target(into: str, resume: bool) -> Path:
    """The snapshot directory a crawl into history `into` writes: a new one, or with `resume`
    the one the interrupted crawl was writing."""
    directory = Path(into)
    if is_regstat_directory(directory):
        raise OutputRefusedError(f"{into}: is a snapshot, not a history; --into takes the directory holding them")
    if directory.exists() and not directory.is_dir():
        raise OutputRefusedError(f"{into}: is a file; --into takes a directory")
    if resume:
        interrupted = history.interrupted_path(directory)
        if interrupted is None:
            raise SnapshotError(f"{into}: nothing to resume: no interrupted crawl into this history is left; "
                                "run the command without --resume to start a new crawl")
        return interrupted
    directory.mkdir(parents=True, exist_ok=True)
    return history.new_path(directory, utc_now())


def crawl_into(source: str, output: Path, options: CrawlOptions,
               retention: history.Retention | None) -> IntoResult:
    """Crawl SOURCE into `output` (from `target`), point the history's `latest` at it once
    published (with errors or without, as every crawl publishes), then apply `retention`.
    Without --previous the crawl reuses what the history's latest snapshot parsed (one of
    another source is ignored with a warning); a resumed crawl takes the one the interrupted
    crawl had, though `latest` may have moved since."""
    directory = output.parent
    if options.previous is None:
        before = _resumed_previous(output) if options.resume else history.latest(directory)
        if before is not None:
            options = replace(options, previous=str(before))
    result = crawl(source, str(output), options)
    history.point_latest(directory, result.path)
    removed = history.retain(directory, retention, keep=result.path, now=utc_now()) if retention else []
    return IntoResult(result, tuple(removed))


def _resumed_previous(output: Path) -> str | None:
    """The previous snapshot the interrupted crawl to `output` was started with."""
    return recorded_previous(find_interrupted(output) / STAGING)
