"""What apply-gc needs of the registry a plan's snapshot was crawled from: the live answers
its last checks read, and the deletions themselves.

The runner (regstat.apply.runner) decides what may go from a fresh crawl of the source and
the plan; a Target answers the questions only the live registry can, right before each
action, and deletes. One Target per source kind (regstat.apply.targets.OPENERS).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol

# What became of an action.
DELETED = "deleted"  # this run deleted it
GONE = "gone"  # already absent (404, file missing): counts as done
SKIPPED = "skipped"  # its premise no longer holds, or the source cannot do it safely: never an error
FAILED = "failed"  # the registry refused or kept failing (403, 5xx after retries): exit 3
WOULD_DELETE = "would_delete"  # a dry run's verdict: verified, not deleted
# Only from `Target.refusal`, for a tag: this source deletes it only together with its
# manifest (which the plan deletes too, as it does every live tag naming it). The tag is not
# deleted on its own and does not hold its manifest back; it ends as its manifest does
# (deleted or gone with it; skipped, with the reason tag_delete_unsupported, otherwise).
WITH_MANIFEST = "with_manifest"


class LiveCheckError(Exception):
    """A live check (`Target.live_tag`, a refusal's own look at the registry) got no usable
    answer, after the source's retries: the action is FAILED with `reason`, never decided on
    a guess."""

    def __init__(self, reason: str, detail: str) -> None:
        super().__init__(detail)
        self.reason = reason
        self.detail = detail


@dataclass(frozen=True)
class Action:
    """One action of the plan, as its actions file has it (`position` from 0, in plan order)."""

    position: int
    kind: str  # delete_tag, delete_manifest, delete_blob or delete_upload
    repository: str | None
    tag: str | None
    digest: str | None
    uuid: str | None
    size: int


@dataclass(frozen=True)
class Outcome:
    """What became of one action: `status` one of the constants above; `reason` a short
    snake_case word for skipped and failed ones (tag_moved, locked, tag_delete_unsupported,
    would_delete_image, http_403, ...); `bytes_freed` what left the registry's storage where
    the target can measure it (storage trees, OCI layouts), else 0."""

    status: str
    reason: str = ""
    detail: str = ""
    bytes_freed: int = 0


class Planned(Protocol):
    """What the plan deletes, for a target's own rules (a tag deleted only with its manifest)."""

    def deletes_tag(self, repository: str, tag: str) -> bool: ...

    def deletes_manifest(self, repository: str, digest: str) -> bool: ...


class Live(Protocol):
    """The registry as the runner's fresh crawl saw it."""

    def tags_naming(self, repository: str, digest: str) -> frozenset[str]:
        """The tags that named `digest` in `repository` at the fresh crawl."""
        ...


class Target(Protocol):
    """A registry apply-gc deletes from."""

    # Whether blobs are this source's to delete (storage trees and OCI layouts); registries
    # behind an API free their blobs themselves, and their plans hold no delete_blob.
    deletes_blobs: bool

    def live_tag(self, repository: str, tag: str) -> str | None:
        """The digest `tag` names now (asked right before deleting it), None if it is gone;
        LiveCheckError when the registry does not say."""
        ...

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        """A SKIPPED outcome when this source cannot run `action` safely (a registry that
        cannot delete a tag alone, ECR deleting an image with its last tag, a locked item);
        WITH_MANIFEST for a tag that goes only with its manifest (its `reason` the one to
        skip it for if the manifest stays); GONE when a look of its own finds it absent;
        FAILED when that look got no answer; None when it can."""
        ...

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        """Delete `actions`, all of one kind and already verified; one Outcome each, in order.
        A target already absent is GONE, never FAILED."""
        ...

    def close(self) -> None: ...
