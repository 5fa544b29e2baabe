"""apply-gc's target for AWS ECR (`ecr`): BatchDeleteImage, by digest for manifests and by tag
for tags, 100 image ids a call (ECR's limit), through the crawl's own boto3 client (botocore
retries throttling).

ECR deletes an image when its last tag goes. So a tag is deleted alone only while another
tag stays on its image; a tag that would leave the image untagged goes with its manifest
(WITH_MANIFEST) when the plan deletes the manifest and every live tag naming it, and is
skipped as `would_delete_image` otherwise. Deleting an image by digest takes its tags too, so
right before each call the images are described again (one DescribeImages per 100): a tag
no longer on its image is skipped (`tag_moved`), and so is an image that gained a tag the plan
does not delete (`tagged`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..sources.ecr import BATCH_SIZE, ECR_ERRORS, PAGE_SIZE, EcrApi, describe_error, error_code, image_path
from .tag_rules import kept_tags, with_manifest_or
from .target import DELETED, FAILED, GONE, SKIPPED, Action, Live, LiveCheckError, Outcome, Planned

WOULD_DELETE_IMAGE = "would_delete_image"
_GONE_CODES = ("ImageNotFound", "ImageNotFoundException", "RepositoryNotFoundException")


class EcrTarget:
    """Deletes from one ECR registry (an `EcrApi` opened as the crawl opens it)."""

    deletes_blobs = False  # ECR frees layers itself

    def __init__(self, api: EcrApi) -> None:
        self.api = api
        # (repository, digest) -> the tags a planned manifest deletion may take with it: every
        # live tag naming it at its refusal check, all of which the plan deletes.
        self._taken: dict[tuple[str, str], frozenset[str]] = {}

    def live_tag(self, repository: str, tag: str) -> str | None:
        details = self._describe(repository, [{"imageTag": tag}])
        return str(details[0]["imageDigest"]) if details else None

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        repository, digest = action.repository or "", action.digest or ""
        if action.kind == "delete_tag":
            others = live.tags_naming(repository, digest) - {action.tag or ""}
            if any(not planned.deletes_tag(repository, tag) for tag in others):
                return None  # a kept tag stays on the image
            detail = "ECR deletes an image with its last tag, and the plan keeps this manifest"
            return with_manifest_or(action, planned, live, WOULD_DELETE_IMAGE, detail)
        if action.kind != "delete_manifest":
            return Outcome(SKIPPED, "not_deletable", f"ECR cannot {action.kind}")
        kept = kept_tags(action, planned, live)
        if kept:
            return Outcome(SKIPPED, "tagged", f"kept tags name it: {', '.join(kept[:5])}")
        self._taken[(repository, digest)] = live.tags_naming(repository, digest)
        return None

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        outcomes: dict[int, Outcome] = {}
        by_repository: dict[str, list[Action]] = {}
        for action in actions:
            by_repository.setdefault(action.repository or "", []).append(action)
        for repository, group in by_repository.items():
            for start in range(0, len(group), BATCH_SIZE):
                outcomes.update(self._batch(repository, group[start : start + BATCH_SIZE]))
        return [outcomes[action.position] for action in actions]

    def close(self) -> None:
        self.api.client.close()

    # -- one call

    def _batch(self, repository: str, actions: list[Action]) -> dict[int, Outcome]:
        """Check up to 100 actions of one repository against the images now, then delete."""
        outcomes: dict[int, Outcome] = {}
        try:
            digests = list(dict.fromkeys(a.digest or "" for a in actions))
            images = {d["imageDigest"]: frozenset(d.get("imageTags") or ()) for d in
                      self._describe(repository, [{"imageDigest": digest} for digest in digests])}
        except LiveCheckError as e:
            return {a.position: Outcome(FAILED, e.reason, e.detail) for a in actions}
        sent: list[Action] = []
        removed: dict[str, set[str]] = {}  # digest -> tags this call removes
        for action in actions:
            digest, tag = action.digest or "", action.tag or ""
            tags = images.get(digest)
            if tags is None:
                outcomes[action.position] = Outcome(GONE)
            elif action.kind == "delete_manifest":
                added = sorted(tags - self._taken.get((repository, digest), frozenset()))
                if added:
                    outcomes[action.position] = Outcome(SKIPPED, "tagged", f"now tagged {', '.join(added[:5])}")
                else:
                    sent.append(action)
            elif tag not in tags:
                detail = f"{tag} no longer names {image_path(repository, digest)}"
                outcomes[action.position] = Outcome(SKIPPED, "tag_moved", detail)
            elif not tags - removed.setdefault(digest, set()) - {tag}:
                detail = "it is the image's last tag: ECR would delete the image"
                outcomes[action.position] = Outcome(SKIPPED, WOULD_DELETE_IMAGE, detail)
            else:
                removed[digest].add(tag)
                sent.append(action)
        if sent:
            outcomes.update(self._batch_delete(repository, sent))
        return outcomes

    def _batch_delete(self, repository: str, actions: list[Action]) -> dict[int, Outcome]:
        ids = [{"imageDigest": a.digest} if a.kind == "delete_manifest" else {"imageTag": a.tag} for a in actions]
        try:
            response = self.api.client.batch_delete_image(repositoryName=repository, imageIds=ids, **self.api.registry)
        except ECR_ERRORS as e:
            code = error_code(e)
            if code in _GONE_CODES:
                return {a.position: Outcome(GONE) for a in actions}
            failed = Outcome(FAILED, _reason(code), f"BatchDeleteImage: {describe_error(e)}")
            return {a.position: failed for a in actions}
        # ECR names each image it did not delete in `failures` (and lists the deleted ones in
        # `imageIds`, which moto leaves out for an untagged image): what no failure names went.
        failures = {_key(f.get("imageId") or {}): f for f in response.get("failures") or []}
        outcomes = {}
        for action, image_id in zip(actions, ids, strict=True):
            failure = failures.get(_key(image_id))
            if failure is None:
                outcomes[action.position] = Outcome(DELETED)
                continue
            code, why = failure.get("failureCode") or "", failure.get("failureReason") or ""
            gone = code in _GONE_CODES
            outcomes[action.position] = Outcome(GONE if gone else FAILED, "" if gone else _reason(code), why)
        return outcomes

    def _describe(self, repository: str, ids: list[dict[str, str]]) -> list[dict[str, Any]]:
        """DescribeImages for up to 100 image ids (`imageDigest`, `imageTags`), leaving out the
        ones not found."""
        try:
            try:
                response = self.api.client.describe_images(repositoryName=repository, imageIds=ids,
                                                           **self.api.registry)
                return list(response.get("imageDetails") or [])
            except ECR_ERRORS as e:
                if error_code(e) not in _GONE_CODES:
                    raise
                if len(ids) == 1:
                    return []
            # One image not found fails the whole call (a rerun, a race): list the repository.
            return self._listed(repository, {i.get("imageDigest") or i.get("imageTag") for i in ids})
        except ECR_ERRORS as e:
            if error_code(e) == "RepositoryNotFoundException":
                return []
            raise LiveCheckError(_reason(error_code(e)), f"DescribeImages: {describe_error(e)}") from None

    def _listed(self, repository: str, wanted: set[str | None]) -> list[dict[str, Any]]:
        """The images of `repository` named (by digest or tag) in `wanted`, from ListImages."""
        tags: dict[str, list[str]] = {}
        paginator = self.api.client.get_paginator("list_images")
        pages = paginator.paginate(repositoryName=repository, **self.api.registry,
                                   PaginationConfig={"PageSize": PAGE_SIZE})
        for page in pages:
            for image in page.get("imageIds") or []:
                listed = tags.setdefault(image["imageDigest"], [])
                if image.get("imageTag"):
                    listed.append(image["imageTag"])
        return [{"imageDigest": digest, "imageTags": names} for digest, names in tags.items()
                if digest in wanted or wanted & set(names)]


def _key(image_id: dict[str, Any]) -> tuple[str, Any]:
    """A tag deletion is answered by tag, a manifest deletion by digest."""
    if image_id.get("imageTag"):
        return "tag", image_id["imageTag"]
    return "digest", image_id.get("imageDigest")


def _reason(code: str) -> str:
    """An ECR error code as a snake_case reason: AccessDeniedException -> access_denied."""
    name = code.removesuffix("Exception") or "error"
    return "".join(f"_{c.lower()}" if c.isupper() else c for c in name).lstrip("_")
