"""The ``acr_standin`` fixture: an ACR-shaped registry on 127.0.0.1 for the ACR source's tests.

:class:`AcrStandin` is a real docker-registry (``.registry``: push to it directly, without
auth, with the usual helpers) behind ``acr_standin.AcrStandinServer``, which plays ACR's
data-plane API and auth on its own port:

- ``.host`` (``127.0.0.1:PORT``), ``.url``, ``.source`` (``acr://127.0.0.1:PORT``);
- ``.admin_username``/``.admin_password``; ``.scoped_token(name, password, repositories,
  actions)``; ``.refresh_token()`` (as ``az acr login --expose-token`` gives); ``.entra_token``
  and ``.az_stub(directory)`` (a stub ``az`` printing it; put the directory on PATH);
- ``.lock(...)``, ``.set_times(...)``: ACR's changeableAttributes and times;
- ``.token_lifetime`` (seconds; small values force expiry), ``.faults(rate, seed, statuses)``,
  ``.requests`` ((method, path, status) of every request) and ``.count(method, pattern)``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path

import pytest

from .acr_standin import AcrStandinServer
from .acr_state import to_ns
from .azure_cli import write_az_stub
from .components import Registry


class AcrStandin:
    """A registry and the ACR stand-in in front of it; a context manager."""

    def __init__(self, registry: Registry) -> None:
        if registry.root is None:
            raise ValueError("the ACR stand-in reads a filesystem registry's storage tree")
        self.registry = registry
        self.server = AcrStandinServer(registry.url, registry.root)

    def __enter__(self) -> AcrStandin:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
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
        """Write a stub ``az`` printing :attr:`entra_token` into ``directory``; return it."""
        return write_az_stub(directory, self.entra_token, tenant=self.tenant, logged_in=logged_in)

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
