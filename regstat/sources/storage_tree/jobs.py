"""The storage-layout source: its jobs are pure functions of (storage, arguments).

Each returns plain rows and `CrawlError`s and touches no shared state, so the crawl can run
them in worker processes (local disk: the per-file work is Python, and one GIL would
serialise it) or threads (S3: every request waits on the network).
"""

from __future__ import annotations

from dataclasses import replace
from datetime import datetime

from ...errors import CrawlError, ManifestError
from ...model import MAX_MANIFEST_BYTES, is_digest, parse_manifest
from ...shards import Selection
from ...snapshot.info import Capabilities, SourceInfo
from ..base import CrawlOptions, Job, JobResult, ManifestResult
from .storage import Entry, PagedStorage, Storage
from .layout import (
    BAD_NAME,
    LINK_LIMIT,
    Link,
    RepositoryListing,
    add_repository_entry,
    blob_data_path,
    check_link,
    check_link_size,
    classify_blob,
    is_tag_history,
    leaf_file,
    valid_repository_name,
)


CAPABILITIES = Capabilities(
    untagged_manifests=True,
    unreferenced_blobs=True,
    stored_blob_sizes=True,
    push_times="approximate",  # modification times of link files
    pull_times=None,
    locks=None,
)


class StorageLayoutSource:
    """The distribution registry's storage tree, on disk or in S3."""

    def __init__(self, storage: Storage, options: CrawlOptions) -> None:
        self.storage = storage
        self.processes = storage.processes
        self.default_concurrency = storage.default_concurrency
        self.selection = Selection(options.repositories, options.shard)
        self.verify_links = options.verify_links

    def describe(self) -> SourceInfo:
        return self.storage.describe()

    def capabilities(self, partial: bool) -> Capabilities:
        return replace(CAPABILITIES, unreferenced_blobs=not partial)

    def first_jobs(self) -> list[Job]:
        return [(plan_storage_layout, (self.storage, self.selection, self.verify_links))]

    def fetch_job(self, digests: list[str]) -> Job:
        return fetch_manifests, (self.storage, digests)

    def lists_manifest_blobs(self) -> bool:
        return True  # every blob under blobs/, manifests' too, with its size (list_blob_shard)

    def manifest_path(self, repository: str, digest: str) -> str:
        return blob_data_path(digest)


def plan_storage_layout(storage: Storage, selection: Selection, verify_links: bool) -> JobResult:
    """List the top of the tree: one job per blob shard and per top-level repository directory
    (with --shard: the blob shards of its range, and every directory: a name's hash says
    whether a repository is the shard's)."""
    result = JobResult()

    def directories(prefix: str) -> list[str]:
        try:
            names, files = storage.listdir(prefix)
        except OSError as e:
            result.errors.append(CrawlError(None, prefix, "read_error", f"cannot list: {e}"))
            return []
        for entry in files:
            result.errors.append(CrawlError(None, entry.path, *_stray(entry, "not part of the storage layout")))
        return names

    for algorithm in directories("blobs"):
        prefix = f"blobs/{algorithm}"
        if isinstance(storage, PagedStorage):
            cut = selection.shard  # None: all of it
            result.jobs.append((list_blobs, (storage, prefix, *cut.blob_range(prefix), *cut.span) if cut
                                else (storage, prefix)))
            continue
        for shard in directories(prefix):
            if selection.lists_blobs(prefix, f"{prefix}/{shard}"):
                result.jobs.append((list_blob_shard, (storage, f"{prefix}/{shard}")))
    for top in directories("repositories"):
        if _may_hold(top, selection.globs):
            result.jobs.append((crawl_repository_shard, (storage, f"repositories/{top}", selection, verify_links)))
        else:
            result.jobs.append((count_repositories, (storage, f"repositories/{top}")))
    return result


