"""Components for testing the registry API source, on 127.0.0.1 only.

- :func:`htpasswd_line`: a bcrypt ``htpasswd`` entry (``htpasswd -Bbn``, Debian's apache2-utils)
  for the registry's ``htpasswd`` auth.
- :class:`TokenServer`: the realm of the registry's ``token`` auth. It signs RS256 JWTs with a
  key made by the ``openssl`` CLI, whose self-signed certificate the registry trusts
  (``rootcertbundle``) and which travels in the JWT header (``x5c``). It records every token
  it issues.
- :class:`FaultProxy`: forwards to a registry and can answer instead of it: faults (503, 429,
  a dropped connection, a truncated body, a slow answer), canned manifests, extra tags, tag
  pages (distribution 2.8 ignores ``n`` on tag lists), a ``Link`` to another host.
- :class:`SeededFaults`: a reproducible share of a proxy's requests answered with faults.

Nothing here depends on pytest.
"""

from __future__ import annotations

import base64
import json
import random
import re
import secrets
import subprocess
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from urllib.parse import parse_qsl, quote, urlencode, urlsplit

from .components import LOOPBACK, ComponentError
from .proxy import LoopbackServer, Proxy, ProxyHandler

Canned = tuple[int, dict[str, str], bytes]  # status, headers, body


def htpasswd_line(user: str, password: str) -> str:
    """One bcrypt htpasswd entry (distribution accepts only bcrypt)."""
    done = subprocess.run(
        ["htpasswd", "-Bbn", user, password], capture_output=True, text=True, check=True, timeout=30
    )
    return done.stdout.strip() + "\n"


def tls_certificate(workdir: Path, dns_name: str | None = None) -> tuple[Path, Path]:
    """A self-signed certificate for 127.0.0.1 (and `dns_name`) and its key (openssl CLI)."""
    workdir.mkdir(parents=True, exist_ok=True)
    cert, key = workdir / "tls.pem", workdir / "tls.key"
    names = f"IP:{LOOPBACK}" + (f",DNS:{dns_name}" if dns_name else "")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", f"/CN={LOOPBACK}",
         "-addext", f"subjectAltName={names}", "-keyout", str(key), "-out", str(cert)],
        capture_output=True, check=True, timeout=60,
    )  # fmt: skip
    return cert, key


def _b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


# --- token service --------------------------------------------------------------------------


@dataclass(frozen=True)
class Issued:
    """A token the server issued: for which scopes, to whom (None: anonymous)."""

    scopes: tuple[str, ...]
    user: str | None
    token: str = field(repr=False)


class TokenServer(LoopbackServer):
    """The registry's token realm: ``GET /token?service=…&scope=…`` with optional Basic auth.

    Known users get what they ask for; anonymous callers get a token with no access (which
    the registry accepts for ``/v2/`` only). ``jwt_lifetime`` sets the JWT's ``exp`` from now
    (distribution allows 60 s of leeway past it); ``expires_in`` is what the answer claims.
    ``realm_host`` is the host written into the realm URL the registry hands out.
    """

    service = "regstat-test"
    issuer = "regstat-test-issuer"

    def __init__(
        self, workdir: Path, users: dict[str, str], realm_host: str = LOOPBACK, tls: tuple[Path, Path] | None = None
    ) -> None:
        super().__init__(_TokenHandler, tls=tls)
        self.users = dict(users)
        self.realm_host = realm_host
        self.jwt_lifetime = 300
        self.expires_in = 300
        self.issued: list[Issued] = []
        self.refused = 0  # requests with wrong credentials
        self.authorization_seen: list[str | None] = []
        self._lock = threading.Lock()
        workdir.mkdir(parents=True, exist_ok=True)
        self.key_path, self.cert_path = workdir / "token.key", workdir / "token.pem"
        subprocess.run(
            ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2",
             "-subj", "/CN=regstat-test-token", "-keyout", str(self.key_path), "-out", str(self.cert_path)],
            capture_output=True, check=True, timeout=60,
        )  # fmt: skip
        pem = self.cert_path.read_text()
        self._x5c = "".join(line for line in pem.splitlines() if not line.startswith("-----"))

    @property
    def realm(self) -> str:
        return f"{'https' if self.tls else 'http'}://{self.realm_host}:{self.port}/token"

    def registry_auth(self) -> dict[str, object]:
        """The registry's ``auth`` configuration for this token service."""
        return {
            "token": {
                "realm": self.realm,
                "service": self.service,
                "issuer": self.issuer,
                "rootcertbundle": str(self.cert_path),
            }
        }

    def tokens(self) -> list[str]:
        with self._lock:
            return [i.token for i in self.issued]

    def issue(self, scopes: list[str], user: str | None) -> str:
        now = int(time.time())
        access = []
        for scope in scopes:
            kind, _, rest = scope.partition(":")
            name, _, actions = rest.rpartition(":")
            access.append({"type": kind, "name": name, "actions": actions.split(",") if user else []})
        claims = {
            "iss": self.issuer,
            "sub": user or "",
            "aud": self.service,
            "exp": now + self.jwt_lifetime,
            "nbf": now - 1,
            "iat": now,
            "jti": secrets.token_hex(8),
            "access": access,
        }
        header = {"typ": "JWT", "alg": "RS256", "x5c": [self._x5c]}
        signing_input = f"{_b64url(json.dumps(header).encode())}.{_b64url(json.dumps(claims).encode())}"
        signature = subprocess.run(
            ["openssl", "dgst", "-sha256", "-sign", str(self.key_path)],
            input=signing_input.encode(), capture_output=True, check=True, timeout=30,
        ).stdout  # fmt: skip
        token = f"{signing_input}.{_b64url(signature)}"
        with self._lock:
            self.issued.append(Issued(tuple(scopes), user, token))
        return token


