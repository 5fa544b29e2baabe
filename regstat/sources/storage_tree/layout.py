"""The distribution registry's storage layout: what each path in the tree means.

Under `docker/registry/v2/`:

    blobs/<alg>/<2 hex>/<hex>/data                              a blob
    repositories/<name>/_manifests/revisions/<alg>/<hex>/link    a manifest in <name>
    repositories/<name>/_manifests/tags/<tag>/current/link      the tag's digest
    repositories/<name>/_manifests/tags/<tag>/index/<alg>/<hex>/link   digests it has held
    repositories/<name>/_layers/<alg>/<hex>/link                 a blob linked into <name>
    repositories/<name>/_uploads/<uuid>/...                     an upload in progress

This module only classifies paths and checks link files; `crawl` decides what to read.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ...model import TAG, is_digest
from .storage import Entry

# Distribution's own grammar for path components of repository names (for tags: model.TAG).
_NAME_COMPONENT = re.compile(r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*")
_REPOSITORY_DIRS = ("_manifests", "_layers", "_uploads")
LINK_LIMIT = 1024  # a link holds one digest; anything longer is garbage
BAD_NAME = "name is not UTF-8; not read (the registry never writes one)"


@dataclass(slots=True)
class Link:
    """A link file: its path, size, age, and the digest its path says it holds (if any)."""

    path: str
    size: int
    modified_us: int
    expected: str | None = None


@dataclass(slots=True)
class Upload:
    uuid: str
    size: int | None = None  # unknown on S3, where the data is an unfinished multipart upload
    modified_us: int | None = None
    started_path: str | None = None


@dataclass
class RepositoryListing:
    """Everything the listing of one repository directory found, before links are read."""

    name: str
    revisions: list[Link] = field(default_factory=list)
    tags: dict[str, Link] = field(default_factory=dict)
    layers: list[Link] = field(default_factory=list)
    uploads: dict[str, Upload] = field(default_factory=dict)
    has_manifests: bool = False
    problems: list[tuple[str, str, str]] = field(default_factory=list)  # (path, kind, message)


@dataclass(slots=True)
class StoredBlob:
    digest: str
    size: int
    modified_us: int


def is_tag_history(directory: str) -> bool:
    """`_manifests/tags/<tag>/index`: the digests a tag has held, which a snapshot ignores."""
    parts = directory.rsplit("/", 4)
    return len(parts) == 5 and parts[4] == "index" and parts[2] == "tags" and parts[1] == "_manifests"


def leaf_file(directory: str) -> str | None:
    """The one file the registry keeps in each subdirectory of `directory`: `data` in the
    digest directories of a blob shard (`blobs/<alg>/<2 hex>`), `link` in those of a
    repository's revisions or layers (`.../_manifests/revisions/<alg>`, `.../_layers/<alg>`);
    None elsewhere. A walk's hint (Storage.walk): it may look at that file alone."""
    head = directory.rpartition("/")[0]
    if head.endswith("/_layers") or head.endswith("/_manifests/revisions"):
        return "link"
    if directory.startswith("blobs/") and directory.count("/") == 2:
        return "data"
    return None


def blob_data_path(digest: str) -> str:
    """Where the tree keeps a blob's bytes (manifests included)."""
    algorithm, _, hex_ = digest.partition(":")
    return f"blobs/{algorithm}/{hex_[:2]}/{hex_}/data"


def valid_repository_name(name: str) -> bool:
    return len(name) <= 255 and all(_NAME_COMPONENT.fullmatch(c) for c in name.split("/"))


def classify_blob(entry: Entry) -> StoredBlob | None:
    """The blob an entry under `blobs/` stores, or None when the path is not a blob's data."""
    parts = entry.path.split("/")
    if entry.symlink or len(parts) != 5 or parts[0] != "blobs" or parts[4] != "data":
        return None
    algorithm, shard, hex_ = parts[1:4]
    digest = f"{algorithm}:{hex_}"
    if not is_digest(digest) or hex_[:2] != shard:
        return None
    return StoredBlob(digest, entry.size, entry.modified_us)