def count_repositories(storage: Storage, prefix: str) -> JobResult:
    """How many repositories a directory no --repository glob can match holds, for a partial
    snapshot's "N of M": directory names only, one listing per namespace and repository, never
    their links (a repository is a directory holding `_manifests`; names that start with `_`
    are the registry's own)."""
    result = JobResult()
    pending, found = [prefix], 0
    while pending:
        directory = pending.pop()
        try:
            names, _ = storage.listdir(directory)
        except OSError:
            result.unselected = None  # cannot tell; the crawl of the selected ones goes on
            return result
        found += "_manifests" in names
        pending.extend(f"{directory}/{name}" for name in names if not name.startswith("_"))
    result.unselected = found
    return result


def _stray(entry: Entry, message: str) -> tuple[str, str]:
    """(kind, message) for a file where the layout has none."""
    if entry.bad_name:
        return "invalid_name", BAD_NAME
    return ("symlink" if entry.symlink else "outside_layout"), message


def _may_hold(top: str, globs: tuple[str, ...]) -> bool:
    """Whether a top-level directory can hold a repository the --repository globs select."""
    if not globs:
        return True
    for glob in globs:
        first = glob.split("/", 1)[0]
        if any(c in first for c in "*?[") or first == top:
            return True
    return False


def list_blob_shard(storage: Storage, prefix: str) -> JobResult:
    """Stored blobs under one `blobs/<alg>/<2 hex>` prefix, with sizes from the listing."""
    try:
        entries = list(storage.walk(prefix, leaf=leaf_file))
    except OSError as e:
        return _cannot_list(prefix, e)
    return _blobs(entries)


# Paged storage (S3) lists `blobs/<alg>/` flat: one request per page of 1,000 keys, where
# listing each of the 256 shards costs 256 requests however few blobs there are. A tree too
# large for one page is listed in ranges, in parallel: digests are uniform in hex, so how far
# into the hex space the first page reached tells how many keys the rest holds. Each range
# is sized to fit one page; an estimate off by much costs requests, never keys.
KEYS_PER_RANGE = 900  # expected; a page holds 1,000, so most ranges take one request
MAX_RANGES = 4096  # per job listing; more would be jobs the crawl queues and journals for nothing


def list_blobs(storage: PagedStorage, prefix: str, after: str = "", until: str | None = None,
               start: float = 0.0, end: float = 1.0) -> JobResult:
    """Stored blobs under `blobs/<alg>` (past the path `after`, up to `until`: a --shard's
    range, from `start` to `end` of the hex space): its first listing page, then the rest in ranges."""
    try:
        entries, more = storage.list_page(prefix, after)
    except OSError as e:
        return _cannot_list(prefix, e)
    if until is not None and entries and entries[-1].path > until:
        entries, more = [e for e in entries if e.path <= until], False
    result = _blobs(entries)
    if more:
        # S3 may answer with an empty page that says more follow: then list from `after`.
        bounds = blob_ranges(prefix, entries[-1].path, len(entries), start, end) if entries else [after]
        for low, high in zip(bounds, [*bounds[1:], until], strict=True):
            result.jobs.append((list_blob_range, (storage, prefix, low, high)))
    return result


def blob_ranges(prefix: str, last: str, listed: int, start: float = 0.0, end: float = 1.0) -> list[str]:
    """Where the ranges of the rest of `prefix` start (each runs to the next one's start, the
    last to the end), from the last path of a first page of `listed` keys that began at
    `start` in the hex space (0 to 1), the listing ending at `end`: `last` first, then
    increasing paths past it."""
    position = _hex_position(prefix, last)
    if position is None or position >= end:
        return [last]  # not a blob's path: the rest in one range
    remaining = listed * (end - position) / max(position - start, 1e-12)
    ranges = max(1, min(MAX_RANGES, round(remaining / KEYS_PER_RANGE)))
    bounds = [last]
    for i in range(1, ranges):
        value = int((position + (end - position) * i / ranges) * _HEX_SPACE)
        hex_ = f"{value:0{_HEX_DIGITS}x}"
        bound = f"{prefix}/{hex_[:2]}/{hex_}"
        if bound > bounds[-1]:
            bounds.append(bound)
    return bounds


