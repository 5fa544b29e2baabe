"""Shared fixtures: a moto S3 server, docker-registry instances and the standard scenario.

Fixtures (see ``tests/support/components.py`` and ``tests/support/expected.py`` for the
classes they yield):

- ``moto_server`` (session): a :class:`MotoServer`.
- ``make_registry`` (function): a factory ``make_registry(storage="fs"|"s3", schema1=False)``
  starting a :class:`Registry` on empty storage (a fresh directory, or a fresh bucket with
  rootdirectory ``/regroot``); every registry it made is stopped after the test.
- ``registry_fs``, ``registry_s3`` (function): one empty registry of each kind.
- ``populated_fs``, ``populated_s3`` (module): a registry holding the standard scenario and
  its :class:`Expected`, as :class:`Populated`. Read-only: tests must not push to them.
- ``populate``: the scenario function itself, ``populate(registry) -> Expected``.
- ``acr_standin`` (function, from ``tests/support/acr_components.py``): an empty registry behind
  an Azure Container Registry stand-in (ACR's data-plane API and auth), as :class:`AcrStandin`;
  ``populated_acr``: ``populated_fs``'s registry behind a fresh stand-in, with its Expected.

Registry tests are skipped when ``docker-registry``, ``skopeo`` or ``moto_server`` is
missing, except under ``CI=true``, where a missing tool fails them: CI never skips silently.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from support.components import AWS_VARIABLES_TO_DROP, DUMMY_CREDENTIALS, MotoServer, Registry, S3Storage
from support.expected import Expected, Populated
from support.scenario import populate as populate_scenario
from support.tools import require_tools

# Fixtures defined in tests/support/, offered to every test module: a test names them as
# parameters without importing them (an imported fixture reads to pyflakes as a name the
# parameter redefines, F811, which stays on to catch two tests of the same name).
pytest_plugins = ["support.auth_registries", "support.ecr_accounts", "support.acr_components"]


@pytest.fixture(scope="session", autouse=True)
def _no_real_aws_credentials() -> Iterator[None]:
    """Dummy AWS credentials for the whole test process (and what it starts): nothing a
    test does can reach a real account, even by mistake. AWS_CA_BUNDLE goes too: the
    registry's S3 driver panics with it, and moto is plain HTTP anyway."""
    with pytest.MonkeyPatch.context() as mp:
        for name in AWS_VARIABLES_TO_DROP:
            mp.delenv(name, raising=False)
        for name, value in DUMMY_CREDENTIALS.items():
            mp.setenv(name, value)
        mp.setenv("AWS_SHARED_CREDENTIALS_FILE", os.devnull)
        mp.setenv("AWS_CONFIG_FILE", os.devnull)
        mp.setenv("AWS_EC2_METADATA_DISABLED", "true")
        yield


@pytest.fixture(scope="session")
def moto_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    require_tools("moto_server")
    with MotoServer(log_dir=tmp_path_factory.mktemp("moto")) as server:
        yield server


_bucket_numbers = itertools.count()


def _new_bucket(moto: MotoServer) -> str:
    # Unique per pytest process and per use, so tests never see each other's objects.
    return moto.create_bucket(f"regstat-{os.getpid()}-{next(_bucket_numbers)}")


class RegistryFactory:
    """Starts registries on fresh storage under ``base`` and stops them all at the end."""

    def __init__(self, base: Path, get_moto: Callable[[], MotoServer]) -> None:
        self._base = base
        self._get_moto = get_moto
        self._started: list[Registry] = []
        self._numbers = itertools.count()

    def __call__(self, storage: str = "fs", *, schema1: bool = False) -> Registry:
        require_tools("docker-registry", "skopeo")
        workdir = self._base / f"registry-{next(self._numbers)}"
        if storage == "fs":
            registry = Registry(root=workdir / "storage", workdir=workdir, schema1=schema1)
        elif storage == "s3":
            moto = self._get_moto()
            s3 = S3Storage(moto.endpoint_url, _new_bucket(moto), rootdirectory="/regroot")
            registry = Registry(s3=s3, workdir=workdir, schema1=schema1)
        else:
            raise ValueError(f"storage must be 'fs' or 's3', not {storage!r}")
        self._started.append(registry.start())
        return registry

    def stop_all(self) -> None:
        for registry in self._started:
            registry.stop()


@pytest.fixture
def make_registry(tmp_path: Path, request: pytest.FixtureRequest) -> Iterator[RegistryFactory]:
    # moto is started lazily: filesystem-only tests never pay for it.
    factory = RegistryFactory(tmp_path, lambda: request.getfixturevalue("moto_server"))
    yield factory
    factory.stop_all()


@pytest.fixture
def registry_fs(make_registry: RegistryFactory) -> Registry:
    return make_registry("fs")


@pytest.fixture
def registry_s3(make_registry: RegistryFactory) -> Registry:
    return make_registry("s3")


@pytest.fixture(scope="module")
def _module_registries(
    tmp_path_factory: pytest.TempPathFactory, request: pytest.FixtureRequest
) -> Iterator[RegistryFactory]:
    factory = RegistryFactory(
        tmp_path_factory.mktemp("registries"), lambda: request.getfixturevalue("moto_server")
    )
    yield factory
    factory.stop_all()


@pytest.fixture(scope="module")
def populated_fs(_module_registries: RegistryFactory) -> Populated:
    registry = _module_registries("fs")
    return Populated(registry, populate_scenario(registry))


@pytest.fixture(scope="module")
def populated_s3(_module_registries: RegistryFactory) -> Populated:
    registry = _module_registries("s3")
    return Populated(registry, populate_scenario(registry))


@pytest.fixture
def populate() -> Callable[..., Expected]:
    """``populate(registry, schema1=False) -> Expected`` (from tests/support/scenario.py)."""
    return populate_scenario
