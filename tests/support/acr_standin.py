"""An Azure Container Registry stand-in: ACR's data-plane API over a real docker-registry.

One loopback port serves, as ACR does (data-plane API 2021-07-01):

- ``/oauth2/token`` (GET with Basic auth; POST ``grant_type=refresh_token|password``) and
  ``/oauth2/exchange`` (POST ``grant_type=access_token``): see ``acr_auth``;
- ``/v2/...``: forwarded to the registry (which runs without auth) once ACR's auth is satisfied;
  tags deleted through ``/acr/v1`` are hidden from tag lists and pulls by tag; a manifest
  DELETE is refused (405) when it, a tag of it, or its repository is locked;
- ``/acr/v1/_catalog``, ``/acr/v1/{name}``, ``.../_tags[/{tag}]``, ``.../_manifests[/{digest}]``:
  computed from the registry's storage tree (``acr_metadata``) and the stand-in's own state
  (``acr_state``): paged with ``n``/``last`` and a ``Link`` header, ``orderby`` honoured.

Every request is logged as (method, path, status); a seeded share can be answered with a
fault (429 with ``Retry-After``, 5xx) decided by (seed, method, path, how many times asked),
so concurrent clients meet the same faults whatever their order.

Nothing here depends on pytest; ``acr_components`` makes it a fixture.
"""

from __future__ import annotations

import base64
import json
import random
import re
import threading
import uuid
from collections.abc import Callable
from pathlib import Path
from urllib.parse import parse_qs, quote, unquote, urlsplit

from .acr_auth import AcrAuth, Principal, Refused, Scope
from .acr_metadata import StorageTree, StoredManifest, StoredTag
from .acr_state import AcrState, acr_time
from .components import LOOPBACK, ComponentError
from .proxy import Proxy, ProxyHandler

Reply = tuple[int, dict[str, str], bytes]
JSON = "application/json; charset=utf-8"
DEFAULT_PAGE = 100
_V2_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_V2_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_V2_REPOSITORY = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags)/")
_ACR = re.compile(r"^/acr/v1/(?P<name>.+?)(?:/(?P<kind>_tags|_manifests)(?:/(?P<ref>[^/]+))?)?/?$")
UNAUTHORIZED = "authentication required, visit https://aka.ms/acr/authorization for more information."
DISALLOWED = "The operation is disallowed on this registry, repository or image."


def error(status: int, code: str, message: str, detail: object = None, headers: dict[str, str] | None = None) -> Reply:
    entry: dict[str, object] = {"code": code, "message": message}
    if detail is not None:
        entry["detail"] = detail
    return status, {"Content-Type": JSON, **(headers or {})}, json.dumps({"errors": [entry]}).encode() + b"\n"


def ok(doc: object, status: int = 200, headers: dict[str, str] | None = None) -> Reply:
    return status, {"Content-Type": JSON, **(headers or {})}, json.dumps(doc, separators=(",", ":")).encode() + b"\n"


class AcrStandinServer(Proxy):
    """The stand-in's HTTP server, forwarding ``/v2`` to ``registry_url``, reading ``storage``."""

    def __init__(self, registry_url: str, storage: Path) -> None:
        super().__init__(registry_url, _Handler)
        self.host = f"{LOOPBACK}:{self.port}"
        self.tree = StorageTree(storage)
        self.state = AcrState()
        self.auth = AcrAuth(service=self.host)
        self.requests: list[tuple[str, str, int]] = []
        self.fault_rate = 0.0
        self.fault_seed = 0
        self.fault_statuses: tuple[int, ...] = (429, 503)
        self.retry_after = "0"
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def set_faults(self, rate: float, seed: int, statuses: tuple[int, ...], retry_after: int) -> None:
        """Fault a share ``rate`` of requests from now on, counting requests afresh."""
        with self._lock:
            self.fault_rate, self.fault_seed = rate, seed
            self.fault_statuses, self.retry_after = tuple(statuses), str(retry_after)
            self._counts.clear()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            key = (method, path)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def record(self, method: str, path: str, status: int) -> None:
        with self._lock:
            self.requests.append((method, path, status))

    def fault(self, method: str, path: str) -> Reply | None:
        if self.fault_rate <= 0:
            return None
        chance = random.Random(f"{self.fault_seed}:{method}:{path}:{self.count(method, path)}")
        if chance.random() >= self.fault_rate:
            return None
        status = chance.choice(self.fault_statuses)
        if status == 429:
            return error(429, "TOOMANYREQUESTS", "too many requests", headers={"Retry-After": self.retry_after})
        return error(status, "UNAVAILABLE", "service unavailable", headers={"Retry-After": self.retry_after})

    # -- the registry's content, as ACR shows it

    def visible_tags(self, repository: str) -> dict[str, StoredTag]:
        return {name: tag for name, tag in self.tree.tags(repository).items()
                if not self.state.tag_hidden(repository, name, tag.digest)}

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

    def manifests(self, repository: str) -> list[StoredManifest]:
        return [self.tree.manifest(digest, created) for digest, created in self.tree.revisions(repository).items()]

    def manifest_json(self, repository: str, manifest: StoredManifest, tags: list[str], *,
                      references: bool) -> dict[str, object]:
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


