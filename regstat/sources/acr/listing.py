"""ACR's own listings of a repository (`/acr/v1/`): its attributes, every manifest, every tag.

`GET /acr/v1/{name}` gives the repository's `changeableAttributes`; `_manifests` lists every
manifest, tagged or not, and `_tags` every tag, each with `createdTime`, `lastUpdateTime` and
`changeableAttributes`, in pages (`n`, `last`, `Link`). An item is locked when its
`deleteEnabled` or `writeEnabled` is false, or its repository's is: ACR then refuses to delete
or overwrite it. Times carry seven fractional digits (100 ns); they are kept to the microsecond.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

from ...errors import ApiProblem, CrawlError
from ...model import TAG, is_digest
from ..base import JobResult
from ..registry_api.client import RegistryClient

_TIME = re.compile(r"(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(?:\.(\d{1,9}))?(Z|[+-]\d\d:\d\d)", re.IGNORECASE)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


def metadata_scope(name: str) -> str:
    """One token for a repository's listings (`metadata_read`) and manifests (`pull`)."""
    return f"repository:{name}:metadata_read,pull"


def acr_path(name: str, kind: str = "") -> str:
    """`/acr/v1/{name}[/{kind}]`, the name escaped whole (`/` too), as ACR's clients send it."""
    return f"/acr/v1/{quote(name, safe='')}" + (f"/{kind}" if kind else "")


def micros(text: object) -> int | None:
    """An ACR time (`2021-07-01T17:08:28.7296443Z`) as microseconds since the epoch, UTC;
    digits past the sixth are dropped (the time is not rounded into the next microsecond).
    None when absent or not such a time."""
    match = _TIME.fullmatch(text) if isinstance(text, str) else None
    if match is None:
        return None
    try:
        whole = datetime.fromisoformat(match[1] + match[3].upper().replace("Z", "+00:00"))
    except ValueError:
        return None
    fraction = int((match[2] or "")[:6].ljust(6, "0"))
    return (whole - _EPOCH) // timedelta(microseconds=1) + fraction


def locked(attributes: object) -> bool:
    """`changeableAttributes` that forbid deleting or overwriting (absent keys allow both)."""
    if not isinstance(attributes, dict):
        return False
    return attributes.get("deleteEnabled") is False or attributes.get("writeEnabled") is False


@dataclass(frozen=True, slots=True)
class ListedManifest:
    """A manifest as `_manifests` lists it."""

    digest: str
    pushed_at_us: int | None  # createdTime
    updated_at_us: int | None  # lastUpdateTime
    locked: bool
    tags: tuple[ListedTag, ...] = ()  # from _tags


@dataclass(frozen=True, slots=True)
class ListedTag:
    """A tag as `_tags` lists it."""

    name: str
    digest: str
    updated_at_us: int | None  # lastUpdateTime
    locked: bool


@dataclass
class Listing:
    """A repository as ACR lists it; `complete` when every page was read."""

    manifests: dict[str, ListedManifest] = field(default_factory=dict)
    tags: dict[str, ListedTag] = field(default_factory=dict)
    repository_locked: bool = False
    complete: bool = True


def read_listing(client: RegistryClient, name: str, result: JobResult) -> Listing:
    """Read a repository's attributes, manifests and tags; what fails goes to `result.errors`
    and leaves the listing incomplete."""
    listing = Listing()
    scope = metadata_scope(name)
    try:
        listing.repository_locked = _repository_locked(client, name, scope)
        for entry in _items(client, acr_path(name, "_manifests"), scope, "manifests"):
            _add_manifest(name, entry, listing, result)
        for entry in _items(client, acr_path(name, "_tags"), scope, "tags"):
            _add_tag(name, entry, listing, result)
    except ApiProblem as p:
        listing.complete = False
        result.errors.append(CrawlError(name, p.path, p.kind, client.scrub(p.message)))
    return listing


def _repository_locked(client: RegistryClient, name: str, scope: str) -> bool:
    path = acr_path(name)
    response = client.call("GET", path, scope, path, accept="application/json")
    if response.status != 200:
        raise client.problem(response, path)
    try:
        document = json.loads(response.body)
    except ValueError:
        document = None
    if not isinstance(document, dict):
        raise ApiProblem(path, "invalid_response", "the repository's attributes are not a JSON object")
    return locked(document.get("changeableAttributes"))


def _items(client: RegistryClient, path: str, scope: str, key: str) -> Any:
    for page in client.pages(path, scope):
        entries = page.get(key) or []
        if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
            raise ApiProblem(path, "invalid_response", f"`{key}` is not a list of objects")
        yield from entries


def _add_manifest(name: str, entry: dict, listing: Listing, result: JobResult) -> None:
    digest = entry.get("digest")
    if not isinstance(digest, str) or not is_digest(digest):
        message = f"_manifests lists a malformed digest {str(digest)[:80]!r}"
        result.errors.append(CrawlError(name, acr_path(name, "_manifests"), "invalid_response", message))
        listing.complete = False
        return
    listing.manifests[digest] = ListedManifest(
        digest,
        micros(entry.get("createdTime")),
        micros(entry.get("lastUpdateTime")),
        listing.repository_locked or locked(entry.get("changeableAttributes")),
    )


def _add_tag(name: str, entry: dict, listing: Listing, result: JobResult) -> None:
    tag, digest = entry.get("name"), entry.get("digest")
    path = acr_path(name, "_tags")
    if not isinstance(tag, str) or not TAG.fullmatch(tag):  # never put it in a URL, nor trust it
        result.errors.append(CrawlError(name, path, "invalid_name", f"not a valid tag name: {str(tag)[:140]!r}"))
        listing.complete = False
        return
    if not isinstance(digest, str) or not is_digest(digest):
        message = f"tag {tag}: a malformed digest {str(digest)[:80]!r}"
        result.errors.append(CrawlError(name, path, "invalid_response", message))
        listing.complete = False
        return
    listing.tags[tag] = ListedTag(
        tag,
        digest,
        micros(entry.get("lastUpdateTime")),
        listing.repository_locked or locked(entry.get("changeableAttributes")),
    )
