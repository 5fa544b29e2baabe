"""apply-gc's target for Azure Container Registry (`acr`), through ACR's data-plane API.

- A tag goes alone with `DELETE /acr/v1/{name}/_tags/{tag}` (its manifest stays).
- A manifest goes with `DELETE /v2/{name}/manifests/{digest}`, which takes its tags and its
  referrers (ACR deletes what names it as `subject`): so never while a live tag the plan keeps
  names it (`tagged`). Plans list referrers before their subject; one already gone with its
  subject is `gone`.
- Locks are honoured, never changed: right before deciding, the item's own
  `changeableAttributes` (`/acr/v1/{name}/_tags/{tag}`, `/acr/v1/{name}/_manifests/{digest}`)
  and its repository's (`/acr/v1/{name}`) are read live; `deleteEnabled` or `writeEnabled`
  false is `locked` (skipped). ACR answers a DELETE of a locked item 405, which is `locked`
  too, never a failure.
- ACR frees blobs itself: no blob is ever this target's to delete.

Requests go through the ACR source's own client (its credentials, token flow renewed on 401,
retries on 429 and 5xx honouring Retry-After). Reads use the crawl's scope
(`repository:NAME:metadata_read,pull`); deletions `repository:NAME:delete`, which ACR asks of
both a tag's and a manifest's deletion. A DELETE repeated after a lost answer finds a 404:
`gone`, so retrying is safe.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from urllib.parse import quote

from ..errors import ApiProblem
from ..sources.acr.listing import acr_path, locked, metadata_scope
from ..sources.registry_api.client import RegistryClient, manifest_path
from ..sources.registry_api.http import Response
from .registry_api import send_delete
from .tag_rules import kept_tags
from .target import FAILED, GONE, SKIPPED, Action, Live, LiveCheckError, Outcome, Planned

LOCKED = "locked"


class AcrTarget:
    """Deletes through one ACR's data-plane API (a `RegistryClient` opened as `crawl acr://` opens it)."""

    deletes_blobs = False  # ACR frees layers itself

    def __init__(self, client: RegistryClient) -> None:
        self.client = client

    # -- live checks

    def live_tag(self, repository: str, tag: str) -> str | None:
        document = self._attributes(repository, "_tags", tag)
        if document is None:
            return None
        digest = _entry(document, "tag").get("digest")
        if not isinstance(digest, str):
            raise LiveCheckError("invalid_response", f"{repository}:{tag}: ACR names no digest for the tag")
        return digest

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        try:
            return self._refusal(action, planned, live)
        except LiveCheckError as e:
            return Outcome(FAILED, e.reason, e.detail)

    def _refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        repository = action.repository or ""
        if action.kind == "delete_tag":
            kind, reference, key = "_tags", action.tag or "", "tag"
        elif action.kind == "delete_manifest":
            kind, reference, key = "_manifests", action.digest or "", "manifest"
        else:
            return Outcome(SKIPPED, "not_deletable", f"ACR frees blobs itself; regstat cannot {action.kind}")
        document = self._attributes(repository, kind, reference)
        if document is None:
            return Outcome(GONE)
        item = _entry(document, key)
        if locked(item.get("changeableAttributes")):
            return Outcome(SKIPPED, LOCKED, f"{key} {reference} is locked (deleteEnabled or writeEnabled false)")
        repository_document = self._attributes(repository)
        if repository_document is None:
            return Outcome(GONE)
        if locked(repository_document.get("changeableAttributes")):
            return Outcome(SKIPPED, LOCKED, f"the repository {repository} is locked")
        if action.kind == "delete_manifest":
            # ACR's DELETE takes every tag naming the manifest: the tags named now, not only at the crawl.
            tags = item.get("tags") or []
            now = [t for t in tags if isinstance(t, str) and not planned.deletes_tag(repository, t)]
            kept = sorted(set(now) | set(kept_tags(action, planned, live)))
            if kept:
                return Outcome(SKIPPED, "tagged", f"kept tags name it: {', '.join(kept[:5])}")
        return None

    # -- deleting

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        return [self._delete(action) for action in actions]

    def close(self) -> None:
        pass  # connections are per thread, closed with it

    def _delete(self, action: Action) -> Outcome:
        repository = action.repository or ""
        if action.kind == "delete_tag":
            path = acr_path(repository, "_tags") + "/" + quote(action.tag or "", safe="")
        else:
            path = manifest_path(repository, action.digest or "")
        return send_delete(self.client, repository, path, _refused)

    def _attributes(self, repository: str, kind: str = "", reference: str = "") -> dict | None:
        """`GET /acr/v1/{name}[/{kind}/{reference}]` as JSON; None on 404 (gone)."""
        path = acr_path(repository, kind) + (f"/{quote(reference, safe=':')}" if reference else "")
        try:
            response = self.client.call("GET", path, metadata_scope(repository), path, accept="application/json")
        except ApiProblem as p:
            raise LiveCheckError(p.kind, p.message) from None
        if response.status == 404:
            return None
        if response.status != 200:
            problem = self.client.problem(response, path)
            raise LiveCheckError(f"http_{response.status}", problem.message)
        try:
            document = json.loads(response.body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            raise LiveCheckError("invalid_response", f"{path}: the answer is not a JSON object")
        return document


def _refused(response: Response, problem: ApiProblem) -> Outcome:
    if response.status == 405:  # ACR's answer for a locked item (acr purge skips it too)
        return Outcome(SKIPPED, LOCKED, f"ACR refused the deletion: {problem.message}")
    return Outcome(FAILED, f"http_{response.status}", problem.message)


def _entry(document: dict, key: str) -> dict:
    """The item of an `/acr/v1` answer (`{"tag": {...}}`, `{"manifest": {...}}`; 2019's flat form too)."""
    inner = document.get(key)
    return inner if isinstance(inner, dict) else document
