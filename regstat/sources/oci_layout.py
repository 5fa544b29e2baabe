"""The OCI image layout source, SOURCE `oci:PATH`: one directory holding one repository.

    PATH/oci-layout          {"imageLayoutVersion": "1.0.0"}
    PATH/index.json          an image index; its entries are the roots, and an entry's
                             `org.opencontainers.image.ref.name` annotation is its tag
    PATH/blobs/<alg>/<hex>   every blob, manifests included

The repository's manifests are index.json's entries (tagged or not: index.json is the root
that keeps them) and everything they reach through nested indexes. An entry with a ref.name is
a tag (removing the entry is deleting the tag); one without is recorded as a root
(`manifests.root`): kept whatever happens to tags, as go-containerregistry's and umoci's
garbage collectors keep it. Every other blob is just a blob, however JSON it looks: a layout
has no revision links, so a manifest index.json does not reach is not part of the
repository, and it and what it references are unreferenced blobs.

A layout has no push or pull times and no per-repository links: `pushed_at` is a manifest
blob's modification time, a tag's `updated_at` is index.json's, and `repository_blobs` and
`uploads` stay empty. Nothing is read through a symbolic link: every path is opened one
component at a time with O_NOFOLLOW, so a link planted in the layout cannot lead outside it.

An incremental crawl (`previous`) does not read a manifest blob the previous snapshot parsed
when the blob is a regular file of the size it recorded: its facts (index children included)
are reused. A blob missing or of another size is read, and recorded as a fresh read would.
"""

from __future__ import annotations

import errno
import json
import os
import stat
from collections import deque
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field, replace

from ..errors import CrawlError, SourceError
from ..model import MAX_MANIFEST_BYTES, Manifest, MediaType, is_digest
from ..shards import Selection
from ..snapshot.info import Capabilities, SourceInfo
from ..snapshot.previous import PreviousManifests
from .base import CrawlOptions, Job, JobResult, ManifestResult
from .storage_tree.storage import read_fd
from .storage_tree.jobs import parse_or_record
from .storage_tree.layout import valid_repository_name

PREFIX = "oci:"
REF_NAME = "org.opencontainers.image.ref.name"
MAX_DEPTH = 8  # manifests on a path down from index.json; real layouts nest two or three
LAYOUT_FILE_LIMIT = 64 * 1024  # oci-layout holds one small JSON object
INDEX_JSON_LIMIT = 64 * 1024 * 1024  # index.json is not a blob: no 4 MiB rule, but a bound

CAPABILITIES = Capabilities(
    untagged_manifests=True,
    unreferenced_blobs=True,
    stored_blob_sizes=True,
    push_times="approximate",  # modification times of manifest blobs
    pull_times=None,
    locks=None,
)

_NOFOLLOW = getattr(os, "O_NOFOLLOW", 0)
_DIRECTORY = getattr(os, "O_DIRECTORY", 0)
_NONBLOCK = getattr(os, "O_NONBLOCK", 0)  # a FIFO planted in blobs/ must not hang the crawl


@dataclass(frozen=True)
class LayoutIndex:
    """What index.json says: the root digests, the tags, and entries it could not use."""

    roots: tuple[str, ...]  # every entry's digest
    tags: tuple[tuple[str, str], ...]  # (tag, digest), in index.json's order
    modified_us: int
    problems: tuple[str, ...] = ()
    # The digests of entries without a usable ref.name: kept whatever the tags. None (a crawl
    # journal from before this field, resumed): unknown, so every entry counts as unnamed.
    unnamed: tuple[str, ...] | None = None