class _TokenHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:  # quiet
        pass

    def do_GET(self) -> None:
        server: TokenServer = self.server.owner  # type: ignore[attr-defined]
        query = parse_qsl(urlsplit(self.path).query)
        scopes = [v for k, v in query if k == "scope"]
        authorization = self.headers.get("Authorization")
        with server._lock:
            server.authorization_seen.append(authorization)
        user = None
        if authorization:
            scheme, _, value = authorization.partition(" ")
            name, _, password = base64.b64decode(value).decode().partition(":") if scheme == "Basic" else ("", "", "")
            if server.users.get(name) != password or not name:
                with server._lock:
                    server.refused += 1
                self._send(401, {"details": "wrong user or password"})
                return
            user = name
        token = server.issue(scopes, user)
        self._send(200, {"token": token, "access_token": token, "expires_in": server.expires_in})

    def _send(self, status: int, document: dict) -> None:
        body = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)


# --- fault proxy ----------------------------------------------------------------------------

_TAGS_LIST = re.compile(r"^/v2/(.+)/tags/list$")
DROP = "drop"  # a fault that closes the connection without answering
TRUNCATE = "truncate"  # the whole Content-Length announced, half the body sent, then close


@dataclass(frozen=True)
class Delay:
    """A fault that answers normally, `seconds` late."""

    seconds: float


Fault = Canned | str | Delay  # what FaultProxy.fault may return besides None


class FaultProxy(Proxy):
    """A proxy in front of a registry (``upstream``: http://127.0.0.1:PORT).

    - ``fault(method, path_with_query, count)``: return a canned answer, :data:`DROP`,
      :data:`TRUNCATE`, a :class:`Delay`, or None to forward; ``count`` is how often this
      method and path have been asked, this time included.
    - ``respond(method, path_with_query, request_headers)``: a canned answer or None, for
      answers that depend on what the client sent.
    - ``canned[(method, path)]``: answers given instead of the registry's.
    - ``extra_tags[repository]``: names added to the repository's tag list;
      ``hidden_tags[repository]``: names taken out of it.
    - ``tag_page_size``: serve tag lists in pages (``n``, ``last``, ``Link``), as distribution
      2.8 does not.
    - ``foreign_link``: rewrite the ``Link`` of catalog and tag pages to point at this origin.
    - ``log``: (method, path with query, status) of every request; ``faults``: (fault,
      method, path) of every fault served (``503``, ``429``, ``drop``, ``truncate``, ``slow``…).
    """

    def __init__(self, upstream: str) -> None:
        super().__init__(upstream, _ProxyHandler)
        self.fault: Callable[[str, str, int], Fault | None] | None = None
        self.respond: Callable[[str, str, Mapping[str, str]], Canned | None] | None = None
        self.canned: dict[tuple[str, str], Canned] = {}
        self.extra_tags: dict[str, list[str]] = {}
        self.hidden_tags: dict[str, list[str]] = {}
        self.tag_page_size: int | None = None
        self.foreign_link: str | None = None
        self.log: list[tuple[str, str, int]] = []
        self.faults: list[tuple[str, str, str]] = []
        self._counts: dict[tuple[str, str], int] = {}
        self._lock = threading.Lock()

    def count(self, method: str, path: str) -> int:
        with self._lock:
            key = (method, path)
            self._counts[key] = self._counts.get(key, 0) + 1
            return self._counts[key]

    def record(self, method: str, path: str, status: int, fault: str | None = None) -> None:
        with self._lock:
            self.log.append((method, path, status))
            if fault is not None:
                self.faults.append((fault, method, path))

    def tag_page(self, repository: str, query: dict[str, str], tag_list: Callable[[], Canned]) -> Canned:
        """The registry's whole tag list (``tag_list()``, plus extra tags), served a page at a time."""
        status, got, body = tag_list()
        if status != 200:
            return status, got, body
        listed = (json.loads(body).get("tags") or []) + self.extra_tags.get(repository, [])
        tags = sorted(t for t in listed if t not in self.hidden_tags.get(repository, []))
        if self.tag_page_size is None:
            page, more = tags, False
        else:
            size = min(int(query.get("n", self.tag_page_size)), self.tag_page_size)
            after = [t for t in tags if t > query["last"]] if "last" in query else tags
            page, more = after[:size], len(after) > size
        out = {"Content-Type": "application/json"}
        if more:
            next_query = urlencode({"n": query.get("n", self.tag_page_size), "last": page[-1]})
            out["Link"] = f'</v2/{quote(repository, safe="/")}/tags/list?{next_query}>; rel="next"'
        return 200, out, json.dumps({"name": repository, "tags": page}).encode()