def add_repository_entry(listings: dict[str, RepositoryListing], entry: Entry) -> str | None:
    """File `entry` (under `repositories/`) into its repository's listing.

    Returns None when filed, or a message when the path belongs to no repository.
    """
    parts = entry.path.split("/")[1:]
    cut = next((i for i, p in enumerate(parts) if p.startswith("_")), None)
    if cut is None or cut == 0:
        return BAD_NAME if entry.bad_name else "not inside a repository directory"
    name = "/".join(parts[:cut])
    listing = listings.get(name)
    if listing is None:
        listing = listings[name] = RepositoryListing(name)
    rest = parts[cut:]
    if entry.bad_name:
        listing.problems.append((entry.path, "invalid_name", BAD_NAME))
        return None
    if entry.symlink:
        listing.problems.append((entry.path, "symlink", "symbolic link in the storage tree; not followed"))
        return None
    problem = _file(listing, rest, entry)
    if problem:
        listing.problems.append((entry.path, "outside_layout", problem))
    return None


def _file(listing: RepositoryListing, rest: list[str], entry: Entry) -> str | None:
    kind = rest[0]
    if kind not in _REPOSITORY_DIRS:
        return f"{kind} is not a repository directory (expected one of {', '.join(_REPOSITORY_DIRS)})"
    if kind == "_uploads":
        if len(rest) < 3:
            return "not inside an upload directory"
        upload = listing.uploads.setdefault(rest[1], Upload(rest[1]))
        if upload.modified_us is None or entry.modified_us > upload.modified_us:
            upload.modified_us = entry.modified_us
        if rest[2:] == ["data"]:
            upload.size = entry.size
        elif rest[2:] == ["startedat"]:
            upload.started_path = entry.path
        return None
    if kind == "_layers":
        if len(rest) == 4 and rest[3] == "link":
            listing.layers.append(Link(entry.path, entry.size, entry.modified_us, f"{rest[1]}:{rest[2]}"))
            return None
        return "not a layer link"
    listing.has_manifests = True
    if len(rest) == 5 and rest[1] == "revisions" and rest[4] == "link":
        listing.revisions.append(Link(entry.path, entry.size, entry.modified_us, f"{rest[2]}:{rest[3]}"))
        return None
    if len(rest) >= 4 and rest[1] == "tags":
        tag = rest[2]
        if rest[3:] == ["current", "link"]:
            if not TAG.fullmatch(tag):
                return f"invalid tag name {tag!r}"
            listing.tags[tag] = Link(entry.path, entry.size, entry.modified_us)
            return None
        if len(rest) == 7 and rest[3] == "index" and rest[6] == "link":
            return None  # tag history: not needed for the snapshot
    return "not part of the manifest store layout"


def check_link_size(link: Link) -> tuple[str | None, str | None, str | None]:
    """Check a link whose path names its digest by its listed size alone (no read).

    Catches empty and truncated links, and paths that name no digest; `check_link` on the
    content catches the rest.
    """
    assert link.expected is not None
    if not is_digest(link.expected):
        return None, "bad_link", f"the link's path names {link.expected!r}, not a digest"
    if link.size != len(link.expected):
        return None, "bad_link", f"link file is {link.size} bytes; a link to {link.expected} is {len(link.expected)}"
    return link.expected, None, None


def check_link(link: Link, content: bytes) -> tuple[str | None, str | None, str | None]:
    """Return (digest, None, None) for a good link file, else (None, error kind, message)."""
    try:
        text = content.decode("ascii")
    except UnicodeDecodeError:
        return None, "bad_link", "link file is not ASCII"
    if not text:
        return None, "bad_link", "link file is empty"
    if not is_digest(text):
        return None, "bad_link", f"link file does not hold a digest: {text[:80]!r}"
    if link.expected is not None and text != link.expected:
        return None, "link_mismatch", f"link holds {text} but its path names {link.expected}"
    return text, None, None