_HEX_DIGITS = 12
_HEX_SPACE = 16**_HEX_DIGITS


def _hex_position(prefix: str, path: str) -> float | None:
    """Where `path` (`<prefix>/<2 hex>/<hex>/data`) lies in the hex space, from 0 to 1."""
    parts = path[len(prefix) + 1 :].split("/")
    if len(parts) < 2:
        return None
    try:
        return int(parts[1][:_HEX_DIGITS].ljust(_HEX_DIGITS, "0"), 16) / _HEX_SPACE
    except ValueError:
        return None


def list_blob_range(storage: PagedStorage, prefix: str, after: str, until: str | None) -> JobResult:
    """Stored blobs under `prefix` past the path `after` (from the start: ""), up to `until`
    (to the end: None)."""
    entries: list[Entry] = []
    try:
        pages = storage.walk_pages(prefix, after=after)
        for page in pages:
            if until is not None and page and page[-1].path > until:
                entries += [e for e in page if e.path <= until]
                pages.close()  # the next range lists the rest
                break
            entries += page
    except OSError as e:
        return _cannot_list(f"{prefix} (past {after})", e)
    return _blobs(entries)


def _cannot_list(prefix: str, error: OSError) -> JobResult:
    result = JobResult()
    result.errors.append(CrawlError(None, prefix, "read_error", f"cannot list: {error}"))
    return result


def _blobs(entries: list[Entry]) -> JobResult:
    result = JobResult()
    result.items = len(entries)
    for entry in entries:
        blob = classify_blob(entry)
        if blob is None:
            result.errors.append(CrawlError(None, entry.path, *_stray(entry, "not a blob's data file")))
        else:
            result.add("stored_blobs", (blob.digest, blob.size, blob.modified_us))
    return result


# A top-level directory of `repositories/` with more subdirectories than this (an
# organisation holding thousands of repositories) is split: its subdirectories are crawled by
# jobs of at most SUBDIRECTORIES_PER_JOB each, so what one job lists, holds and returns stays
# small however large the registry. Smaller ones are walked whole by one job.
SPLIT_ABOVE = 32
SUBDIRECTORIES_PER_JOB = 32


def crawl_repository_shard(
    storage: Storage, prefix: str, selection: Selection, verify_links: bool
) -> JobResult:
    """Every repository under one top-level directory of `repositories/`: list, read links.

    A directory with many subdirectories gets split (SPLIT_ABOVE): this job reads only the
    repository at `prefix` itself (its `_manifests`, `_layers`, `_uploads`) and queues jobs
    for the subdirectories. On S3 a directory whose listing fits one page takes that one
    request (listing its subdirectories first would be a second).
    """
    try:
        if isinstance(storage, PagedStorage):
            entries, more = storage.list_page(prefix)
            if not more:
                return _crawl_repositories(storage, [], selection, verify_links, entries)
        names, files = storage.listdir(prefix)
    except OSError as e:
        return _cannot_list(prefix, e)
    children = [n for n in names if not n.startswith("_")]
    if len(children) <= SPLIT_ABOVE:
        return _crawl_repositories(storage, [prefix], selection, verify_links)
    own = [f"{prefix}/{n}" for n in names if n.startswith("_")]
    result = _crawl_repositories(storage, own, selection, verify_links, files)
    for i in range(0, len(children), SUBDIRECTORIES_PER_JOB):
        prefixes = [f"{prefix}/{n}" for n in children[i : i + SUBDIRECTORIES_PER_JOB]]
        result.jobs.append((crawl_repository_directories, (storage, prefixes, selection, verify_links)))
    return result


def crawl_repository_directories(
    storage: Storage, prefixes: list[str], selection: Selection, verify_links: bool
) -> JobResult:
    """Every repository under some subdirectories of a split top-level directory."""
    return _crawl_repositories(storage, prefixes, selection, verify_links)