class OCILayoutSource:
    """An OCI image layout directory, crawled as one repository in a few threads."""

    processes = False  # two jobs, a local directory: threads are plenty
    default_concurrency = 2

    def __init__(
        self, location: str, name: str, name_problem: str | None, index: LayoutIndex, options: CrawlOptions
    ) -> None:
        self.location = location
        self.name = name
        self.name_problem = name_problem
        self.index = index
        self.selected = Selection(options.repositories, options.shard).selects(name)
        # Blobs belong to no repository: with --shard, the shard of the layout's one repository
        # lists them, so the merged shards hold each once.
        self.lists_blobs = self.selected or options.shard is None
        self.previous: PreviousManifests | None = None  # set by an incremental crawl

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="oci-layout", location=self.location, repository=self.name)

    def capabilities(self, partial: bool) -> Capabilities:
        return replace(CAPABILITIES, unreferenced_blobs=not partial)

    def first_jobs(self) -> list[Job]:
        jobs: list[Job] = [(list_blobs, (self.location, 0 if self.selected else 1, self.lists_blobs))]
        if self.selected:
            jobs.append((crawl_layout, (self.location, self.name, self.name_problem, self.index, self.previous)))
        return jobs

    def fetch_job(self, digests: list[str]) -> Job:
        return fetch_manifests, (self.location, digests)

    def manifest_path(self, repository: str, digest: str) -> str:
        return blob_path(digest)


def open_oci_layout(source: str, options: CrawlOptions) -> OCILayoutSource:
    """Open `oci:PATH`: check oci-layout and blobs/, and read index.json.

    Raises SourceError when PATH is not a readable OCI image layout at all.
    """
    path = source[len(PREFIX) :] if source.startswith(PREFIX) else source
    if not path:
        raise SourceError("oci: needs a path: oci:PATH")
    location = os.path.abspath(path)
    if not os.path.isdir(location):
        head, colon, _ = path.rpartition(":")
        if colon and os.path.isdir(head):
            raise SourceError(f"{path}: no such directory (a layout is crawled whole: give oci:{head})")
        raise SourceError(f"{path}: no such directory")
    _check_layout_version(location)
    try:
        blobs = os.lstat(os.path.join(location, "blobs"))
    except FileNotFoundError:
        raise SourceError(f"{location}: not an OCI image layout (no blobs directory)") from None
    except OSError as e:
        raise SourceError(f"{location}/blobs: {_describe(e)}") from None
    if not stat.S_ISDIR(blobs.st_mode):
        what = "a symbolic link; not followed" if stat.S_ISLNK(blobs.st_mode) else "not a directory"
        raise SourceError(f"{location}/blobs is {what}")
    index = read_index_json(location)
    # The name is recorded as given; one the registry's grammar rejects is an error against it.
    name = os.path.basename(location) if options.name is None else options.name
    problem = None
    if not valid_repository_name(name):
        problem = f"{name!r} is not a valid repository name"
        problem += " (from --name)" if options.name is not None else "; choose one with --name"
    return OCILayoutSource(location, name, problem, index, options)


def _check_layout_version(location: str) -> None:
    body, _ = _read_top(location, "oci-layout", LAYOUT_FILE_LIMIT)
    document = _json_object(body)
    if document is None:
        raise SourceError(f"{location}/oci-layout: not a JSON object")
    version = document.get("imageLayoutVersion")
    if not isinstance(version, str):
        raise SourceError(f"{location}/oci-layout: no imageLayoutVersion")
    if version.split(".")[0] != "1":
        raise SourceError(
            f"{location}/oci-layout: imageLayoutVersion {version[:40]!r} is not 1.x, which regstat reads"
        )


