"""Registry authentication: credentials, challenges, and the bearer-token flow.

Credentials come from `--username`/`--password-stdin`, else from the Docker client's
configuration (`$DOCKER_CONFIG/config.json` or `~/.docker/config.json`: `auths` entries, or
a credential helper named by `credHelpers`/`credsStore`), looked up only when the registry
first asks for them.

The registry says how to authenticate in its 401 `WWW-Authenticate` challenge: `Basic`, or
`Bearer realm=… service=… scope=…`, for which a token is fetched from the realm and cached
per scope until it expires or the registry refuses it.

Safety rules (credentials are worth more than a crawl):
- credentials go to a token realm on the registry's own host, over HTTPS or when the
  registry itself is plain HTTP (so nothing is less protected than the registry already is);
  to a realm on another host only over HTTPS and with consent: the host is named in
  `realm_hosts` (REGSTAT_REALM_HOSTS), or is Docker Hub's own token service for Docker Hub.
  Otherwise the request fails with `AuthError` and the realm gets nothing (anonymous token
  requests carry no secret and go anywhere);
- passwords and tokens never appear in messages: every message goes through `scrub`, and
  objects holding them do not show them in their repr.
"""

from __future__ import annotations

import base64
import json
import os
import re
import subprocess
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode, urlsplit

from ...errors import AuthError, SourceError, TransportError
from .http import HttpClient, Response, origin, redact_url

HELPER_TIMEOUT = 30.0
TOKEN_LIFETIME_DEFAULT = 60  # seconds, when the token service does not say (the spec's default)
_CHALLENGE_PARAM = re.compile(r'([A-Za-z][\w-]*)\s*=\s*(?:"((?:[^"\\]|\\.)*)"|([^\s,]*))')
_DOCKER_HUB = ("docker.io", "index.docker.io", "registry-1.docker.io")
_DOCKER_HUB_REALM_HOST = "auth.docker.io"
REALM_HOSTS_VARIABLE = "REGSTAT_REALM_HOSTS"
DOCKER_LOGIN_HINT = "give --username and --password-stdin, or docker login"


@dataclass(frozen=True)
class Credentials:
    """A user and a password, or (`identity_token`) an OAuth2 refresh token."""

    username: str
    secret: str = field(repr=False)
    origin: str = "--username"  # where they came from, for messages
    identity_token: bool = False

    def basic(self) -> str:
        pair = f"{self.username}:{self.secret}".encode()
        return "Basic " + base64.b64encode(pair).decode("ascii")


@dataclass(frozen=True)
class Challenge:
    scheme: str  # lower case: basic, bearer
    params: dict[str, str]


@dataclass
class _Token:
    header: str = field(repr=False)
    expires: float  # time.monotonic()

    def fresh(self) -> bool:
        return time.monotonic() < self.expires


def parse_challenges(values: list[str]) -> list[Challenge]:
    """The challenges in `WWW-Authenticate` header values (one challenge per value)."""
    challenges = []
    for value in values:
        scheme, _, rest = value.strip().partition(" ")
        params = {
            m.group(1).lower(): m.group(2) if m.group(2) is not None else m.group(3)
            for m in _CHALLENGE_PARAM.finditer(rest)
        }
        challenges.append(Challenge(scheme.lower(), {k: v.replace('\\"', '"') for k, v in params.items()}))
    return challenges


