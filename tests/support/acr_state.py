"""What the ACR stand-in knows beyond the registry's storage: times, locks, deleted tags.

ACR keeps per manifest and per tag a created and a last-update time and four
``changeableAttributes`` (deleteEnabled, writeEnabled, readEnabled, listEnabled); the
registry's storage has neither, so they live here, in memory. Times default to the storage
tree's link mtimes (see ``acr_metadata``); a test overrides them with :meth:`AcrState.set_times`.

distribution 2.8 cannot delete a tag alone (only a manifest with all its tags), so a tag deleted
through ``DELETE /acr/v1/{name}/_tags/{tag}`` is hidden instead: the overlay remembers the
digest it pointed at, and a tag pushed again (to another digest) shows up again. Nor can it
delete a repository: one deleted through the API loses its manifests and is remembered here.

Times are integers: nanoseconds since the epoch (ACR writes 100 ns: 7 fractional digits).
Nothing here depends on pytest.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

ATTRIBUTES = ("deleteEnabled", "writeEnabled", "readEnabled", "listEnabled")


def acr_time(ns: int) -> str:
    """``2018-09-06T06:17:20.9983915Z``: ACR's times, 7 fractional digits and Z."""
    seconds, rest = divmod(ns, 1_000_000_000)
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{rest // 100:07d}Z"


def to_ns(when: datetime) -> int:
    """A datetime (naive ones are UTC) as nanoseconds since the epoch."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    delta = when - datetime(1970, 1, 1, tzinfo=UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


@dataclass
class Times:
    created: int | None = None
    updated: int | None = None


@dataclass
class AcrState:
    """Locks, times and deleted tags, keyed by repository and digest or tag; thread-safe."""

    manifest_attributes: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)
    tag_attributes: dict[tuple[str, str], dict[str, bool]] = field(default_factory=dict)
    repository_attributes: dict[str, dict[str, bool]] = field(default_factory=dict)
    manifest_times: dict[tuple[str, str], Times] = field(default_factory=dict)
    tag_times: dict[tuple[str, str], Times] = field(default_factory=dict)
    deleted_tags: dict[tuple[str, str], str] = field(default_factory=dict)  # -> the digest it named
    deleted_repositories: set[str] = field(default_factory=set)
    _lock: threading.RLock = field(default_factory=threading.RLock, repr=False)

    # -- changeableAttributes

    def _table(self, repository: str, tag: str | None, digest: str | None) -> dict[str, bool]:
        if tag is not None and digest is not None:
            raise ValueError("give a tag or a digest, not both")
        if tag is not None:
            return self.tag_attributes.setdefault((repository, tag), {})
        if digest is not None:
            return self.manifest_attributes.setdefault((repository, digest), {})
        return self.repository_attributes.setdefault(repository, {})

    def attributes(self, repository: str, *, tag: str | None = None, digest: str | None = None) -> dict[str, bool]:
        """The four changeableAttributes (all true unless changed)."""
        with self._lock:
            if tag is not None:
                stored = self.tag_attributes.get((repository, tag), {})
            elif digest is not None:
                stored = self.manifest_attributes.get((repository, digest), {})
            else:
                stored = self.repository_attributes.get(repository, {})
            return {name: stored.get(name, True) for name in ATTRIBUTES}

    def update(self, repository: str, changes: dict[str, bool], *, tag: str | None = None,
               digest: str | None = None) -> None:
        """PATCH semantics: only the attributes given change."""
        unknown = set(changes) - set(ATTRIBUTES)
        if unknown or not all(isinstance(v, bool) for v in changes.values()):
            raise ValueError(f"not changeable attributes: {changes}")
        with self._lock:
            self._table(repository, tag, digest).update(changes)

    def deletable(self, repository: str, *, tag: str | None = None, digest: str | None = None) -> bool:
        """ACR refuses to delete what is delete- or write-locked, or sits in such a repository."""
        with self._lock:
            own = self.attributes(repository, tag=tag, digest=digest)
            repo = self.attributes(repository)
            return all((own["deleteEnabled"], own["writeEnabled"], repo["deleteEnabled"], repo["writeEnabled"]))

    # -- times

    def set_times(self, repository: str, *, tag: str | None = None, digest: str | None = None,
                  created: int | None = None, updated: int | None = None) -> None:
        with self._lock:
            if tag is not None:
                entry = self.tag_times.setdefault((repository, tag), Times())
            elif digest is not None:
                entry = self.manifest_times.setdefault((repository, digest), Times())
            else:
                raise ValueError("set_times needs a tag or a digest")
            if created is not None:
                entry.created = created
            if updated is not None:
                entry.updated = updated

    def times(self, repository: str, *, tag: str | None = None, digest: str | None = None) -> Times:
        with self._lock:
            table, key = (self.tag_times, (repository, tag)) if tag is not None else (
                self.manifest_times, (repository, digest or ""))
            found = table.get(key, Times())  # type: ignore[arg-type]
            return Times(found.created, found.updated)

    # -- deleted tags

    def delete_tag(self, repository: str, tag: str, digest: str) -> None:
        with self._lock:
            self.deleted_tags[(repository, tag)] = digest
            self.tag_attributes.pop((repository, tag), None)
            self.tag_times.pop((repository, tag), None)

    def tag_hidden(self, repository: str, tag: str, digest: str) -> bool:
        """Whether the tag (now naming ``digest`` in storage) was deleted through the ACR API."""
        with self._lock:
            return self.deleted_tags.get((repository, tag)) == digest

    def forget_manifest(self, repository: str, digest: str, tags: list[str]) -> None:
        """A manifest deleted, and with it ``tags`` (distribution drops a manifest's tags): their
        state goes, and so does what the overlay kept of tags that named it."""
        with self._lock:
            self.manifest_attributes.pop((repository, digest), None)
            self.manifest_times.pop((repository, digest), None)
            for tag in tags:
                self.tag_attributes.pop((repository, tag), None)
                self.tag_times.pop((repository, tag), None)
            for key, named in list(self.deleted_tags.items()):
                if key[0] == repository and named == digest:
                    del self.deleted_tags[key]

    # -- deleted repositories (their directories stay in storage)

    def delete_repository(self, repository: str) -> None:
        with self._lock:
            self.deleted_repositories.add(repository)
            self.repository_attributes.pop(repository, None)
            for table in (self.manifest_attributes, self.tag_attributes, self.manifest_times, self.tag_times,
                          self.deleted_tags):
                for key in [k for k in table if k[0] == repository]:
                    del table[key]

    def repository_deleted(self, repository: str) -> bool:
        with self._lock:
            return repository in self.deleted_repositories