def _crawl_repositories(
    storage: Storage,
    prefixes: list[str],
    selection: Selection,
    verify_links: bool,
    files: list[Entry] = (),  # type: ignore[assignment]
) -> JobResult:
    """List every file below `prefixes` (plus `files`, listed already), file them by
    repository, read the links."""
    result = JobResult()
    entries = list(files)
    torn = _TornListing()
    for prefix in prefixes:
        try:
            entries += torn.walk(storage, prefix)
        except OSError as e:
            result.errors.append(CrawlError(None, prefix, "read_error", f"cannot list: {e}"))
            return result
    result.items = len(entries)
    listings: dict[str, RepositoryListing] = {}
    for entry in entries:
        problem = add_repository_entry(listings, entry)
        if problem:
            kind = "invalid_name" if entry.bad_name else "outside_layout"
            result.errors.append(CrawlError(None, entry.path, kind, problem))
    del entries
    selected = [
        listings[name]
        for name in sorted(listings)
        if selection.selects(name)
    ]
    result.unselected = len(listings) - len(selected)
    # Tag links are read: only their content names the tagged manifest. Revision and layer
    # links name their digest in their path, which is what the registry's enumeration of
    # manifests and blobs (and so its GC's mark phase) goes by, so they are checked by their
    # listed size unless verify_links: an empty or truncated link is caught all the same, and
    # one read per link was most of a crawl's requests on S3. Only a link of the right length
    # holding something else needs verify_links.
    paths = []
    for listing in selected:
        paths += [link.path for link in listing.tags.values()]
        if verify_links:
            paths += [link.path for link in (*listing.revisions, *listing.layers)]
        paths += [u.started_path for u in listing.uploads.values() if u.started_path]
    contents = storage.read_many(paths, LINK_LIMIT)
    if not verify_links:
        for listing in selected:
            if torn.may_be_torn(listing):
                _relist_revisions(storage, listing, contents)
    for listing in selected:
        _repository(listing, contents, result)
    return result


class _TornListing:
    """Which repositories' revisions may be torn: listed before a change their tags were
    listed after (a manifest deleted with its tags between the two would stay as an untagged
    manifest that no longer exists). Reading each revision link after the listing used to
    catch that; re-listing the revisions of the repositories at risk does it for far fewer
    requests. One S3 page is taken as listed at one moment, so only repositories whose
    revisions end a page or span pages are at risk; a file system walk, directory by
    directory, puts every repository at risk (and re-listing is cheap there).
    """

    def __init__(self) -> None:
        self.paged = True
        self.page_of: dict[str, int] = {}  # revision link path -> its page
        self.page_ends: set[str] = set()  # the last path of every page but a walk's last
        self.pages = 0

    def walk(self, storage: Storage, prefix: str) -> list[Entry]:
        walk_pages = getattr(storage, "walk_pages", None)
        if walk_pages is None:
            self.paged = False
            return list(storage.walk(prefix, skip=is_tag_history, leaf=leaf_file))
        entries: list[Entry] = []
        last: str | None = None
        for page in walk_pages(prefix):
            if last is not None:
                self.page_ends.add(last)
            self.pages += 1
            for entry in page:
                if "/_manifests/revisions/" in entry.path:
                    self.page_of[entry.path] = self.pages
            entries += page
            last = page[-1].path if page else last
        return entries

    def may_be_torn(self, listing: RepositoryListing) -> bool:
        if not listing.revisions:
            return False
        if not self.paged:
            return True
        pages = {self.page_of.get(link.path) for link in listing.revisions}
        return len(pages) > 1 or any(link.path in self.page_ends for link in listing.revisions)


