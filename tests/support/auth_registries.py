"""Registries with auth serving a populated registry's storage tree (pytest fixtures).

``htpasswd_registry`` (Basic auth, USER and PASSWORD), ``token_server`` (the token realm, which
knows USER) and ``token_registry`` (bearer tokens from it). Module-scoped: a test module
that imports them gets its own.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import pytest

from .api_components import TokenServer, htpasswd_line
from .components import Registry
from .expected import Populated
from .tools import require_tools

USER, PASSWORD = "crawler", "pw-Zq81-never-shown"


@contextlib.contextmanager
def same_storage(
    populated: Populated, workdir: Path, auth: dict[str, object] | None = None, tls: tuple[Path, Path] | None = None
) -> Iterator[Registry]:
    """A second registry process, with auth or TLS, serving the populated registry's storage tree."""
    registry = Registry(root=populated.registry.root, workdir=workdir, auth=auth, tls=tls)
    registry.start()
    try:
        yield registry
    finally:
        registry.stop()


@pytest.fixture(scope="module")
def htpasswd_registry(populated_fs: Populated, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Registry]:
    require_tools("htpasswd")
    workdir = tmp_path_factory.mktemp("htpasswd")
    (workdir / "htpasswd").write_text(htpasswd_line(USER, PASSWORD))
    auth = {"htpasswd": {"realm": "regstat-test", "path": str(workdir / "htpasswd")}}
    with same_storage(populated_fs, workdir, auth) as registry:
        yield registry


@pytest.fixture(scope="module")
def token_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TokenServer]:
    require_tools("openssl")
    with TokenServer(tmp_path_factory.mktemp("token"), {USER: PASSWORD}) as server:
        yield server  # type: ignore[misc]


@pytest.fixture(scope="module")
def token_registry(
    populated_fs: Populated, token_server: TokenServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Registry]:
    storage = tmp_path_factory.mktemp("token-registry")
    with same_storage(populated_fs, storage, token_server.registry_auth()) as registry:
        yield registry
