"""The answers of ACR's ``/acr/v1/`` API (data-plane 2021-07-01), for the ACR stand-in.

:class:`AcrView` is the registry as ACR shows it: the storage tree (``acr_metadata``) seen
through the stand-in's state (``acr_state``): tags deleted through the API hidden, times and
changeableAttributes added, a deleted repository gone until something is pushed to it again.
Its methods answer one request each, already authorised, as (status, headers, body), with
the spec's field names, ACR's 7-digit times and ACR's paging (``n``, ``last``, ``orderby``,
``Link: </acr/v1/...?last=…&n=…&orderby=>; rel="next"``).

Nothing here depends on pytest.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from urllib.parse import quote

from .acr_metadata import StorageTree, StoredManifest, StoredTag
from .acr_state import AcrState, acr_time

Reply = tuple[int, dict[str, str], bytes]
JSON = "application/json; charset=utf-8"
DEFAULT_PAGE = 100
DISALLOWED = "The operation is disallowed on this registry, repository or image."


def error(status: int, code: str, message: str, detail: object = None, headers: dict[str, str] | None = None) -> Reply:
    """ACR's error body: ``{"errors": [{"code", "message", "detail"?}]}``."""
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return status, {"Content-Type": JSON, **(headers or {})}, json.dumps({"errors": [entry]}).encode() + b"\n"


