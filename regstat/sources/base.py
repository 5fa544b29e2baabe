"""What every source gives the crawl: jobs that return rows.

A source is a small object that knows what it can see (`capabilities`) and how to start
(`first_jobs`). A job is a picklable function and its arguments; it returns a `JobResult`
with staging rows (tuples in the column order of `regstat.crawl.assemble.STAGING_SCHEMAS`),
errors, and maybe more jobs. The crawl driver runs jobs on a pool and writes their rows, so
every source produces the same snapshot tables.
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

from ..errors import CrawlError
from ..model import Manifest
from ..progress import Progress
from ..shards import Shard
from ..snapshot.info import Capabilities, SourceInfo
from ..snapshot.previous import PreviousManifests

ManifestResult = Manifest | tuple[str, str, str]  # parsed, or (digest, status, message)
Job = tuple[Callable[..., "JobResult"], tuple[Any, ...]]


def warn_on_stderr(message: str) -> None:
    print(f"regstat: warning: {message}", file=sys.stderr)


@dataclass(frozen=True, kw_only=True)
class CrawlOptions:
    """How to crawl. `repositories` are globs over full names (`*` matches `/` too)."""

    concurrency: int | None = None  # None: the source's default
    repositories: tuple[str, ...] = ()
    shard: Shard | None = None  # --shard K/N: only the repositories (and blob listings) of shard K
    force: bool = False
    resume: bool = False  # continue the interrupted crawl to the same output
    progress: Progress = field(default_factory=lambda: Progress(enabled=False))
    # An earlier snapshot of the same source whose manifests need not be read again
    # (regstat.crawl.reuse); one that cannot be trusted is ignored with a warning.
    previous: str | None = None
    warn: Callable[[str], None] = field(default=warn_on_stderr, repr=False, compare=False)
    # storage layouts
    endpoint_url: str | None = None
    verify_links: bool = False  # read every revision and _layers link, not only check its size
    # registry APIs
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    insecure: bool = False
    ca_file: str | None = None
    # ACR: an Entra ID credential kind (sources.acr.entra.KINDS) and its authority host
    azure_credential: str | None = None
    azure_authority_host: str | None = None
    # ECR
    registry_id: str | None = None
    # OCI layouts
    name: str | None = None


@dataclass
class JobResult:
    """What one job produced."""

    rows: dict[str, list[tuple]] = field(default_factory=dict)
    errors: list[CrawlError] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)  # digests for the source's fetch_job
    parsed: list[ManifestResult] = field(default_factory=list)  # manifests the job read itself
    reused: list[str] = field(default_factory=list)  # manifests taken from the previous snapshot instead
    jobs: list[Job] = field(default_factory=list)  # more work
    items: int = 0  # files, keys or requests: for progress
    # Repositories the source listed that --repository left out; None when the source could
    # not list its repositories (names given instead of a catalog): the total is unknown.
    unselected: int | None = 0

    def add(self, table: str, row: tuple) -> None:
        self.rows.setdefault(table, []).append(row)


def index_children(parsed: ManifestResult) -> list[tuple[str, str | None]]:
    """An index's children as (digest, platform); none for any other manifest."""
    if not isinstance(parsed, Manifest):
        return []
    return [(d.digest, d.platform) for d in parsed.descriptors if d.role == "manifest"]


def record_missing_children(
    result: JobResult, repository: str, path: str, children: Iterable[tuple[str, str | None]],
    listed: frozenset[str] | None,
) -> None:
    """A `missing_child` error for each index child (digest, platform) the repository does not
    hold. `listed`: every digest of the repository; None when its listing was incomplete, and
    then nothing is checked (a child missing from part of a listing may well be there)."""
    if listed is None:
        return
    for digest, platform in children:
        if digest not in listed:
            named = f" ({platform})" if platform else ""
            message = f"the index lists {digest}{named}, which {repository} does not hold"
            result.errors.append(CrawlError(repository, path, "missing_child", message))


def add_unselected(total: int | None, more: int | None) -> int | None:
    """Sum counts of unselected repositories; unknown (None) once either is."""
    return None if total is None or more is None else total + more


class SharedJobState(Protocol):
    """Mutable state several jobs share (the digests a repository's jobs claimed to fetch).

    The crawl journal records it by `resume_key()`; a resumed crawl rebuilds it with
    `resumed(key, revisions)` from the revisions (repository -> digests) that finished jobs
    wrote, since those are what they fetched.
    """

    def resume_key(self) -> str: ...

    @classmethod
    def resumed(cls, key: str, revisions: Mapping[str, set[str]]) -> SharedJobState: ...


class Source(Protocol):
    processes: bool  # run jobs in worker processes (else threads)
    default_concurrency: int

    def describe(self) -> SourceInfo:
        """`source` in snapshot.json: kind, location, and nothing secret."""
        ...

    def capabilities(self, partial: bool) -> Capabilities:
        """`capabilities` in snapshot.json: what it sees of the registry (of the crawled
        repositories only, when `partial`)."""
        ...

    def first_jobs(self) -> list[Job]: ...

    def fetch_job(self, digests: list[str]) -> Job:
        """A job reading manifests named by digest anywhere in the registry (storage layouts)."""
        ...

    def manifest_path(self, repository: str, digest: str) -> str:
        """Where this source keeps a manifest: the `path` of errors about it."""
        ...


@runtime_checkable
class ListsManifestBlobs(Protocol):
    """A source whose `fetch_job` reads manifests from blobs it also lists, with their sizes,
    as `stored_blobs` (storage trees). The crawl then reuses a manifest of the previous
    snapshot without handing it to `fetch_job` when this crawl's listing holds its blob at
    the size recorded; any other is read."""

    def lists_manifest_blobs(self) -> bool: ...


@runtime_checkable
class ReusesManifests(Protocol):
    """A source whose jobs read manifests themselves (registry APIs, ECR, ACR, OCI layouts):
    the crawl sets `previous` before the first job, and the jobs put a digest they reused in
    `JobResult.reused` instead of reading it, once the source confirmed it holds it."""

    previous: PreviousManifests | None