def read_index_json(location: str) -> LayoutIndex:
    """Read index.json: raise SourceError unless it is an image index; entries it cannot use
    (no digest, a ref.name that is not a string) come back as problems, to be recorded."""
    body, modified_us = _read_top(location, "index.json", INDEX_JSON_LIMIT)
    where = f"{location}/index.json"
    document = _json_object(body)
    if document is None:
        raise SourceError(f"{where}: not a JSON object")
    if document.get("schemaVersion") != 2:
        raise SourceError(f"{where}: schemaVersion is {document.get('schemaVersion')!r}, not 2")
    media_type = document.get("mediaType")
    if media_type is not None and media_type != MediaType.OCI_INDEX:
        raise SourceError(f"{where}: mediaType is {str(media_type)[:80]!r}, not an OCI image index")
    entries = document.get("manifests")
    if not isinstance(entries, list):
        raise SourceError(f"{where}: manifests is not a list")
    roots: dict[str, None] = {}  # ordered sets
    unnamed: dict[str, None] = {}
    tags: dict[tuple[str, str], None] = {}
    problems: list[str] = []
    for i, entry in enumerate(entries):
        digest = entry.get("digest") if isinstance(entry, dict) else None
        if not isinstance(digest, str) or not is_digest(digest):
            problems.append(f"manifests[{i}] has no valid digest: {str(digest)[:80]!r}")
            continue
        roots[digest] = None
        annotations = entry.get("annotations")
        tag = annotations.get(REF_NAME) if isinstance(annotations, dict) else None
        if isinstance(tag, str) and tag:
            tags[(tag, digest)] = None
            continue
        unnamed[digest] = None  # an entry whose name cannot be read is kept as unnamed, too
        if annotations is not None and not isinstance(annotations, dict):
            problems.append(f"manifests[{i}] ({digest}): annotations is not an object")
        elif annotations is not None and REF_NAME in annotations:
            problems.append(f"manifests[{i}] ({digest}): {REF_NAME} is not a name: {str(tag)[:80]!r}")
    seen: dict[str, str] = {}
    for tag, digest in tags:
        if tag in seen:
            # Every entry is still a root (and both tag rows are kept); only the tag is ambiguous.
            problems.append(f"{REF_NAME} {tag!r} names both {seen[tag]} and {digest}")
        seen.setdefault(tag, digest)
    return LayoutIndex(tuple(roots), tuple(tags), modified_us, tuple(problems), tuple(unnamed))


def _read_top(location: str, name: str, limit: int) -> tuple[bytes, int]:
    """A file at the top of the layout, for open_oci_layout: any failure is a SourceError."""
    try:
        body, modified_us = read_file(location, name, limit + 1)
    except FileNotFoundError:
        raise SourceError(f"{location}: not an OCI image layout (no {name} file)") from None
    except OSError as e:
        raise SourceError(f"{location}/{name}: {_describe(e)}") from None
    if len(body) > limit:
        raise SourceError(f"{location}/{name}: larger than {limit} bytes")
    return body, modified_us


def _json_object(body: bytes) -> dict | None:
    try:
        document = json.loads(body)
    except (ValueError, RecursionError):
        return None
    return document if isinstance(document, dict) else None


# --- jobs -------------------------------------------------------------------------------------