class SeededFaults:
    """``FaultProxy.fault`` answering a reproducible share of requests with faults.

    Whether a request is faulted, and how, depends only on (seed, method, path, count), so a
    crawl meets the same faults whatever order its threads ask in. Faults are 503 with
    ``Retry-After``, 429, a dropped connection, a truncated body and a slow answer (which
    succeeds). Requests whose path starts with one of ``doomed`` always fail (never slow).
    """

    FAILURES = ("503", "429", DROP, TRUNCATE)

    def __init__(self, seed: int, share: float, doomed: tuple[str, ...] = (), delay: float = 0.3) -> None:
        self.seed = seed
        self.share = share
        self.doomed = doomed
        self.delay = delay

    def __call__(self, method: str, path: str, count: int) -> Fault | None:
        chance = random.Random(f"{self.seed}:{method}:{path}:{count}")
        doomed = path.startswith(self.doomed) if self.doomed else False
        if not doomed and chance.random() >= self.share:
            return None
        kind = chance.choice(self.FAILURES if doomed else (*self.FAILURES, "slow"))
        if kind == "503":
            return 503, {"Retry-After": chance.choice(("0", "1"))}, b'{"errors":[{"code":"UNAVAILABLE"}]}'
        if kind == "429":
            return 429, {}, b'{"errors":[{"code":"TOOMANYREQUESTS"}]}'  # no Retry-After: back off
        if kind == "slow":
            return Delay(self.delay)
        return kind


class _ProxyHandler(ProxyHandler):
    proxy: FaultProxy  # type: ignore[assignment]

    def handle_method(self, method: str) -> None:
        proxy, path = self.proxy, self.path
        fault = proxy.fault(method, path, proxy.count(method, path)) if proxy.fault else None
        if fault == TRUNCATE and method == "HEAD":
            fault = DROP  # no body to cut short
        if fault == DROP:
            proxy.record(method, path, 0, DROP)
            self.close_connection = True
            return
        if isinstance(fault, Delay):
            time.sleep(fault.seconds)
        answer = fault if isinstance(fault, tuple) else None
        if answer is None and proxy.respond is not None:
            answer = proxy.respond(method, path, dict(self.headers.items()))
        if answer is None:
            answer = proxy.canned.get((method, urlsplit(path).path))
        if answer is None:
            try:
                answer = self._upstream_answer(method, path)
            except ComponentError:  # the registry is gone (stopped after a test): say so, as a proxy does
                answer = 502, {}, b""
        status, headers, body = answer
        named = "slow" if isinstance(fault, Delay) else (str(status) if isinstance(fault, tuple) else fault)
        proxy.record(method, path, status, named)  # type: ignore[arg-type]
        self.answer(method, status, headers.items(), body, sent=body[: len(body) // 2] if fault == TRUNCATE else None)
        if fault == TRUNCATE:
            self.close_connection = True

    def _from_upstream(self, method: str, path: str) -> Canned:
        status, headers, body = self.forward(method, path, self.request_headers(), None)
        return status, dict(headers), body

    def _upstream_answer(self, method: str, path: str) -> Canned:
        proxy = self.proxy
        parts = urlsplit(path)
        tags = _TAGS_LIST.match(parts.path)
        repository = tags.group(1) if tags else ""
        edited = repository in proxy.extra_tags or repository in proxy.hidden_tags
        if method == "GET" and tags and (proxy.tag_page_size or edited):

            def whole_list() -> Canned:
                return self._from_upstream("GET", f"/v2/{repository}/tags/list")

            status, got, body = proxy.tag_page(repository, dict(parse_qsl(parts.query)), whole_list)
        else:
            status, got, body = self._from_upstream(method, path)
        if proxy.foreign_link and "Link" in got:
            got["Link"] = re.sub(r"<(/[^>]*)>", lambda m: f"<{proxy.foreign_link}{m.group(1)}>", got["Link"])
        return status, got, body