def _relist_revisions(storage: Storage, listing: RepositoryListing, contents: dict[str, bytes | OSError]) -> None:
    """List a repository's revisions again: one listed before and gone now reads as vanished."""
    prefix = f"repositories/{listing.name}/_manifests/revisions"
    try:
        now = {entry.path for entry in storage.walk(prefix, leaf=leaf_file)}
    except OSError as e:
        now = set()
        failure: OSError = e
    else:
        failure = FileNotFoundError(prefix)
    for link in listing.revisions:
        if link.path not in now:
            contents[link.path] = failure


def _repository(listing: RepositoryListing, contents: dict[str, bytes | OSError], result: JobResult) -> None:
    name = listing.name
    result.repositories.append(name)
    errors = result.errors

    def problem(path: str, kind: str, message: str) -> None:
        errors.append(CrawlError(name, path, kind, message))

    if not valid_repository_name(name):
        problem(f"repositories/{name}", "invalid_name", "not a valid repository name")
    if not listing.has_manifests and not listing.uploads:
        # With an upload in progress this is a first push in flight, which is normal.
        problem(
            f"repositories/{name}",
            "no_manifests_dir",
            "repository directory without _manifests (an interrupted first push leaves this)",
        )
    for path, kind, message in listing.problems:
        problem(path, kind, message)

    def link_digest(link: Link) -> str | None:
        content = contents.get(link.path)
        if content is None:
            digest, kind, message = check_link_size(link)
        elif isinstance(content, OSError):
            digest, kind, message = None, "read_error", _describe(content)
        else:
            digest, kind, message = check_link(link, content)
        if kind:
            problem(link.path, kind, message or "")
        return digest

    revisions = set()
    for link in listing.revisions:
        link_digest(link)
        # The path names the manifest even when the link file is damaged: keep the row, so
        # nothing it references looks unreferenced (the repository is incomplete anyway).
        if link.expected and is_digest(link.expected):
            revisions.add(link.expected)
            result.add("revisions", (name, link.expected, link.modified_us, None, None, None))
    result.manifests.extend(sorted(revisions))
    for tag, link in sorted(listing.tags.items()):
        digest = link_digest(link)
        if digest is None:
            continue
        if digest not in revisions:
            problem(link.path, "dangling_tag", f"tag {tag} points at {digest}, which {name} does not hold")
        result.add("tag_links", (name, tag, digest, link.modified_us, None))
    for link in listing.layers:
        link_digest(link)
        if link.expected and is_digest(link.expected):
            result.add("layer_links", (name, link.expected, link.modified_us))
    for upload in listing.uploads.values():
        started = None
        if upload.started_path:
            content = contents.get(upload.started_path)
            started = _parse_started_at(content)
            if isinstance(content, OSError):  # not the file's fault: say what reading met
                problem(upload.started_path, "read_error", _describe(content))
            elif started is None:
                problem(upload.started_path, "bad_link", "startedat is not an RFC 3339 time")
        result.add("uploads", (name, upload.uuid, started, upload.size, upload.modified_us))


def fetch_manifests(storage: Storage, digests: list[str]) -> JobResult:
    """Read and parse manifest blobs; failures come back as (digest, status, message)."""
    bodies = storage.read_many([blob_data_path(d) for d in digests], MAX_MANIFEST_BYTES + 1)
    result = JobResult(items=len(digests))
    for digest in digests:
        body = bodies[blob_data_path(digest)]
        if isinstance(body, FileNotFoundError):
            result.parsed.append((digest, "missing", "the manifest's blob data is missing"))
        elif isinstance(body, OSError):
            result.parsed.append((digest, "unreadable", f"cannot read the manifest's blob: {_describe(body)}"))
        else:
            result.parsed.append(parse_or_record(body, digest))
    return result


def parse_or_record(body: bytes, digest: str) -> ManifestResult:
    try:
        return parse_manifest(body, digest)
    except ManifestError as e:
        return digest, e.status, str(e)


def _describe(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "vanished during the crawl"
    return str(error) or type(error).__name__


def _parse_started_at(content: bytes | OSError | None) -> datetime | None:
    if not isinstance(content, bytes):
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

