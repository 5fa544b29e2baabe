"""ACR's token service, as the stand-in plays it: who may ask, and what they are granted.

Principals: the admin user (Basic auth), repository-scoped tokens (a name and a password,
limited to some repositories and actions, as an ACR scope map does), and Entra ID identities,
which swap an Entra access token for an ACR refresh token at ``/oauth2/exchange``. A refresh
token is also a password: with the user name ``00000000-0000-0000-0000-000000000000``.

Tokens are JWT-shaped (``header.claims.signature``, HMAC-SHA256 with a key of this process),
with ACR's claims: ``exp``, ``aud`` (the login server), ``grant_type``, and for access tokens
``access`` = ``[{"Type", "Name", "Actions"}]``; clients decode ``exp`` to renew early.
``repository:*:*`` is granted as such (acr-cli asks for it), except on an ABAC registry
(``abac``), whose Entra refresh tokens carry the ``aad_identity`` claim clients look for.
Access tokens live ``token_lifetime`` seconds (a test sets it to force expiry).

Nothing here depends on pytest.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import secrets
import threading
import time
from dataclasses import dataclass, field

REFRESH_TOKEN_USER = "00000000-0000-0000-0000-000000000000"
ISSUER = "Azure Container Registry"
REPOSITORY_ACTIONS = ("pull", "push", "delete", "metadata_read", "metadata_write")


class Refused(Exception):
    """Credentials the token service does not accept."""


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode("ascii")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


@dataclass(frozen=True)
class Scope:
    """``repository:NAME:a,b`` or ``registry:catalog:*``."""

    type: str
    name: str
    actions: tuple[str, ...]

    @classmethod
    def parse(cls, text: str) -> Scope:
        kind, _, rest = text.partition(":")
        name, _, actions = rest.rpartition(":")
        if not kind or not name:
            raise ValueError(f"not a scope: {text!r}")
        return cls(kind, name, tuple(a for a in actions.split(",") if a))

    def __str__(self) -> str:
        return f"{self.type}:{self.name}:{','.join(self.actions)}"


@dataclass(frozen=True)
class Principal:
    """Who a credential names, and what they may do (None: everything). ``wildcard``: may be
    granted ``repository:*:…`` (an ABAC registry's Entra identities may not: they ask per repository)."""

    subject: str
    repositories: frozenset[str] | None = None
    actions: frozenset[str] | None = None
    catalog: bool = True
    wildcard: bool = True

    def grant(self, scope: Scope) -> Scope | None:
        """The part of ``scope`` this principal is granted (None: nothing)."""
        if scope.type == "registry":
            return scope if scope.name == "catalog" and self.catalog else None
        if scope.type != "repository":
            return None
        if scope.name == "*" and not (self.wildcard and self.repositories is None):
            return None
        if self.repositories is not None and scope.name not in self.repositories:
            return None
        asked = REPOSITORY_ACTIONS if "*" in scope.actions else scope.actions
        allowed = tuple(a for a in asked if a in REPOSITORY_ACTIONS and (self.actions is None or a in self.actions))
        return Scope(scope.type, scope.name, allowed) if allowed else None


@dataclass
class AcrAuth:
    """Credentials, and the tokens issued for them."""

    service: str
    admin_username: str = "regstatacr"
    admin_password: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    entra_token: str = ""
    tenant: str = "72f988bf-0000-4000-8000-00000000c0de"
    token_lifetime: float = 3600.0
    refresh_lifetime: float = 10800.0
    abac: bool = False  # an ABAC registry: Entra identities get no `repository:*` grants
    scoped: dict[str, tuple[str, Principal]] = field(default_factory=dict)
    issued: list[tuple[str, tuple[str, ...]]] = field(default_factory=list)  # (subject, granted scopes)
    _access_ids: set[str] = field(default_factory=set, repr=False)  # every access token's jti
    _expired_ids: set[str] = field(default_factory=set, repr=False)
    _key: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __post_init__(self) -> None:
        if not self.entra_token:
            self.entra_token = self._sign({"aud": "https://containerregistry.azure.net", "tid": self.tenant,
                                           "iss": f"https://sts.windows.net/{self.tenant}/",
                                           "oid": "5f2b0feb-0000-4000-8000-0000000000e1",
                                           "exp": int(time.time()) + 86_400, "kind": "entra"})

    # -- tokens

    def _sign(self, claims: dict[str, object]) -> str:
        head = _b64(json.dumps({"alg": "HS256", "typ": "JWT"}).encode())
        body = _b64(json.dumps(claims, separators=(",", ":")).encode())
        mac = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
        return f"{head}.{body}.{_b64(mac)}"

    def _claims(self, token: str, kind: str) -> dict | None:
        """The claims of a token this service signed, of ``kind``, not expired; else None."""
        try:
            head, body, mac = token.split(".")
            expected = hmac.new(self._key, f"{head}.{body}".encode(), hashlib.sha256).digest()
            if not hmac.compare_digest(expected, _unb64(mac)):
                return None
            claims = json.loads(_unb64(body))
        except (ValueError, TypeError):
            return None
        if claims.get("kind") != kind or claims.get("exp", 0) <= time.time():
            return None
        return claims  # type: ignore[no-any-return]

    def _principal_claims(self, principal: Principal) -> dict[str, object]:
        return {
            "sub": principal.subject,
            "repositories": sorted(principal.repositories) if principal.repositories is not None else None,
            "actions": sorted(principal.actions) if principal.actions is not None else None,
            "catalog": principal.catalog,
            "wildcard": principal.wildcard,
        }

    @staticmethod
    def _principal(claims: dict) -> Principal:
        repositories, actions = claims.get("repositories"), claims.get("actions")
        return Principal(claims["sub"], None if repositories is None else frozenset(repositories),
                         None if actions is None else frozenset(actions), bool(claims.get("catalog", True)),
                         bool(claims.get("wildcard", True)))

    def entra_principal(self) -> Principal:
        return Principal("entra-user", wildcard=not self.abac)

    def refresh_token(self, principal: Principal | None = None) -> str:
        now = int(time.time())
        principal = principal or self.entra_principal()
        claims = {"jti": secrets.token_hex(8), "iat": now, "nbf": now, "exp": now + int(self.refresh_lifetime),
                  "iss": ISSUER, "aud": self.service, "grant_type": "refresh_token", "kind": "refresh",
                  **self._principal_claims(principal)}
        if not principal.wildcard:
            claims["aad_identity"] = {"oid": "5f2b0feb-0000-4000-8000-0000000000e1"}  # how clients spot ABAC
        return self._sign(claims)

    def access_token(self, principal: Principal, scopes: list[Scope]) -> str:
        granted = [g for g in (principal.grant(s) for s in scopes) if g is not None]
        now, jti = time.time(), secrets.token_hex(8)
        claims = {"jti": jti, "iat": int(now), "nbf": int(now), "exp": now + self.token_lifetime,
                  "iss": ISSUER, "aud": self.service, "grant_type": "access_token", "kind": "access",
                  "sub": principal.subject,
                  "access": [{"Type": g.type, "Name": g.name, "Actions": list(g.actions)} for g in granted]}
        with self._lock:
            self.issued.append((principal.subject, tuple(str(g) for g in granted)))
            self._access_ids.add(jti)
        return self._sign(claims)

    def expire_access_tokens(self) -> None:
        """Every access token issued so far expires now (refresh tokens live on), as when their
        lifetime ends mid-run: no waiting, nothing racing."""
        with self._lock:
            self._expired_ids |= self._access_ids

    # -- who is asking

    def add_scoped_token(self, name: str, password: str, repositories: tuple[str, ...] | list[str],
                         actions: tuple[str, ...] | list[str], catalog: bool = False) -> None:
        unknown = set(actions) - set(REPOSITORY_ACTIONS)
        if unknown:
            raise ValueError(f"unknown actions {sorted(unknown)}")
        with self._lock:
            self.scoped[name] = (password, Principal(f"token:{name}", frozenset(repositories),
                                                     frozenset(actions), catalog))

    def basic(self, username: str, password: str) -> Principal:
        """The principal of Basic credentials: admin, a scoped token, or a refresh token."""
        if username == REFRESH_TOKEN_USER:
            return self.from_refresh_token(password)
        if username == self.admin_username and hmac.compare_digest(password, self.admin_password):
            return Principal("admin")
        with self._lock:
            known = self.scoped.get(username)
        if known is not None and hmac.compare_digest(password, known[0]):
            return known[1]
        raise Refused("unknown user name or wrong password")

    def from_refresh_token(self, token: str) -> Principal:
        claims = self._claims(token, "refresh")
        if claims is None:
            raise Refused("refresh token invalid or expired")
        return self._principal(claims)

    def exchange(self, entra_token: str, tenant: str | None) -> str:
        """``/oauth2/exchange``: an Entra access token for an ACR refresh token."""
        if not hmac.compare_digest(entra_token, self.entra_token) or (tenant and tenant != self.tenant):
            raise Refused("the Entra token is not valid for this registry")
        return self.refresh_token(self.entra_principal())

    def access(self, token: str) -> tuple[str, dict[tuple[str, str], set[str]]] | None:
        """An access token's subject and grants ((type, name) -> actions); None if invalid or expired."""
        claims = self._claims(token, "access")
        with self._lock:
            if claims is None or claims["jti"] in self._expired_ids:
                return None
        grants: dict[tuple[str, str], set[str]] = {}
        for entry in claims.get("access") or []:
            grants.setdefault((entry["Type"], entry["Name"]), set()).update(entry["Actions"])
        return claims["sub"], grants
