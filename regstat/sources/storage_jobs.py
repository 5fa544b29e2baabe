"""The units of work of a storage-layout crawl: pure functions of (storage, arguments).

Each returns plain rows and `CrawlError`s and touches no shared state, so the crawl can run
them in worker processes (local disk: the per-file work is Python, and one GIL would
serialise it) or threads (S3: every request waits on the network). Rows are tuples in the
column order of the staging tables in `regstat.assemble`.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from datetime import datetime

from ..errors import CrawlError, ManifestError
from ..model import MAX_MANIFEST_BYTES, Manifest, is_digest, parse_manifest
from .storage import Storage
from .storage_layout import (
    LINK_LIMIT,
    Link,
    RepositoryListing,
    add_repository_entry,
    blob_data_path,
    check_link,
    check_link_size,
    classify_blob,
    is_tag_history,
    valid_repository_name,
)


@dataclass
class ShardResult:
    """What one listing shard produced: staging rows by table, errors, and for repository
    shards the repositories seen and the manifest digests they hold."""

    rows: dict[str, list[tuple]] = field(default_factory=dict)
    errors: list[CrawlError] = field(default_factory=list)
    repositories: list[str] = field(default_factory=list)
    manifests: list[str] = field(default_factory=list)
    files: int = 0

    def add(self, table: str, row: tuple) -> None:
        self.rows.setdefault(table, []).append(row)


def list_blob_shard(storage: Storage, prefix: str) -> ShardResult:
    """Stored blobs under one `blobs/<alg>/<2 hex>` prefix, with sizes from the listing."""
    result = ShardResult()
    try:
        entries = list(storage.walk(prefix))
    except OSError as e:
        result.errors.append(CrawlError(None, prefix, "read_error", f"cannot list: {e}"))
        return result
    result.files = len(entries)
    for entry in entries:
        blob = classify_blob(entry)
        if blob is None:
            kind = "symlink" if entry.symlink else "outside_layout"
            result.errors.append(CrawlError(None, entry.path, kind, "not a blob's data file"))
        else:
            result.add("stored_blobs", (blob.digest, blob.size, blob.modified_us))
    return result


def crawl_repository_shard(
    storage: Storage, prefix: str, globs: tuple[str, ...], verify_links: bool
) -> ShardResult:
    """Every repository under one top-level directory of `repositories/`: list, read links."""
    result = ShardResult()
    try:
        entries = list(storage.walk(prefix, skip=is_tag_history))
    except OSError as e:
        result.errors.append(CrawlError(None, prefix, "read_error", f"cannot list: {e}"))
        return result
    result.files = len(entries)
    listings: dict[str, RepositoryListing] = {}
    for entry in entries:
        problem = add_repository_entry(listings, entry)
        if problem:
            result.errors.append(CrawlError(None, entry.path, "outside_layout", problem))
    selected = [
        listings[name]
        for name in sorted(listings)
        if not globs or any(fnmatch.fnmatchcase(name, g) for g in globs)
    ]
    # Read what the registry itself reads: tag and revision links. Layer links are checked by
    # their listed size unless verify_links: one read per layer link is the largest cost of a
    # crawl on S3, and the registry's own GC never reads them.
    paths = []
    for listing in selected:
        paths += [link.path for link in (*listing.tags.values(), *listing.revisions)]
        if verify_links:
            paths += [link.path for link in listing.layers]
        paths += [u.started_path for u in listing.uploads.values() if u.started_path]
    contents = storage.read_many(paths, LINK_LIMIT)
    for listing in selected:
        _repository(listing, contents, result)
    return result


def _repository(listing: RepositoryListing, contents: dict[str, bytes | OSError], result: ShardResult) -> None:
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
            result.add("revisions", (name, link.expected, link.modified_us))
    result.manifests.extend(sorted(revisions))
    for tag, link in sorted(listing.tags.items()):
        digest = link_digest(link)
        if digest is None:
            continue
        if digest not in revisions:
            problem(link.path, "dangling_tag", f"tag {tag} points at {digest}, which {name} does not hold")
        result.add("tag_links", (name, tag, digest, link.modified_us))
    for link in listing.layers:
        link_digest(link)
        if link.expected and is_digest(link.expected):
            result.add("layer_links", (name, link.expected, link.modified_us))
    for upload in listing.uploads.values():
        started = None
        if upload.started_path:
            started = _parse_started_at(contents.get(upload.started_path))
            if started is None:
                problem(upload.started_path, "bad_link", "startedat is not an RFC 3339 time")
        result.add("uploads", (name, upload.uuid, started, upload.size, upload.modified_us))


ManifestResult = Manifest | tuple[str, str, str]  # parsed, or (digest, status, message)


def fetch_manifests(storage: Storage, digests: list[str]) -> list[ManifestResult]:
    """Read and parse manifest blobs; failures come back as (digest, status, message)."""
    bodies = storage.read_many([blob_data_path(d) for d in digests], MAX_MANIFEST_BYTES + 1)
    results: list[ManifestResult] = []
    for digest in digests:
        body = bodies[blob_data_path(digest)]
        if isinstance(body, FileNotFoundError):
            results.append((digest, "missing", "the manifest's blob data is missing"))
        elif isinstance(body, OSError):
            results.append((digest, "unreadable", f"cannot read the manifest's blob: {_describe(body)}"))
        else:
            try:
                results.append(parse_manifest(body, digest))
            except ManifestError as e:
                results.append((digest, e.status, str(e)))
    return results


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
