"""An Azure Container Registry stand-in: ACR's data-plane API over a real docker-registry.

One loopback port serves, as ACR does (data-plane API 2021-07-01):

- ``/oauth2/token`` (GET with Basic auth; POST ``grant_type=refresh_token|password``) and
  ``/oauth2/exchange`` (POST ``grant_type=access_token``): see ``acr_auth``;
- ``/v2/...``: forwarded to the registry (which runs without auth) once ACR's auth is satisfied;
  tags deleted through ``/acr/v1`` are hidden from tag lists and pulls by tag; a manifest
  DELETE is refused (405) when it, a tag of it, or its repository is locked;
- ``/acr/v1/...``: answered by ``acr_api.AcrView`` from the registry's storage tree and the
  stand-in's own state.

Without credentials every request gets 401 and ACR's challenge (``Bearer realm=…,service=…``,
plus ``scope=…`` for a resource); ACR's own Basic auth (admin user, scoped token, refresh
token) is accepted too. Every request is logged as (method, path, status); a seeded share can
be answered with a fault (429 with ``Retry-After``, 5xx) decided by (seed, method, path, how
many times asked), so concurrent clients meet the same faults whatever their order.
``intercept(method, path)``, when set, runs first: it may block (a test holding the Nth
request) or answer instead.

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
from urllib.parse import parse_qs, unquote, urlsplit

from .acr_api import DISALLOWED, AcrView, Reply, error, ok
from .acr_auth import AcrAuth, Principal, Refused, Scope
from .acr_metadata import StorageTree
from .acr_state import AcrState
from .components import LOOPBACK, ComponentError
from .proxy import Proxy, ProxyHandler

_V2_MANIFEST = re.compile(r"^/v2/(?P<name>.+)/manifests/(?P<ref>[^/]+)$")
_V2_TAGS = re.compile(r"^/v2/(?P<name>.+)/tags/list$")
_V2_REPOSITORY = re.compile(r"^/v2/(?P<name>.+)/(?:manifests|blobs|tags)/")
_ACR = re.compile(r"^/acr/v1/(?P<name>.+?)(?:/(?P<kind>_tags|_manifests)(?:/(?P<ref>[^/]+))?)?/?$")
CATALOG = Scope("registry", "catalog", ("*",))
UNAUTHORIZED = "authentication required, visit https://aka.ms/acr/authorization for more information."


class AcrStandinServer(Proxy):
    """The stand-in's HTTP server, forwarding ``/v2`` to ``registry_url``, reading ``storage``."""

    def __init__(self, registry_url: str, storage: Path) -> None:
        super().__init__(registry_url, _Handler)
        self.host = f"{LOOPBACK}:{self.port}"
        self.state = AcrState()
        self.view = AcrView(StorageTree(storage), self.state, self.host)
        self.auth = AcrAuth(service=self.host)
        self.requests: list[tuple[str, str, int]] = []
        self.intercept: Callable[[str, str], Reply | None] | None = None
        self.shared = False  # the registry serves other tests too: never delete in it
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

    def _count(self, method: str, path: str) -> int:
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
        # Keyed without this run's port (token requests name it in `service=`), so a seed
        # faults the same requests in every run: a test passes or fails, never by chance.
        path = path.replace(f"127.0.0.1:{self.port}", "HOST")
        chance = random.Random(f"{self.fault_seed}:{method}:{path}:{self._count(method, path)}")
        if chance.random() >= self.fault_rate:
            return None
        status = chance.choice(self.fault_statuses)
        if status == 429:
            return error(429, "TOOMANYREQUESTS", "too many requests", headers={"Retry-After": self.retry_after})
        return error(status, "UNAVAILABLE", "service unavailable", headers={"Retry-After": self.retry_after})