def page(items: list[tuple[str, object]], query: dict[str, str], link: Callable[[str, int], str]) -> tuple[
        list[object], dict[str, str]]:
    """ACR's paging: items after the one named ``last``, at most ``n``, and a ``Link`` if more."""
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
    if orderby in ("timedesc", "timeasc"):
        return sorted(items, key=lambda item: (item[1]["lastUpdateTime"], item[0]), reverse=orderby == "timedesc")
    return sorted(items, key=lambda item: item[0])


class _Handler(ProxyHandler):
    proxy: AcrStandinServer  # type: ignore[assignment]

    def do_PATCH(self) -> None:  # noqa: N802 (http.server's naming)
        self.handle_method("PATCH")

    def handle_method(self, method: str) -> None:
        server = self.proxy
        parts = urlsplit(self.path)
        body = self.request_body()
        reply = server.fault(method, self.path)
        if reply is None:
            try:
                reply = self.route(method, parts.path, {k: v[-1] for k, v in parse_qs(parts.query).items()},
                                   parts.query, body)
            except ComponentError:
                reply = error(502, "UNAVAILABLE", "the registry behind the stand-in is gone")
        status, headers, data = reply
        headers.setdefault("X-Ms-Correlation-Request-Id", str(uuid.uuid4()))
        headers.setdefault("Docker-Distribution-Api-Version", "registry/2.0")
        server.record(method, parts.path, status)
        self.answer(method, status, headers.items(), data)

    # -- routing

    def route(self, method: str, path: str, query: dict[str, str], raw_query: str, body: bytes | None) -> Reply:
        if path == "/oauth2/token":
            return self.token(method, raw_query, body)
        if path == "/oauth2/exchange" and method == "POST":
            return self.exchange(body)
        if path in ("/v2", "/v2/"):
            return self.authorized(None) or self.forwarded(method, "/v2/", body)
        if path.startswith("/v2/"):
            return self.v2(method, path, raw_query, body)
        if path == "/acr/v1/_catalog" and method == "GET":
            return self.authorized(Scope("registry", "catalog", ("*",))) or self.catalog(query)
        match = _ACR.match(path)
        if match:
            return self.acr(method, unquote(match["name"]), match["kind"], unquote(match["ref"] or ""), query, body)
        return error(404, "NOT_FOUND", "not found")

    # -- auth

    def challenge(self, scope: Scope | None, extra: str = "") -> dict[str, str]:
        host = self.proxy.host
        value = f'Bearer realm="http://{host}/oauth2/token",service="{host}"'
        if scope is not None:
            value += f',scope="{scope}"'
        return {"Www-Authenticate": value + extra}

    def refuse(self, scope: Scope | None, extra: str = "") -> Reply:
        detail = None
        if scope is not None:
            detail = [{"Type": scope.type, "Name": scope.name, "Action": action} for action in scope.actions]
        return error(401, "UNAUTHORIZED", UNAUTHORIZED, detail, self.challenge(scope, extra))

    def authorized(self, scope: Scope | None) -> Reply | None:
        """None when the request's credentials cover ``scope`` (None: any valid credentials)."""
        auth = self.proxy.auth
        header = self.headers.get("Authorization") or ""
        kind, _, value = header.partition(" ")
        if kind.lower() == "bearer":
            access = auth.access(value.strip())
            if access is None:
                return self.refuse(scope, ',error="invalid_token"')
            grants = access[1]
            granted = grants.get((scope.type, scope.name), set()) | grants.get((scope.type, "*"), set()) \
                if scope is not None else set()
            if scope is None or set(scope.actions) <= granted:
                return None
            return self.refuse(scope, ',error="insufficient_scope"')
        if kind.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value.strip()).decode().partition(":")
                principal = auth.basic(user, password)
            except (Refused, ValueError):
                return self.refuse(scope)
            if scope is None:
                return None
            granted = principal.grant(scope)
            if granted is not None and (scope.type == "registry" or set(scope.actions) <= set(granted.actions)):
                return None
            return self.refuse(scope)
        return self.refuse(scope)

    def token(self, method: str, raw_query: str, body: bytes | None) -> Reply:
        auth = self.proxy.auth
        form = parse_qs(raw_query)
        if method == "POST":
            form.update(parse_qs((body or b"").decode()))
        elif method != "GET":
            return error(405, "UNSUPPORTED", "method not allowed")
        field = {k: v[-1] for k, v in form.items()}
        if field.get("service", auth.service) != auth.service:
            return error(400, "INVALID_REQUEST", f"unknown service {field.get('service')!r}")
        try:
            scopes = [Scope.parse(s) for value in form.get("scope", []) for s in value.split()]
        except ValueError as e:
            return error(400, "INVALID_REQUEST", str(e))
        try:
            principal = self.token_principal(method, field)
        except Refused as e:
            return error(401, "UNAUTHORIZED", str(e))
        return ok({"access_token": auth.access_token(principal, scopes)})

    def token_principal(self, method: str, field: dict[str, str]) -> Principal:
        auth = self.proxy.auth
        grant_type = field.get("grant_type")
        if method == "POST" and grant_type == "refresh_token":
            return auth.from_refresh_token(field.get("refresh_token", ""))
        if method == "POST" and grant_type == "password" and field.get("username"):
            return auth.basic(field["username"], field.get("password", ""))
        if method == "POST" and grant_type == "password" and field.get("refresh_token"):
            return auth.from_refresh_token(field["refresh_token"])
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() != "basic":
            raise Refused("anonymous pull is not enabled on this registry")
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            raise Refused("malformed Basic credentials") from None
        return auth.basic(user, password)

    def exchange(self, body: bytes | None) -> Reply:
        auth = self.proxy.auth
        field = {k: v[-1] for k, v in parse_qs((body or b"").decode()).items()}
        if field.get("grant_type") != "access_token":
            return error(400, "INVALID_REQUEST", "grant_type must be access_token")
        if field.get("service") != auth.service:
            return error(400, "INVALID_REQUEST", f"unknown service {field.get('service')!r}")
        try:
            return ok({"refresh_token": auth.exchange(field.get("access_token", ""), field.get("tenant"))})
        except Refused as e:
            return error(401, "UNAUTHORIZED", str(e))

    # -- /v2

    def forwarded(self, method: str, path: str, body: bytes | None) -> Reply:
        headers = {k: v for k, v in self.request_headers().items() if k.lower() != "authorization"}
        status, got, data = self.forward(method, path, headers, body)
        return status, dict(got), data

    def v2(self, method: str, path: str, raw_query: str, body: bytes | None) -> Reply:
        server = self.proxy
        target = path + (f"?{raw_query}" if raw_query else "")
        if path == "/v2/_catalog":
            return self.authorized(Scope("registry", "catalog", ("*",))) or self.forwarded(method, target, body)
        repo = _V2_REPOSITORY.match(path)
        if repo is None:
            return error(404, "NAME_INVALID", "invalid repository name")
        name = repo["name"]
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")
        refused = self.authorized(Scope("repository", name, (action,)))
        if refused:
            return refused
        manifest = _V2_MANIFEST.match(path)
        if manifest and not manifest["ref"].startswith("sha256:"):
            tag = server.tree.tags(name).get(manifest["ref"])
            if tag is not None and server.state.tag_hidden(name, tag.name, tag.digest):
                return error(404, "MANIFEST_UNKNOWN", "manifest tagged by \"" + tag.name + "\" is not found",
                             {"Tag": tag.name})
        if manifest and method == "DELETE":
            return self.delete_manifest(name, manifest["ref"], target)
        status, headers, data = self.forwarded(method, target, body)
        if _V2_TAGS.match(path) and method == "GET" and status == 200:
            doc = json.loads(data)
            doc["tags"] = [t for t in doc.get("tags") or [] if t in server.visible_tags(name)]
            data = json.dumps(doc).encode()
        return status, headers, data

    def delete_manifest(self, name: str, digest: str, target: str) -> Reply:
        server = self.proxy
        tags = [t.name for t in server.visible_tags(name).values() if t.digest == digest]
        if not server.state.deletable(name, digest=digest) or not all(
                server.state.deletable(name, tag=t) for t in tags):
            return error(405, "UNSUPPORTED", DISALLOWED)
        status, headers, data = self.forwarded("DELETE", target, None)
        if status == 202:
            server.state.forget_manifest(name, digest, tags)
        return status, headers, data

    # -- /acr/v1

    def catalog(self, query: dict[str, str]) -> Reply:
        names = self.proxy.tree.repositories()
        chosen, headers = page([(n, n) for n in names], query,
                               lambda last, n: f"/acr/v1/_catalog?last={quote(last, safe='')}&n={n}")
        return ok({"repositories": chosen}, headers=headers)

    def acr(self, method: str, name: str, kind: str | None, ref: str, query: dict[str, str],
            body: bytes | None) -> Reply:
        action = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}.get(method)
        if action is None:
            return error(405, "UNSUPPORTED", "method not allowed")
        refused = self.authorized(Scope("repository", name, (action,)))
        if refused:
            return refused
        server = self.proxy
        if not server.tree.exists(name):
            return error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        try:
            changes = json.loads(body) if method == "PATCH" else {}
        except ValueError:
            return error(400, "INVALID_REQUEST", "the body is not JSON")
        if kind is None:
            return self.repository(method, name, changes)
        if ref:
            return (self.tag if kind == "_tags" else self.manifest)(method, name, ref, changes)
        if kind == "_tags":
            docs = [(t.name, server.tag_json(name, t)) for t in server.visible_tags(name).values()
                    if not query.get("digest") or t.digest == query["digest"]]
        else:
            docs = [(str(d["digest"]), d) for d in self.manifest_docs(name)]
        return self.listing(method, name, kind, docs, query)

    def envelope(self, name: str, **rest: object) -> dict[str, object]:
        return {"registry": self.proxy.host, "imageName": name, **rest}

    def repository(self, method: str, name: str, changes: dict) -> Reply:
        server = self.proxy
        if method == "DELETE":
            return error(405, "UNSUPPORTED", "deleting a repository is not supported by the stand-in")
        if method == "PATCH" and (refused := self.patched(name, changes)):
            return refused
        manifests = self.manifest_docs(name)
        tags = [server.tag_json(name, t) for t in server.visible_tags(name).values()]
        times = [d["createdTime"] for d in manifests] + [t["createdTime"] for t in tags]
        updates = [d["lastUpdateTime"] for d in manifests] + [t["lastUpdateTime"] for t in tags]
        return ok(self.envelope(
            name, createdTime=min(times, default=acr_time(0)), lastUpdateTime=max(updates, default=acr_time(0)),
            manifestCount=len(manifests), tagCount=len(tags), changeableAttributes=server.state.attributes(name)))

    def listing(self, method: str, name: str, kind: str, docs: list[tuple[str, dict]], query: dict[str, str]) -> Reply:
        """A page of ``_tags`` or ``_manifests``: ordered, after ``last``, ``Link`` to the next."""
        if method != "GET":
            return error(405, "UNSUPPORTED", "method not allowed")
        orderby = query.get("orderby", "")
        chosen, headers = page(ordered(docs, orderby), query, lambda last, n: (
            f"/acr/v1/{quote(name, safe='')}/{kind}?last={quote(last, safe='')}&n={n}&orderby={orderby}"))
        return ok(self.envelope(name, **{kind.lstrip("_"): chosen}), headers=headers)

    def patched(self, name: str, changes: dict, **where: str) -> Reply | None:
        """A PATCH's changeableAttributes applied; an error answer if they are not such."""
        try:
            self.proxy.state.update(name, changes, **where)  # type: ignore[arg-type]
        except ValueError as e:
            return error(400, "INVALID_REQUEST", str(e))
        return None

    def tag(self, method: str, name: str, tag_name: str, changes: dict) -> Reply:
        server = self.proxy
        tag = server.visible_tags(name).get(tag_name)
        if tag is None:
            return error(404, "TAG_UNKNOWN", "the specified tag does not exist", {"name": name, "tag": tag_name})
        if method == "DELETE":
            if not server.state.deletable(name, tag=tag_name):
                return error(405, "UNSUPPORTED", DISALLOWED)
            server.state.delete_tag(name, tag_name, tag.digest)
            return 202, {"Content-Length": "0"}, b""
        if method == "PATCH" and (refused := self.patched(name, changes, tag=tag_name)):
            return refused
        return ok(self.envelope(name, tag=server.tag_json(name, tag)))

    def manifest_docs(self, name: str, *, references: bool = False) -> list[dict[str, object]]:
        server = self.proxy
        tags: dict[str, list[str]] = {}
        for tag in server.visible_tags(name).values():
            tags.setdefault(tag.digest, []).append(tag.name)
        return [server.manifest_json(name, m, tags.get(m.digest, []), references=references)
                for m in server.manifests(name)]

    def manifest(self, method: str, name: str, reference: str, changes: dict) -> Reply:
        server = self.proxy
        if method == "DELETE":
            return error(405, "UNSUPPORTED", "delete manifests with DELETE /v2/{name}/manifests/{digest}")
        digest = reference
        if not reference.startswith("sha256:"):
            tag = server.visible_tags(name).get(reference)
            digest = tag.digest if tag else ""
        found = [d for d in self.manifest_docs(name, references=True) if d["digest"] == digest]
        if not found:
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"name": name, "reference": reference})
        if method == "PATCH":
            if refused := self.patched(name, changes, digest=digest):
                return refused
            found = [d for d in self.manifest_docs(name, references=True) if d["digest"] == digest]
        return ok(self.envelope(name, manifest=found[0]))