def ok(doc: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": JSON, **(headers or {})}, json.dumps(doc, separators=(",", ":")).encode() + b"\n"


def page(items: list[tuple[str, object]], query: dict[str, str],
         link: Callable[[str, int], str]) -> tuple[list[object], dict[str, str]]:
    """Items after the one named ``last``, at most ``n``, and a ``Link`` when more follow."""
    n = max(1, min(int(query.get("n") or DEFAULT_PAGE), 1000))
    names = [name for name, _ in items]
    start = 0
    if query.get("last"):
        last = query["last"]
        start = names.index(last) + 1 if last in names else sum(1 for name in names if name <= last)
    chosen = items[start:start + n]
    headers = {}
    if start + n < len(items):
        headers["Link"] = f'<{link(chosen[-1][0], n)}>; rel="next"'
    return [doc for _, doc in chosen], headers


def ordered(items: list[tuple[str, dict]], orderby: str) -> list[tuple[str, dict]]:
    """``timedesc``/``timeasc``: by lastUpdateTime; otherwise by name (or digest)."""
    if orderby in ("timedesc", "timeasc"):
        return sorted(items, key=lambda item: (item[1]["lastUpdateTime"], item[0]), reverse=orderby == "timedesc")
    return sorted(items, key=lambda item: item[0])


class AcrView:
    """The registry's storage as ACR's API shows it."""

    def __init__(self, tree: StorageTree, state: AcrState, host: str) -> None:
        self.tree, self.state, self.host = tree, state, host

    # -- what exists

    def repositories(self) -> list[str]:
        return [name for name in self.tree.repositories() if self.exists(name)]

    def exists(self, repository: str) -> bool:
        """In storage, and not deleted through the API (unless pushed to since)."""
        if not self.tree.exists(repository):
            return False
        return not self.state.repository_deleted(repository) or bool(self.tree.revisions(repository))

    def tags(self, repository: str) -> dict[str, StoredTag]:
        return {name: tag for name, tag in self.tree.tags(repository).items()
                if not self.state.tag_hidden(repository, name, tag.digest)}

    def deletable(self, repository: str, digest: str) -> tuple[bool, list[str]]:
        """Whether a manifest may be deleted (no lock on it, its tags or its repository), and its tags."""
        tags = [t.name for t in self.tags(repository).values() if t.digest == digest]
        allowed = self.state.deletable(repository, digest=digest) and all(
            self.state.deletable(repository, tag=t) for t in tags)
        return allowed, tags

    # -- documents

    def tag_json(self, repository: str, tag: StoredTag) -> dict[str, object]:
        times = self.state.times(repository, tag=tag.name)
        return {
            "name": tag.name,
            "digest": tag.digest,
            "createdTime": acr_time(times.created if times.created is not None else tag.created),
            "lastUpdateTime": acr_time(times.updated if times.updated is not None else tag.updated),
            "signed": False,
            "changeableAttributes": self.state.attributes(repository, tag=tag.name),
        }

    def manifest_json(self, repository: str, manifest: StoredManifest, tags: list[str], *,
                      references: bool) -> dict[str, object]:
        """As ACR lists it: no ``tags`` key when untagged, ``references`` (an index's children)
        only when asked for one manifest."""
        times = self.state.times(repository, digest=manifest.digest)
        created = times.created if times.created is not None else manifest.created
        doc: dict[str, object] = {
            "digest": manifest.digest,
            "imageSize": manifest.size,
            "createdTime": acr_time(created),
            "lastUpdateTime": acr_time(times.updated if times.updated is not None else created),
        }
        if manifest.architecture is not None:
            doc["architecture"] = manifest.architecture
        if manifest.os is not None:
            doc["os"] = manifest.os
        doc["mediaType"] = manifest.media_type
        if manifest.config_media_type is not None:
            doc["configMediaType"] = manifest.config_media_type
        if references and manifest.references:
            doc["references"] = list(manifest.references)
        if tags:
            doc["tags"] = sorted(tags)
        doc["changeableAttributes"] = self.state.attributes(repository, digest=manifest.digest)
        return doc

    def manifest_docs(self, repository: str, *, references: bool = False) -> list[dict[str, object]]:
        tags: dict[str, list[str]] = {}
        for tag in self.tags(repository).values():
            tags.setdefault(tag.digest, []).append(tag.name)
        return [self.manifest_json(repository, self.tree.manifest(digest, created), tags.get(digest, []),
                                   references=references)
                for digest, created in self.tree.revisions(repository).items()]

    def envelope(self, name: str, **rest: object) -> dict[str, object]:
        return {"registry": self.host, "imageName": name, **rest}

    # -- answers

    def catalog(self, query: dict[str, str], path: str) -> Reply:
        """``/acr/v1/_catalog`` or ``/v2/_catalog`` (``path``): the same names, the same paging
        (ACR's own ``Link`` ends in ``&orderby=``, as recorded)."""
        tail = "&orderby=" if path.startswith("/acr/") else ""
        chosen, headers = page([(n, n) for n in self.repositories()], query,
                               lambda last, n: f"{path}?last={quote(last, safe='')}&n={n}{tail}")
        return ok({"repositories": chosen}, headers=headers)

    def answer(self, method: str, name: str, kind: str | None, ref: str, query: dict[str, str],
               body: bytes | None, delete_manifest: Callable[[str, str], int]) -> Reply:
        """``/acr/v1/{name}[/{kind}[/{ref}]]``; ``delete_manifest(name, digest)`` deletes one in
        the registry and gives its status (for a repository's deletion)."""
        if not self.exists(name):
            return error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        try:
            changes = json.loads(body or b"{}") if method == "PATCH" else {}
        except ValueError:
            return error(400, "INVALID_REQUEST", "the body is not JSON")
        if kind is None:
            return self.repository(method, name, changes, delete_manifest)
        if ref:
            return (self.tag if kind == "_tags" else self.manifest)(method, name, ref, changes)
        if kind == "_tags":
            docs = [(t.name, self.tag_json(name, t)) for t in self.tags(name).values()
                    if not query.get("digest") or t.digest == query["digest"]]
        else:
            docs = [(str(d["digest"]), d) for d in self.manifest_docs(name)]
        return self.listing(method, name, kind, docs, query)

    def listing(self, method: str, name: str, kind: str, docs: list[tuple[str, dict]], query: dict[str, str]) -> Reply:
        if method != "GET":
            return error(405, "UNSUPPORTED", "method not allowed")
        orderby = query.get("orderby", "")
        chosen, headers = page(ordered(docs, orderby), query, lambda last, n: (
            f"/acr/v1/{quote(name, safe='')}/{kind}?last={quote(last, safe='')}&n={n}&orderby={orderby}"))
        return ok(self.envelope(name, **{kind.lstrip("_"): chosen}), headers=headers)

    def patched(self, name: str, changes: dict, **where: str) -> Reply | None:
        """A PATCH's changeableAttributes applied; an error answer if they are not such."""
        try:
            self.state.update(name, changes, **where)  # type: ignore[arg-type]
        except ValueError as e:
            return error(400, "INVALID_REQUEST", str(e))
        return None

    def repository(self, method: str, name: str, changes: dict, delete_manifest: Callable[[str, str], int]) -> Reply:
        if method == "DELETE":
            return self.delete_repository(name, delete_manifest)
        if method == "PATCH" and (refused := self.patched(name, changes)):
            return refused
        manifests = self.manifest_docs(name)
        tags = [self.tag_json(name, t) for t in self.tags(name).values()]
        created = [str(d["createdTime"]) for d in manifests] + [str(t["createdTime"]) for t in tags]
        updated = [str(d["lastUpdateTime"]) for d in manifests] + [str(t["lastUpdateTime"]) for t in tags]
        return ok(self.envelope(
            name, createdTime=min(created, default=acr_time(0)), lastUpdateTime=max(updated, default=acr_time(0)),
            manifestCount=len(manifests), tagCount=len(tags), changeableAttributes=self.state.attributes(name)))

    def delete_repository(self, name: str, delete_manifest: Callable[[str, str], int]) -> Reply:
        """Every manifest (and so every tag) deleted, unless anything in it is locked."""
        digests = sorted(self.tree.revisions(name))
        if not all(self.deletable(name, digest)[0] for digest in digests):
            return error(405, "UNSUPPORTED", DISALLOWED)
        tags = sorted(self.tags(name))
        for digest in digests:
            status = delete_manifest(name, digest)
            if status not in (202, 404):
                return error(500, "UNKNOWN", f"the registry answered {status} deleting {digest}")
        self.state.delete_repository(name)
        return ok({"manifestsDeleted": digests, "tagsDeleted": tags}, status=202)

    def tag(self, method: str, name: str, tag_name: str, changes: dict) -> Reply:
        tag = self.tags(name).get(tag_name)
        if tag is None:
            return error(404, "TAG_UNKNOWN", "the specified tag does not exist", {"name": name, "tag": tag_name})
        if method == "DELETE":
            if not self.state.deletable(name, tag=tag_name):
                return error(405, "UNSUPPORTED", DISALLOWED)
            self.state.delete_tag(name, tag_name, tag.digest)
            return 202, {}, b""
        if method == "PATCH" and (refused := self.patched(name, changes, tag=tag_name)):
            return refused
        return ok(self.envelope(name, tag=self.tag_json(name, tag)))

    def manifest(self, method: str, name: str, reference: str, changes: dict) -> Reply:
        if method == "DELETE":
            return error(405, "UNSUPPORTED", "delete manifests with DELETE /v2/{name}/manifests/{digest}")
        digest = reference
        if not reference.startswith("sha256:"):
            tag = self.tags(name).get(reference)
            digest = tag.digest if tag else ""
        if method == "PATCH" and digest in self.tree.revisions(name) and (
                refused := self.patched(name, changes, digest=digest)):
            return refused
        found = [d for d in self.manifest_docs(name, references=True) if d["digest"] == digest]
        if not found:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference})
        return ok(self.envelope(name, manifest=found[0]))