class _Handler(ProxyHandler):
    proxy: AcrStandinServer  # type: ignore[assignment]

    def do_PATCH(self) -> None:  # noqa: N802 (http.server's naming)
        self.handle_method("PATCH")

    def handle_method(self, method: str) -> None:
        server = self.proxy
        parts = urlsplit(self.path)
        body = self.request_body()
        reply = server.intercept(method, self.path) if server.intercept else None
        reply = reply or server.fault(method, self.path)
        if reply is None:
            try:
                reply = self.route(method, parts.path, parts.query, body)
            except ComponentError:
                reply = error(502, "UNAVAILABLE", "the registry behind the stand-in is gone")
            except Exception as e:  # a stand-in bug: an answer that says so, not a dropped connection
                reply = error(500, "UNKNOWN", f"the stand-in failed: {type(e).__name__}: {e}")
        status, headers, data = reply
        headers = {"X-Ms-Correlation-Request-Id": str(uuid.uuid4()),
                   "Docker-Distribution-Api-Version": "registry/2.0", **headers}
        server.record(method, parts.path, status)
        self.answer(method, status, headers.items(), data)

    def route(self, method: str, path: str, raw_query: str, body: bytes | None) -> Reply:
        if path == "/oauth2/token":
            return self.token(method, raw_query, body)
        if path == "/oauth2/exchange" and method == "POST":
            return self.exchange(body)
        if path in ("/v2", "/v2/"):
            return self.authorized(None) or self.forwarded(method, "/v2/", body)
        if path.startswith("/v2/"):
            return self.v2(method, path, raw_query, body)
        query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
        if path == "/acr/v1/_catalog" and method == "GET":
            return self.authorized(CATALOG) or self.proxy.view.catalog(query, "/acr/v1/_catalog")
        match = _ACR.match(path)
        if match is None:
            return error(404, "NOT_FOUND", "not found")
        name = unquote(match["name"])
        action = {"GET": "metadata_read", "PATCH": "metadata_write", "DELETE": "delete"}.get(method)
        if action is None:
            return error(405, "UNSUPPORTED", "method not allowed")
        return self.authorized(Scope("repository", name, (action,))) or self.proxy.view.answer(
            method, name, match["kind"], unquote(match["ref"] or ""), query, body, self.registry_delete)

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

    def basic_credentials(self) -> tuple[str, str] | None:
        """The request's Basic user name and password (None: no Basic auth)."""
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() != "basic":
            return None
        try:
            user, _, password = base64.b64decode(value.strip()).decode().partition(":")
        except ValueError:
            raise Refused("malformed Basic credentials") from None
        return user, password

    def authorized(self, scope: Scope | None) -> Reply | None:
        """None when the request's credentials cover ``scope`` (None: any valid credentials)."""
        auth = self.proxy.auth
        kind, _, value = (self.headers.get("Authorization") or "").partition(" ")
        if kind.lower() == "bearer":
            access = auth.access(value.strip())
            if access is None:
                return self.refuse(scope, ',error="invalid_token"')
            if scope is None:
                return None
            grants = access[1]
            if set(scope.actions) <= grants.get((scope.type, scope.name), set()) | grants.get((scope.type, "*"), set()):
                return None
            return self.refuse(scope, ',error="insufficient_scope"')
        try:
            credentials = self.basic_credentials()
            principal = auth.basic(*credentials) if credentials else None
        except Refused:
            principal = None
        if principal is None:
            return self.refuse(scope)
        granted = principal.grant(scope) if scope is not None else None
        if scope is None or (granted is not None and set(scope.actions) <= set(granted.actions)):
            return None
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
        grant_type = field.get("grant_type") if method == "POST" else None
        if grant_type == "refresh_token" or (grant_type == "password" and field.get("refresh_token")):
            return auth.from_refresh_token(field.get("refresh_token", ""))
        if grant_type == "password" and field.get("username"):
            return auth.basic(field["username"], field.get("password", ""))
        credentials = self.basic_credentials()
        if credentials is None:
            raise Refused("anonymous pull is not enabled on this registry")
        return auth.basic(*credentials)

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
        if method not in ("GET", "HEAD") and self.proxy.shared:
            return error(500, "UNKNOWN", f"{method} {path}: this registry is shared by other tests (populated_acr)"
                         "; use the acr_standin fixture to change it")
        headers = {k: v for k, v in self.request_headers().items() if k.lower() != "authorization"}
        status, got, data = self.forward(method, path, headers, body)
        return status, dict(got), data

    def registry_delete(self, name: str, digest: str) -> int:
        """DELETE a manifest in the registry (no lock checked); its status."""
        status, _, _ = self.forwarded("DELETE", f"/v2/{name}/manifests/{digest}", None)
        if status == 202:
            self.proxy.state.forget_manifest(name, digest, [])
        return status

    def v2(self, method: str, path: str, raw_query: str, body: bytes | None) -> Reply:
        view = self.proxy.view
        target = path + (f"?{raw_query}" if raw_query else "")
        if path == "/v2/_catalog":
            refused = self.authorized(CATALOG)
            if refused:
                return refused
            query = {k: v[-1] for k, v in parse_qs(raw_query).items()}
            return view.catalog(query, "/v2/_catalog") if method == "GET" else error(405, "UNSUPPORTED", "")
        repo = _V2_REPOSITORY.match(path)
        if repo is None:
            return error(404, "NAME_INVALID", "invalid repository name")
        name = repo["name"]
        action = {"GET": "pull", "HEAD": "pull", "DELETE": "delete"}.get(method, "push")
        refused = self.authorized(Scope("repository", name, (action,)))
        if refused:
            return refused
        if method in ("GET", "HEAD", "DELETE") and not view.exists(name):
            return error(404, "NAME_UNKNOWN", "repository name not known to registry", {"name": name})
        manifest = _V2_MANIFEST.match(path)
        if manifest and method in ("GET", "HEAD") and not manifest["ref"].startswith("sha256:") and \
                manifest["ref"] not in view.tags(name):
            return error(404, "MANIFEST_UNKNOWN", "manifest unknown", {"Tag": manifest["ref"]})
        if manifest and method == "DELETE":
            allowed, tags = view.deletable(name, manifest["ref"])
            if not allowed:
                return error(405, "UNSUPPORTED", DISALLOWED)
            reply = self.forwarded(method, target, body)
            if reply[0] == 202:
                self.proxy.state.forget_manifest(name, manifest["ref"], tags)
            return reply
        status, headers, data = self.forwarded(method, target, body)
        if _V2_TAGS.match(path) and method == "GET" and status == 200:
            doc = json.loads(data)
            doc["tags"] = [t for t in doc.get("tags") or [] if t in view.tags(name)]
            data = json.dumps(doc).encode()
        return status, headers, data

