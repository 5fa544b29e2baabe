"""The ``acr_standin`` and ``populated_acr`` fixtures: an ACR-shaped registry on 127.0.0.1 for
the ACR source's tests (``acr_standin``: an empty registry of the test's own; ``populated_acr``:
the module's standard scenario, shared, so nothing may be deleted in it).

:class:`AcrStandin` is a real docker-registry (``.registry``: push to it directly, without
auth, with the usual helpers) behind ``acr_standin.AcrStandinServer``, which plays ACR's
data-plane API and auth on its own port:

- ``.host`` (``127.0.0.1:PORT``), ``.url``, ``.source`` (``acr://127.0.0.1:PORT``);
- ``.admin_username``/``.admin_password``; ``.scoped_token(name, password, repositories,
  actions)``; ``.refresh_token()`` (as ``az acr login --expose-token`` gives); ``.entra_token``
  and ``.az_stub(directory)`` (a stub ``az`` printing it; put the directory on PATH);
- ``.lock(...)``, ``.set_times(...)``: ACR's changeableAttributes and times;
- ``.token_lifetime`` (seconds; zero or less: tokens are born expired), ``.expire_access_tokens()``
  (those issued so far, at once: e.g. from a ``hold`` or ``server.intercept``), ``.abac`` (an ABAC
  registry: no ``repository:*`` grants for Entra identities);
- ``.faults(rate, seed, statuses)``, ``.hold(method, pattern, nth)`` (block a request until
  released), ``.requests`` ((method, raw path without query, status) of every request) and
  ``.count(method, pattern)``.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

import pytest

from .acr_standin import AcrStandinServer
from .acr_state import to_ns
from .azure_cli import write_az_stub
from .components import Registry
from .expected import Expected, Populated


@dataclass
class Hold:
    """Requests held by :meth:`AcrStandin.hold`: ``reached`` is set when the first is blocked;
    :meth:`release` lets them (and later ones) through."""

    method: str
    pattern: str
    nth: int
    reached: threading.Event = field(default_factory=threading.Event)
    released: threading.Event = field(default_factory=threading.Event)
    seen: int = 0
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def __call__(self, method: str, path: str) -> None:
        if method != self.method or not re.search(self.pattern, path.partition("?")[0]):
            return None
        with self._lock:
            self.seen += 1
            held = self.seen >= self.nth
        if held and not self.released.is_set():
            self.reached.set()
            self.released.wait(timeout=120)  # a safety net only: the test releases, or stops the server
        return None

    def release(self) -> None:
        self.released.set()


class AcrStandin:
    """A registry and the ACR stand-in in front of it; a context manager."""

    def __init__(self, registry: Registry, *, shared: bool = False) -> None:
        if registry.root is None:
            raise ValueError("the ACR stand-in reads a filesystem registry's storage tree")
        self.registry = registry
        self.server = AcrStandinServer(registry.url, registry.root)
        self.server.shared = shared

    def __enter__(self) -> AcrStandin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if isinstance(self.server.intercept, Hold):
            self.server.intercept.release()
        self.server.stop()

    # -- where

    @property
    def host(self) -> str:
        return self.server.host

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def source(self) -> str:
        return f"acr://{self.host}"

    # -- credentials

    @property
    def admin_username(self) -> str:
        return self.server.auth.admin_username

    @property
    def admin_password(self) -> str:
        return self.server.auth.admin_password

    @property
    def entra_token(self) -> str:
        return self.server.auth.entra_token

    @property
    def tenant(self) -> str:
        return self.server.auth.tenant

    def scoped_token(self, name: str, password: str, repositories: tuple[str, ...] | list[str],
                     actions: tuple[str, ...] | list[str] = ("metadata_read", "pull"), *,
                     catalog: bool = False) -> None:
        """A repository-scoped token (ACR: a token with a scope map). It may list the catalog
        only with ``catalog=True``."""
        self.server.auth.add_scoped_token(name, password, repositories, actions, catalog)

    def refresh_token(self) -> str:
        """An ACR refresh token of an Entra identity allowed everything."""
        return self.server.auth.refresh_token()

    def az_stub(self, directory: Path, *, logged_in: bool = True) -> Path:
        """Write a stub ``az`` printing :attr:`entra_token` into ``directory``; return it.
        ``az acr login --expose-token`` prints a refresh token of this registry."""
        return write_az_stub(directory, self.entra_token, tenant=self.tenant, logged_in=logged_in,
                             acr_refresh_token=self.refresh_token(), login_server=self.host)

    @property
    def abac(self) -> bool:
        """An ABAC registry: Entra identities are granted nothing for ``repository:*``."""
        return self.server.auth.abac

    @abac.setter
    def abac(self, on: bool) -> None:
        self.server.auth.abac = on

    @property
    def token_lifetime(self) -> float:
        return self.server.auth.token_lifetime

    @token_lifetime.setter
    def token_lifetime(self, seconds: float) -> None:
        self.server.auth.token_lifetime = seconds

    def expire_access_tokens(self) -> None:
        """Every access token issued so far is refused from now on (``error="invalid_token"``)."""
        self.server.auth.expire_access_tokens()

    # -- ACR's own metadata

    def lock(self, repository: str, *, tag: str | None = None, digest: str | None = None,
             delete: bool = False, write: bool = False) -> None:
        """``lock(repo, tag=…, delete=True)``: deleteEnabled false (and writeEnabled false with
        ``write=True``); no tag nor digest locks the repository."""
        self.server.state.update(repository, {"deleteEnabled": not delete, "writeEnabled": not write},
                                 tag=tag, digest=digest)

    def set_times(self, repository: str, *, digest: str | None = None, tag: str | None = None,
                  created: datetime | None = None, updated: datetime | None = None) -> None:
        self.server.state.set_times(repository, tag=tag, digest=digest,
                                    created=None if created is None else to_ns(created),
                                    updated=None if updated is None else to_ns(updated))

    # -- faults and counts

    def faults(self, rate: float = 0.2, seed: int = 1, statuses: tuple[int, ...] = (429, 503), *,
               retry_after: int = 0) -> None:
        """Answer a seeded share ``rate`` of requests with one of ``statuses`` (with ``Retry-After``).
        Which ones depends on (seed, method, path and query, how often asked since this call)."""
        self.server.set_faults(rate, seed, statuses, retry_after)

    def hold(self, method: str, pattern: str, nth: int = 1) -> Hold:
        """Block the ``nth`` request (and later ones) of ``method`` whose path matches ``pattern``
        until the returned hold is released: a process is then deterministically mid-way."""
        hold = Hold(method, pattern, nth)
        self.server.intercept = hold
        return hold

    @property
    def requests(self) -> list[tuple[str, str, int]]:
        return list(self.server.requests)

    def count(self, method: str, pattern: str, status: int | None = None) -> int:
        """How many ``method`` requests had a path matching the regular expression ``pattern``."""
        return sum(1 for m, path, s in self.requests
                   if m == method and re.search(pattern, path) and (status is None or s == status))


@pytest.fixture
def acr_standin(make_registry) -> Iterator[AcrStandin]:  # type: ignore[no-untyped-def]
    """An empty filesystem registry behind the ACR stand-in (see :class:`AcrStandin`)."""
    with AcrStandin(make_registry("fs")) as standin:
        yield standin


class PopulatedAcr(NamedTuple):
    standin: AcrStandin
    expected: Expected


@pytest.fixture
def populated_acr(populated_fs: Populated) -> Iterator[PopulatedAcr]:
    """The module's populated registry (the standard scenario, see ``support.scenario``) behind
    a fresh stand-in: no push per test. The registry is shared, so deleting a manifest or a
    repository answers 500 here (use ``acr_standin`` for that); tags deleted through
    ``/acr/v1``, locks, times, tokens and faults are the stand-in's own, per test."""
    with AcrStandin(populated_fs.registry, shared=True) as standin:
        yield PopulatedAcr(standin, populated_fs.expected)
