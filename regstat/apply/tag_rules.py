"""When a tag may go only together with its manifest (registry APIs that cannot delete a tag
alone, ECR deleting an image with its last tag): the plan deletes the manifest, and every tag
naming it at the fresh crawl."""

from __future__ import annotations

from .target import SKIPPED, WITH_MANIFEST, Action, Live, Outcome, Planned


def goes_with_manifest(action: Action, planned: Planned, live: Live) -> bool:
    """Whether the plan deletes `action`'s manifest and every live tag naming it (`action`'s
    own tag included)."""
    repository, digest = action.repository or "", action.digest or ""
    if not planned.deletes_manifest(repository, digest):
        return False
    tags = live.tags_naming(repository, digest) | {action.tag or ""}
    return all(planned.deletes_tag(repository, tag) for tag in tags)


def with_manifest_or(action: Action, planned: Planned, live: Live, reason: str, detail: str) -> Outcome:
    """WITH_MANIFEST when the tag may go with its manifest, else SKIPPED; for `reason` either
    way (the reason it is skipped if its manifest stays)."""
    return Outcome(WITH_MANIFEST if goes_with_manifest(action, planned, live) else SKIPPED, reason, detail)


def kept_tags(action: Action, planned: Planned, live: Live) -> list[str]:
    """The live tags naming `action`'s manifest that the plan keeps: deleting the manifest by
    digest would take them too."""
    repository, digest = action.repository or "", action.digest or ""
    return sorted(t for t in live.tags_naming(repository, digest) if not planned.deletes_tag(repository, t))
