"""What apply-gc's runner hands a Target, for tests of a Target alone: the plan's deletions
(:class:`PlannedSet`, a ``Planned``), the tags a fresh crawl saw (:class:`LiveTags`, a ``Live``)
and actions (:func:`tag_action`, :func:`manifest_action`, :func:`blob_action`).

Nothing here depends on pytest.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

from regstat.apply.target import Action

_positions = itertools.count()


@dataclass
class PlannedSet:
    """The plan's tag and manifest deletions, as (repository, tag) and (repository, digest)."""

    tags: set[tuple[str, str]] = field(default_factory=set)
    manifests: set[tuple[str, str]] = field(default_factory=set)

    def deletes_tag(self, repository: str, tag: str) -> bool:
        return (repository, tag) in self.tags

    def deletes_manifest(self, repository: str, digest: str) -> bool:
        return (repository, digest) in self.manifests

    def add(self, actions: Iterable[Action]) -> PlannedSet:
        for a in actions:
            if a.kind == "delete_tag":
                self.tags.add((a.repository or "", a.tag or ""))
            elif a.kind == "delete_manifest":
                self.manifests.add((a.repository or "", a.digest or ""))
        return self


@dataclass
class LiveTags:
    """The tags naming each (repository, digest) at the fresh crawl."""

    named: dict[tuple[str, str], set[str]] = field(default_factory=dict)

    def tag(self, repository: str, tag: str, digest: str) -> LiveTags:
        self.named.setdefault((repository, digest), set()).add(tag)
        return self

    def tags_naming(self, repository: str, digest: str) -> frozenset[str]:
        return frozenset(self.named.get((repository, digest), ()))


def tag_action(repository: str, tag: str, digest: str) -> Action:
    return Action(next(_positions), "delete_tag", repository, tag, digest, None, 0)


def manifest_action(repository: str, digest: str, size: int = 0) -> Action:
    return Action(next(_positions), "delete_manifest", repository, None, digest, None, size)


def blob_action(digest: str, size: int = 0) -> Action:
    return Action(next(_positions), "delete_blob", None, None, digest, None, size)
