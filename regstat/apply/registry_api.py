"""apply-gc's target for a registry read through the distribution API (`distribution-api`).

- A manifest goes with `DELETE /v2/<name>/manifests/<digest>`, which takes every tag naming
  it: so never while a tag the plan keeps names it (`tagged`), nor while a tag of the cosign
  tag schema (`sha256-<hex>`, `sha256-<hex>.sig`, `.att`, …) that the plan keeps names its
  digest (`referenced`): distribution 2.8 has no referrers API, and such a tag is the only
  sign that something signs or attests the manifest. Those tags are listed live, once per
  repository.
- A tag alone goes with `DELETE /v2/<name>/manifests/<tag>` where the registry supports it
  (OCI distribution 1.1, distribution 3). Whether it does is asked once, harmlessly: a DELETE
  of a tag name that does not exist answers 404 where tags can be deleted, and 400
  (DIGEST_INVALID: 2.8 reads every reference as a digest), 405 or 501 where they cannot.
  Where they cannot, a tag goes only with its manifest, when the plan deletes the manifest
  and every live tag naming it (WITH_MANIFEST); any other tag is skipped as
  `tag_delete_unsupported`. A tag DELETE refused that way is never tried again by digest.

Requests go through the crawl's own client (authentication, retries on 429 and 5xx honouring
Retry-After); a DELETE repeated after a lost answer finds the manifest gone (404), which is
GONE, so retrying is safe. The registry must allow deletion
(`REGISTRY_STORAGE_DELETE_ENABLED=true` for distribution): otherwise every DELETE answers 405
UNSUPPORTED, recorded as `delete_disabled`.
"""

from __future__ import annotations

import secrets
from collections.abc import Callable, Sequence
from urllib.parse import quote

from ..errors import ApiProblem
from ..sources.registry_api.client import (
    RegistryClient,
    body_digest,
    header_digest,
    manifest_path,
    repository_scope,
    stored_form,
)
from ..sources.registry_api.http import Response
from .tag_rules import kept_tags, with_manifest_or
from .target import DELETED, FAILED, GONE, SKIPPED, Action, Live, LiveCheckError, Outcome, Planned

TAG_DELETE_UNSUPPORTED = "tag_delete_unsupported"
_REFUSES_TAGS = (400, 405, 501)  # the spec's answers where tag deletion is not offered, and 2.8's
_NO_HEAD = (400, 405, 501)


def delete_scope(name: str) -> str:
    return f"repository:{name}:delete"


def send_delete(
    client: RegistryClient, repository: str, path: str, refused: Callable[[Response, ApiProblem], Outcome],
) -> Outcome:
    """DELETE `path`: deleted on 200 or 202, gone on 404 (also after a lost answer, so retrying is
    safe), failed when no answer came; any other answer is for `refused` to name."""
    try:
        response = client.call("DELETE", path, delete_scope(repository), path)
    except ApiProblem as p:
        return Outcome(FAILED, p.kind, p.message)
    if response.status in (200, 202):
        return Outcome(DELETED)
    if response.status == 404:
        return Outcome(GONE)
    return refused(response, client.problem(response, path))


def referrer_tag_of(tag: str, digest: str) -> bool:
    """Whether `tag` names `digest` by the tag schema: `sha256-<hex>` or `sha256-<hex>.<suffix>`."""
    prefix = digest.replace(":", "-", 1)
    return tag == prefix or tag.startswith(prefix + ".")