class Authenticator:
    """Authorization headers for requests to one registry, by scope; thread-safe."""

    def __init__(
        self,
        http: HttpClient,
        registry_url: str,
        explicit: Credentials | None,
        realm_hosts: frozenset[str] = frozenset(),
        *,
        lookup: Callable[[], tuple[Credentials | None, str]] | None = None,
        login_hint: str = DOCKER_LOGIN_HINT,
        own_scopes: bool = False,
        refusal_hint: str = "",
        renews: bool = False,
    ) -> None:
        """`lookup`: where credentials come from when none are `explicit` (default: the Docker
        client's configuration), asked once, when the registry first wants them. `own_scopes`:
        ask the token service for the scope a request names, not the narrower one a challenge
        names (ACR challenges a listing with `metadata_read` and a manifest with `pull`; one
        token with both serves a repository's every request). `refusal_hint` ends the message
        of a token service's refusal. `renews`: when the token service refuses looked-up
        credentials, look them up again once (they were signed in, and may have expired)."""
        self.http = http
        self.registry = origin(registry_url)
        self.realm_hosts = frozenset(h.lower() for h in realm_hosts)  # other hosts the user lets credentials go to
        if self.registry[1] in _DOCKER_HUB:
            self.realm_hosts |= {_DOCKER_HUB_REALM_HOST}
        self._explicit = explicit
        self._lookup = lookup or (lambda: docker_credentials(self.registry[1], self.registry[2]))
        self._login_hint = login_hint
        self._own_scopes = own_scopes
        self._refusal_hint = refusal_hint
        self._renews = renews and explicit is None
        self._credentials: Credentials | None = explicit
        self._looked_up = explicit is not None
        self._note = ""  # why the Docker configuration gave no credentials
        self._basic = False  # the registry asked for Basic
        self._tokens: dict[str, _Token] = {}
        self._scope_locks: dict[str, threading.Lock] = {}
        self._lock = threading.Lock()
        self._secrets: set[str] = set()
        if explicit is not None:
            self._remember_credentials(explicit)
        self.token_requests = 0

    # -- what requests carry

    def authorization(self, scope: str) -> str | None:
        """The Authorization header for a request needing `scope`, if we have one."""
        if self._basic and self._credentials is not None:
            return self._credentials.basic()
        token = self._tokens.get(scope)
        return token.header if token is not None and token.fresh() else None

    def answer(self, scope: str, response: Response, sent: str | None) -> None:
        """Act on a 401: learn Basic, or fetch a token for the challenge's scope. Raise
        AuthError when another try cannot help."""
        challenges = {c.scheme: c for c in parse_challenges(response.header_all("WWW-Authenticate"))}
        if "bearer" in challenges:
            self._bearer(scope, challenges["bearer"], sent)
        elif "basic" in challenges:
            credentials = self.credentials()
            if credentials is None:
                raise AuthError(f"the registry requires a user and password{self._hint()}")
            if sent is not None and sent.startswith("Basic "):
                raise AuthError(f"the registry refused the credentials from {credentials.origin}")
            self._basic = True
        else:
            raise AuthError("the registry answered 401 without a challenge regstat understands")

    def identity(self) -> str:
        """Who we are, for messages: where the credentials came from, or anonymous."""
        credentials = self._credentials if self._looked_up else None
        return f"credentials from {credentials.origin}" if credentials else f"no credentials{self._hint()}"

    def scrub(self, text: str) -> str:
        """`text` with every password and token we hold replaced by `***`."""
        for secret in sorted(self._secrets, key=len, reverse=True):
            text = text.replace(secret, "***")
        return text

    # -- credentials

    def credentials(self) -> Credentials | None:
        with self._lock:
            if not self._looked_up:
                self._credentials, self._note = self._lookup()
                self._looked_up = True
                if self._credentials is not None:
                    self._remember_credentials(self._credentials)
            return self._credentials

    def _hint(self) -> str:
        note = f" ({self._note})" if self._note else ""
        return f"; {self._login_hint}{note}" if self._explicit is None else ""

    def _remember(self, secret: str) -> None:
        if len(secret) >= 4:  # shorter ones would mangle messages and protect nothing
            self._secrets.add(secret)

    def _remember_credentials(self, credentials: Credentials) -> None:
        # The Basic header's base64 too: a registry may echo Authorization in an error body.
        self._remember(credentials.secret)
        self._remember(credentials.basic().partition(" ")[2])

    # -- bearer tokens

    def _bearer(self, scope: str, challenge: Challenge, sent: str | None) -> None:
        with self._lock:
            lock = self._scope_locks.setdefault(scope, threading.Lock())
        with lock:  # one fetch per scope at a time: the others wait and use its token
            current = self._tokens.get(scope)
            if current is not None and current.fresh() and current.header != sent:
                return  # another thread refreshed it while we waited
            self._tokens[scope] = self._fetch_token(challenge, scope)

    def _fetch_token(self, challenge: Challenge, scope: str) -> _Token:
        realm = challenge.params.get("realm", "")
        parts = urlsplit(realm)
        if parts.scheme not in ("http", "https") or not parts.hostname or "@" in parts.netloc:
            raise AuthError(f"the registry names an unusable token realm {redact_url(realm)!r}")
        credentials = self.credentials()
        refusal = self._refusal(realm) if credentials is not None else None
        if refusal:
            raise AuthError(f"not sending credentials to the token realm {redact_url(realm)}: {refusal}")
        asked = challenge.params.get("scope")
        scopes = (((scope or asked) if self._own_scopes else (asked or scope)) or "").split()
        response = self._ask_token(realm, challenge, scopes, credentials)
        if response.status == 401 and self._renews and credentials is not None:
            # Signed-in credentials expire (an ACR refresh token from Entra ID after hours): sign in again, once.
            credentials = self._renewed(credentials)
            response = self._ask_token(realm, challenge, scopes, credentials)
        return self._token_from(response, realm)

    def _ask_token(self, realm: str, challenge: Challenge, scopes: list[str], credentials: Credentials | None
                   ) -> Response:
        query = [("service", challenge.params["service"])] if "service" in challenge.params else []
        headers = {"Accept": "application/json", "User-Agent": "regstat"}
        if credentials is not None and credentials.identity_token:
            form = query + [("scope", " ".join(scopes))] if scopes else list(query)
            form += [("grant_type", "refresh_token"), ("refresh_token", credentials.secret), ("client_id", "regstat")]
            headers["Content-Type"] = "application/x-www-form-urlencoded"
            return self._token_request("POST", realm, headers, urlencode(form).encode())
        query += [("scope", s) for s in scopes]
        if credentials is not None:
            query.append(("account", credentials.username))
            headers["Authorization"] = credentials.basic()
        url = realm + ("&" if urlsplit(realm).query else "?") + urlencode(query) if query else realm
        return self._token_request("GET", url, headers, None)

    def _renewed(self, expired: Credentials) -> Credentials | None:
        """Credentials looked up again; once for all threads that held `expired`."""
        with self._lock:
            if self._credentials is expired:
                self._credentials, self._note = self._lookup()
                if self._credentials is not None:
                    self._remember_credentials(self._credentials)
            return self._credentials

    def _refusal(self, realm: str) -> str | None:
        """Why credentials must not go to `realm`, or None when they may."""
        scheme, host, _ = origin(realm)
        if host == self.registry[1]:
            if scheme == "https" or self.registry[0] == "http":
                return None
            return "it is plain HTTP, and the registry is HTTPS"
        if scheme != "https":
            return "it is neither HTTPS nor the registry's own host"
        if host in self.realm_hosts:
            return None
        return f"it is on another host than the registry; to allow that, set {REALM_HOSTS_VARIABLE}={host}"

    def _token_request(self, method: str, url: str, headers: dict[str, str], body: bytes | None) -> Response:
        with self._lock:
            self.token_requests += 1
        try:
            return self.http.request(method, url, headers, body)
        except TransportError as e:
            raise AuthError(f"the token service failed: {e}") from None

    def _token_from(self, response: Response, realm: str) -> _Token:
        where = f"the token service {redact_url(realm)}"
        if response.status in (401, 403):
            raise AuthError(f"{where} refused the request ({response.status}) with {self.identity()}"
                            f"{self._refusal_hint if self._credentials is not None else ''}")
        if response.status != 200 or response.truncated:
            raise AuthError(f"{where} answered {response.status} {response.reason}")
        try:
            document = json.loads(response.body)
            value = document.get("token") or document.get("access_token")
            lifetime = int(document.get("expires_in") or TOKEN_LIFETIME_DEFAULT)
        except (ValueError, AttributeError, TypeError):
            raise AuthError(f"{where} answered something that is not a token") from None
        if not isinstance(value, str) or not value or not value.isascii() or not value.isprintable():
            raise AuthError(f"{where} answered something that is not a token")
        self._remember(value)
        # Renew a little early, so a token does not expire between our check and its use.
        return _Token(f"Bearer {value}", time.monotonic() + max(lifetime - min(10, lifetime // 2), 1))


# --- the Docker client's configuration ------------------------------------------------------


def docker_config_path() -> Path:
    return Path(os.environ.get("DOCKER_CONFIG") or Path.home() / ".docker") / "config.json"


def docker_credentials(host: str, port: int) -> tuple[Credentials | None, str]:
    """Credentials the Docker client would use for `host:port`, and a note when there are none."""
    path = docker_config_path()
    try:
        config = json.loads(path.read_text())
    except FileNotFoundError:
        return None, ""
    except (OSError, ValueError) as e:
        raise SourceError(f"cannot read {path}: {type(e).__name__}") from None
    if not isinstance(config, dict):
        raise SourceError(f"cannot read {path}: not a JSON object")
    names = _server_names(host, port)
    helpers = config.get("credHelpers") or {}
    helper = next((helpers[n] for n in names if isinstance(helpers, dict) and n in helpers), None)
    helper = helper or config.get("credsStore")
    if isinstance(helper, str) and helper:
        return _from_helper(helper, names[0])
    auths = config.get("auths") or {}
    for key, entry in auths.items() if isinstance(auths, dict) else ():
        if _server_key(key) in names and isinstance(entry, dict):
            found = _from_auths_entry(entry, f"{path} auths")
            if found is not None:
                return found, ""
    return None, ""


def _server_names(host: str, port: int) -> list[str]:
    """How the Docker client may have named this registry, most specific first."""
    if host in _DOCKER_HUB:
        return ["https://index.docker.io/v1/", "index.docker.io", "docker.io", "registry-1.docker.io"]
    # `docker login HOST` on the default port stores HOST alone.
    return [host, f"{host}:{port}"] if port in (80, 443) else [f"{host}:{port}"]


def _server_key(key: str) -> str:
    """An `auths` key (`host`, `https://host/v1/`) as `host[:port]`; Docker Hub's stays whole."""
    if key == "https://index.docker.io/v1/":
        return key
    return urlsplit(key if "://" in key else f"//{key}").netloc.lower()


def _from_auths_entry(entry: dict, where: str) -> Credentials | None:
    username, secret = entry.get("username"), entry.get("password")
    if isinstance(entry.get("auth"), str) and entry["auth"]:
        try:
            username, _, secret = base64.b64decode(entry["auth"]).decode().partition(":")
        except ValueError:
            raise SourceError(f"{where}: an `auth` value is not base64 user:password") from None
    token = entry.get("identitytoken")
    if isinstance(token, str) and token:
        return Credentials(username or "<token>", token, where, identity_token=True)
    if isinstance(username, str) and isinstance(secret, str) and username:
        return Credentials(username, secret, where)
    return None


def _from_helper(helper: str, server: str) -> tuple[Credentials | None, str]:
    """Ask `docker-credential-<helper> get`, as the Docker client does."""
    program = f"docker-credential-{helper}"
    try:
        done = subprocess.run(
            [program, "get"], input=server.encode(), capture_output=True, timeout=HELPER_TIMEOUT, check=False
        )
    except FileNotFoundError:
        return None, f"{program} is not installed"
    except (OSError, subprocess.TimeoutExpired) as e:
        return None, f"{program} failed: {type(e).__name__}"
    if done.returncode != 0:
        # Its output may hold anything; say only that it had nothing.
        return None, f"{program} has no credentials for {server}"
    try:
        answer = json.loads(done.stdout)
        username, secret = answer["Username"], answer["Secret"]
    except (ValueError, KeyError, TypeError):
        return None, f"{program} answered something that is not credentials"
    if not isinstance(username, str) or not isinstance(secret, str) or not secret:
        return None, f"{program} answered something that is not credentials"
    where = program
    if username == "<token>":
        return Credentials(username, secret, where, identity_token=True), ""
    return Credentials(username, secret, where), ""