def list_blobs(location: str, unselected: int = 0, listed: bool = True) -> JobResult:
    """Every stored blob (`blobs/<alg>/<hex>`) with its size and modification time; any other
    file under blobs/ is an error outside the repository. `unselected`: 1 when --repository
    leaves the layout's one repository out (the snapshot counts it among the source's).
    `listed`: false in the shards that do not list them (none)."""
    result = JobResult(unselected=unselected)
    if not listed:
        return result
    for path, status in walk(location, "blobs", result.errors):
        result.items += 1
        parts = path.split("/")
        digest = f"{parts[1]}:{parts[2]}" if len(parts) == 3 else ""
        problem: tuple[str, str] | None
        if stat.S_ISLNK(status.st_mode):
            problem = "symlink", "symbolic link in the layout; not followed"
        elif not is_digest(digest):
            problem = "outside_layout", "not a blob: blobs/<algorithm>/<hex>"
        elif not stat.S_ISREG(status.st_mode):
            problem = "outside_layout", "named like a blob; not a regular file"
        else:
            problem = None
            result.add("stored_blobs", (digest, status.st_size, status.st_mtime_ns // 1000))
        if problem:
            result.errors.append(CrawlError(None, path, *problem))
    return result


def crawl_layout(
    location: str, name: str, name_problem: str | None, index: LayoutIndex, previous: PreviousManifests | None = None
) -> JobResult:
    """The repository: its tags, and the manifests index.json reaches, each read once (or,
    confirmed by its blob's size, reused from `previous`)."""
    result = JobResult(repositories=[name])

    def problem(path: str, kind: str, message: str) -> None:
        result.errors.append(CrawlError(name, path, kind, message))

    if name_problem:
        problem(".", "invalid_name", name_problem)
    for message in index.problems:
        problem("index.json", "invalid_manifest", message)
    for tag, digest in index.tags:
        result.add("tag_links", (name, tag, digest, index.modified_us, None))
    for digest in index.roots if index.unnamed is None else index.unnamed:
        result.add("roots", (name, digest))
    pushed: dict[str, int | None] = {}

    def read(digest: str) -> ManifestResult | Reused:
        if previous is not None and (size := previous.size(digest)) is not None:
            modified_us = _stored_at_size(location, digest, size)
            if modified_us is not None:
                pushed[digest] = modified_us
                return Reused(digest, previous.children_of(digest))
        parsed, pushed[digest] = read_manifest(location, digest)
        return parsed

    closure = close_over_indexes(index.roots, read)
    for digest, parsed in closure.manifests.items():
        result.add("revisions", (name, digest, pushed.get(digest), None, None, None))
        if isinstance(parsed, Reused):
            result.reused.append(digest)
        else:
            result.parsed.append(parsed)
    for digest, message in closure.problems:
        problem(blob_path(digest), "invalid_manifest", message)
    result.items = len(closure.manifests) + 1
    return result


def fetch_manifests(location: str, digests: list[str]) -> JobResult:
    """Read and parse manifests by digest (the crawl driver's fetch job)."""
    return JobResult(parsed=[read_manifest(location, d)[0] for d in digests], items=len(digests))


def read_manifest(location: str, digest: str) -> tuple[ManifestResult, int | None]:
    """A manifest blob, parsed or recorded as (digest, status, message), and its mtime."""
    try:
        body, modified_us = read_file(location, blob_path(digest), MAX_MANIFEST_BYTES + 1)
    except FileNotFoundError:
        return (digest, "missing", "the manifest's blob is missing"), None
    except OSError as e:
        return (digest, "unreadable", _describe(e)), None
    parsed = parse_or_record(body, digest)
    return parsed, modified_us


@dataclass(frozen=True)
class Reused:
    """A manifest taken from the previous snapshot instead of read: its digest and index children."""

    digest: str
    children: tuple[str, ...]


def _stored_at_size(location: str, digest: str, size: int) -> int | None:
    """The blob's modification time (us) when it is a regular file of `size` bytes; else None
    (missing, another size, unreadable: read it, and let the read say what is wrong)."""
    try:
        fd = open_below(location, blob_path(digest), directory=False)
    except OSError:
        return None
    try:
        status = os.fstat(fd)
    finally:
        os.close(fd)
    if not stat.S_ISREG(status.st_mode) or status.st_size != size:
        return None
    return status.st_mtime_ns // 1000


def blob_path(digest: str) -> str:
    """Where a layout keeps a blob, relative to the layout."""
    algorithm, _, encoded = digest.partition(":")
    return f"blobs/{algorithm}/{encoded}"


# --- the index graph --------------------------------------------------------------------------


@dataclass
class Closure:
    """The manifests reachable from index.json, and problems with the graph itself."""

    manifests: dict[str, ManifestResult | Reused] = field(default_factory=dict)  # in the order read
    problems: list[tuple[str, str]] = field(default_factory=list)  # (digest, message)


def close_over_indexes(
    roots: Sequence[str], read: Callable[[str], ManifestResult | Reused], max_depth: int = MAX_DEPTH
) -> Closure:
    """Follow index -> child edges from `roots` breadth first, calling `read` once per digest.

    Breadth first, so a manifest is met at its shortest distance from index.json and the depth
    bound only stops chains that really are that deep. Children past the bound are not read,
    and a cycle is reported, never followed twice (verified digests make cycles impossible, but
    `read` is the caller's).
    """
    closure = Closure()
    children: dict[str, list[str]] = {}
    queue = deque((digest, 1) for digest in dict.fromkeys(roots))
    seen = set(dict.fromkeys(roots))
    while queue:
        digest, depth = queue.popleft()
        parsed = closure.manifests[digest] = read(digest)
        listed = _children(parsed)
        children[digest] = listed
        new = [child for child in dict.fromkeys(listed) if child not in seen]
        if new and depth >= max_depth:
            message = f"indexes nest more than {max_depth} deep: {len(new)} children not followed"
            closure.problems.append((digest, message))
            continue
        seen.update(new)
        queue.extend((child, depth + 1) for child in new)
    for parent, child in _back_edges(list(closure.manifests), children):
        closure.problems.append((parent, f"a cycle: this index lists {child}, which leads back to it"))
    return closure


def _children(parsed: ManifestResult | Reused) -> list[str]:
    if isinstance(parsed, Reused):
        return list(parsed.children)
    if isinstance(parsed, Manifest):
        return [d.digest for d in parsed.descriptors if d.role == "manifest"]
    return []


def _back_edges(roots: list[str], children: dict[str, list[str]]) -> Iterator[tuple[str, str]]:
    """Edges that close a cycle, by depth-first search without recursion (graphs are data)."""
    on_path: set[str] = set()
    done: set[str] = set()
    for root in roots:
        if root in done:
            continue
        stack = [(root, iter(children.get(root, ())))]
        on_path.add(root)
        while stack:
            node, edges = stack[-1]
            child = next(edges, None)
            if child is None:
                stack.pop()
                on_path.discard(node)
                done.add(node)
            elif child in on_path:
                yield node, child
            elif child not in done and child in children:
                on_path.add(child)
                stack.append((child, iter(children[child])))


# --- reading the directory without following links --------------------------------------------


def read_file(location: str, path: str, limit: int) -> tuple[bytes, int]:
    """At most `limit` bytes of the regular file `path` in the layout, and its mtime (us).

    Raises OSError: FileNotFoundError when it is missing, ELOOP/ENOTDIR on a symbolic link.
    """
    fd = open_below(location, path, directory=False)
    try:
        status = os.fstat(fd)
        if not stat.S_ISREG(status.st_mode):
            raise OSError(errno.EINVAL, "not a regular file")
        return read_fd(fd, limit), status.st_mtime_ns // 1000
    finally:
        os.close(fd)


def walk(location: str, top: str, errors: list[CrawlError]) -> Iterator[tuple[str, os.stat_result]]:
    """Every non-directory below `top`, with its lstat; symbolic links are listed, never
    entered. A directory that cannot be listed becomes a read_error in `errors`."""
    stack = [top]
    while stack:
        directory = stack.pop()
        try:
            fd = open_below(location, directory, directory=True)
        except OSError as e:
            errors.append(CrawlError(None, directory, "read_error", f"cannot list: {_describe(e)}"))
            continue
        try:
            with os.scandir(fd) as entries:
                for entry in entries:
                    path = f"{directory}/{entry.name}"
                    try:
                        status = entry.stat(follow_symlinks=False)
                    except OSError as e:  # removed while we walked, most likely
                        errors.append(CrawlError(None, path, "read_error", f"cannot stat: {_describe(e)}"))
                        continue
                    if stat.S_ISDIR(status.st_mode):
                        stack.append(path)
                    else:
                        yield path, status
        finally:
            os.close(fd)


def open_below(location: str, path: str, directory: bool) -> int:
    """Open `path` below `location` one component at a time, refusing symbolic links at each
    step (O_NOFOLLOW alone only guards the last component)."""
    fd = os.open(location, os.O_RDONLY | _DIRECTORY)
    try:
        parts = path.split("/")
        for i, part in enumerate(parts):
            last = i == len(parts) - 1
            flags = os.O_RDONLY | _NOFOLLOW | (_DIRECTORY if directory or not last else _NONBLOCK)
            child = os.open(part, flags, dir_fd=fd)
            os.close(fd)
            fd = child
        return fd
    except BaseException:
        os.close(fd)
        raise


def _describe(error: OSError) -> str:
    if isinstance(error, FileNotFoundError):
        return "vanished during the crawl"
    if error.errno in (errno.ELOOP, errno.ENOTDIR):
        return "a symbolic link or not a directory on the way; not followed"
    if isinstance(error, PermissionError):
        return "permission denied"
    return error.strerror or str(error) or type(error).__name__