class RegistryApiTarget:
    """Deletes through one registry's API (a `RegistryClient` opened as the crawl opens it)."""

    deletes_blobs = False  # the registry's own garbage collector frees them

    def __init__(self, client: RegistryClient) -> None:
        self.client = client
        self.tag_delete: bool | None = None  # whether tags can be deleted alone; None: not asked yet
        self.tag_delete_answer = ""  # what the registry answered when asked
        self._tags: dict[str, list[str]] = {}  # repository -> its live tags, listed once

    # -- live checks

    def live_tag(self, repository: str, tag: str) -> str | None:
        path = manifest_path(repository, tag)
        if self.client.head_works:
            head = self._manifest("HEAD", repository, tag)
            if head.status == 404:
                return None
            if head.status == 200 and (digest := header_digest(head)) is not None:
                return digest
            if head.status in _NO_HEAD:
                self.client.head_works = False
            elif head.status != 200:
                raise self._unanswered(head, path, f"tag {tag}")
        response = self._manifest("GET", repository, tag)  # no digest from HEAD: hash the body
        if response.status == 404:
            return None
        if response.status != 200 or (response.truncated and header_digest(response) is None):
            raise self._unanswered(response, path, f"tag {tag}")
        named = header_digest(response)
        return named if response.truncated else body_digest(stored_form(response.body), named)

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        try:
            return self._refusal(action, planned, live)
        except LiveCheckError as e:
            return Outcome(FAILED, e.reason, e.detail)

    def _refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        repository = action.repository or ""
        if action.kind == "delete_tag":
            if self._tags_deletable(repository):
                return None
            detail = f"the registry cannot delete a tag alone ({self.tag_delete_answer})"
            return with_manifest_or(action, planned, live, TAG_DELETE_UNSUPPORTED, detail)
        if action.kind != "delete_manifest":
            return Outcome(SKIPPED, "not_deletable", f"the registry API cannot {action.kind}")
        digest = action.digest or ""
        if self._manifest("HEAD", repository, digest).status == 404:
            return Outcome(GONE)  # (an untagged manifest is invisible to the fresh crawl: asked here)
        kept = kept_tags(action, planned, live)
        if kept:
            return Outcome(SKIPPED, "tagged", f"kept tags name it: {', '.join(kept[:5])}")
        referrers = sorted(t for t in self._live_tags(repository) if referrer_tag_of(t, digest)
                           and not planned.deletes_tag(repository, t))
        if referrers:
            return Outcome(SKIPPED, "referenced", f"the tag {referrers[0]} (a signature or attestation) names it")
        return None

    # -- deleting

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        return [self._delete(action) for action in actions]

    def close(self) -> None:
        pass  # connections are per thread, closed with it

    def _delete(self, action: Action) -> Outcome:
        repository = action.repository or ""
        tag_alone = action.kind == "delete_tag"
        reference = (action.tag if tag_alone else action.digest) or ""

        def refused(response: Response, problem: ApiProblem) -> Outcome:
            if tag_alone and response.status in _REFUSES_TAGS:
                self.tag_delete, self.tag_delete_answer = False, _answer(response, problem)
                return Outcome(SKIPPED, TAG_DELETE_UNSUPPORTED, f"the registry refused: {problem.message}")
            if problem.code == "UNSUPPORTED" or response.status == 405:
                return Outcome(FAILED, "delete_disabled", f"the registry does not allow deletion: {problem.message}")
            return Outcome(FAILED, f"http_{response.status}", problem.message)

        return send_delete(self.client, repository, manifest_path(repository, reference), refused)

    def _tags_deletable(self, repository: str) -> bool:
        """Ask once (per target) whether tags can be deleted alone: DELETE a tag that is not there."""
        if self.tag_delete is None:
            tag = "regstat-probe-" + secrets.token_hex(8)
            if self.live_tag(repository, tag) is not None:  # 2^-64; but never delete a real tag
                raise LiveCheckError("probe_failed", f"the probe tag {tag} exists in {repository}")
            path = manifest_path(repository, tag)
            try:
                response = self.client.call("DELETE", path, delete_scope(repository), path)
            except ApiProblem as p:
                raise LiveCheckError(p.kind, p.message) from None
            problem = self.client.problem(response, path)
            if response.status in (401, 403):  # no right to delete: says nothing of tags
                raise LiveCheckError(f"http_{response.status}", problem.message)
            self.tag_delete = response.status in (202, 404)
            self.tag_delete_answer = _answer(response, problem)
        return self.tag_delete

    def _live_tags(self, repository: str) -> list[str]:
        if repository not in self._tags:
            path = f"/v2/{quote(repository, safe='/')}/tags/list"
            tags: list[str] = []
            try:
                for page in self.client.pages(path, repository_scope(repository)):
                    listed = page.get("tags") or []
                    tags += [t for t in listed if isinstance(t, str)] if isinstance(listed, list) else []
            except ApiProblem as p:
                if p.status != 404:  # NAME_UNKNOWN: no tags left at all
                    raise LiveCheckError(p.kind, p.message) from None
            self._tags[repository] = tags
        return self._tags[repository]

    def _manifest(self, method: str, repository: str, reference: str) -> Response:
        try:
            return self.client.manifest(method, repository, reference)
        except ApiProblem as p:
            raise LiveCheckError(p.kind, p.message) from None

    def _unanswered(self, response: Response, path: str, what: str) -> LiveCheckError:
        problem = self.client.problem(response, path, what)
        return LiveCheckError(f"http_{response.status}", problem.message)


def _answer(response: Response, problem: ApiProblem) -> str:
    return f"{response.status}{f' {problem.code}' if problem.code else ''}"
