"""The ACR source (`regstat crawl acr://HOST`) against the ACR stand-in over a real registry.

The stand-in (tests/support/acr_standin.py) serves ACR's data-plane API and token flow in
front of a docker-registry holding the standard scenario: an untagged manifest (apps/web's
old latest), a multi-arch index (tools/cli) and a signature with a `subject` (apps/api).
What the snapshot must hold comes from the scenario's own record (`Expected`) and from what
the tests set in the stand-in (times, locks), never from another regstat crawl, except where
a crawl is the point of comparison (the API source beside it; a faulty crawl beside a clean one).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support.acr_components import AcrStandin, PopulatedAcr
from support.azure_cli import az_calls
from support.components import isolated_env
from support.crawls import REPO_ROOT, read_table, tables
from support.expected import Expected

from regstat.sources.acr.listing import micros

pytestmark = pytest.mark.registry

REFRESH_USER = "00000000-0000-0000-0000-000000000000"


def acr_crawl(
    acr: AcrStandin,
    out: Path,
    *args: str,
    username: str | None = None,
    password: str | None = None,
    env: dict[str, str] | None = None,
    source: str | None = None,
    during: Callable[[], None] | None = None,
) -> subprocess.CompletedProcess[str]:
    """`regstat crawl acr://… --insecure -o OUT ARGS`, the password on stdin, no Docker
    configuration of the machine's. `during`: called while the crawl runs (it waits on a hold)."""
    argv = [sys.executable, "-m", "regstat", "crawl", source or acr.source, "-o", str(out), "--insecure", *args]
    if username is not None:
        argv += ["--username", username, "--password-stdin"]
    extra = {"DOCKER_CONFIG": str(out.parent / "no-docker-config"), **(env or {})}
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          env=isolated_env(extra), cwd=REPO_ROOT) as child:
        assert child.stdin is not None
        child.stdin.write(f"{password}\n" if password is not None else "")
        child.stdin.close()
        child.stdin = None  # written whole: communicate() only reads
        try:
            if during is not None:
                during()
            stdout, stderr = child.communicate(timeout=120)
        finally:
            child.kill()
    return subprocess.CompletedProcess(argv, child.returncode, stdout, stderr)


def admin_crawl(acr: AcrStandin, out: Path, *args: str, env: dict[str, str] | None = None) -> dict[str, Any]:
    result = acr_crawl(acr, out, *args, username=acr.admin_username, password=acr.admin_password, env=env)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "snapshot.json").read_text())


def live(expected: Expected) -> set[tuple[str, str]]:
    return {(m.repository, m.digest) for m in expected.manifests if m.status == "ok"}


@pytest.fixture
def acr(populated_acr: PopulatedAcr) -> tuple[AcrStandin, Expected]:
    """The standard scenario behind a fresh stand-in (times, locks, tokens and faults its own)."""
    return populated_acr.standin, populated_acr.expected


def test_crawl_sees_every_manifest_with_times_then_report_and_plan_run(
    acr: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, expected = acr
    pushed = datetime(2024, 3, 1, 12, 0, 0, 123456, tzinfo=UTC)
    updated = datetime(2024, 5, 2, 8, 30, 0, 654321, tzinfo=UTC)
    tag_updated = datetime(2024, 6, 3, 9, 0, 0, 1, tzinfo=UTC)
    web_old = expected.names["web_old"]
    standin.set_times("apps/web", digest=web_old, created=pushed, updated=updated)
    standin.set_times("apps/web", tag="v2", updated=tag_updated)
    meta = admin_crawl(standin, tmp_path / "snap")

    assert meta["source"]["kind"] == "acr" and meta["source"]["location"] == standin.host
    assert meta["complete"] is True and meta["errors"] == []
    capabilities = meta["capabilities"]
    assert capabilities["untagged_manifests"] is True and capabilities["stored_blob_sizes"] is False
    assert capabilities["push_times"] == "exact" and capabilities["locks"] == "exact"

    manifests = read_table(tmp_path / "snap", "manifests").to_pylist()
    assert {(m["repository"], m["digest"]) for m in manifests} == live(expected)
    assert all(m["status"] == "ok" and m["locked"] is False for m in manifests)
    by_digest = {(m["repository"], m["digest"]): m for m in manifests}
    assert by_digest[("apps/web", web_old)]["pushed_at"] == pushed
    assert by_digest[("apps/web", web_old)]["updated_at"] == updated
    assert all(m["pushed_at"] is not None and m["updated_at"] is not None for m in manifests)

    tags = read_table(tmp_path / "snap", "tags").to_pylist()
    assert {(t["repository"], t["tag"], t["digest"]) for t in tags} == set(expected.tags)
    assert {t["tag"]: t["updated_at"] for t in tags if t["repository"] == "apps/web"}["v2"] == tag_updated
    assert all(t["locked"] is False for t in tags)

    # Index children and the signature's subject are parsed as every source parses them.
    descriptors = read_table(tmp_path / "snap", "descriptors").to_pylist()
    children = {d["digest"] for d in descriptors
                if d["manifest_digest"] == expected.names["cli_index"] and d["role"] == "manifest"}
    assert len(children) == 2 and {("tools/cli", c) in live(expected) for c in children} == {True}
    assert by_digest[("apps/api", expected.names["signature"])]["subject_digest"] == expected.names["api_v1"]

    for argv in (["report", str(tmp_path / "snap")], ["plan-gc", str(tmp_path / "snap"), "--untagged"]):
        done = subprocess.run([sys.executable, "-m", "regstat", *argv], capture_output=True, text=True,
                              env=isolated_env(), cwd=REPO_ROOT, timeout=120)
        assert done.returncode == 0, (argv, done.stderr)
    plan = subprocess.run([sys.executable, "-m", "regstat", "plan-gc", str(tmp_path / "snap"), "--untagged",
                           "--grace", "0s", "-f", "json"], capture_output=True, text=True, env=isolated_env(),
                          cwd=REPO_ROOT, timeout=120)
    assert plan.returncode == 0, plan.stderr
    assert web_old in plan.stdout  # the untagged manifest only ACR's listing shows


def test_the_api_source_on_the_same_content_cannot_see_the_untagged_manifest(
    acr: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, expected = acr
    admin_crawl(standin, tmp_path / "acr")
    # The API source, pointed at the same ACR (its /v2/ and its token service), still works.
    api = acr_crawl(standin, tmp_path / "api", username=standin.admin_username, password=standin.admin_password,
                    source=standin.url)
    assert api.returncode == 0, api.stderr
    assert json.loads((tmp_path / "api" / "snapshot.json").read_text())["source"]["kind"] == "distribution-api"
    acr_manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "acr", "manifests").to_pylist()}
    api_manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "api", "manifests").to_pylist()}
    assert api_manifests < acr_manifests
    assert acr_manifests - api_manifests == {("apps/web", expected.names["web_old"])}
    # What both see, they see alike: descriptors and blobs.
    acr_tables, api_tables = tables(tmp_path / "acr"), tables(tmp_path / "api")
    old = expected.names["web_old"]
    assert [d for d in acr_tables["descriptors"] if d["manifest_digest"] != old] == api_tables["descriptors"]


def test_acr_times_are_read_to_the_microsecond_in_utc() -> None:
    assert micros("2021-07-01T17:08:28.7296443Z") == 1625159308729644
    assert micros("2021-07-01T17:08:28Z") == 1625159308000000
    assert micros("2021-07-01T19:08:28.5+02:00") == 1625159308500000
    assert micros("yesterday") is None and micros(None) is None


def test_pages_of_one_item_give_the_same_snapshot(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, expected = acr
    admin_crawl(standin, tmp_path / "whole")
    before = len(standin.requests)
    admin_crawl(standin, tmp_path / "paged", env={"REGSTAT_PAGE_SIZE": "1"})
    assert tables(tmp_path / "paged") == tables(tmp_path / "whole")
    # Every listing went page by page, following Link: one request per item.
    paged = [(m, p) for m, p, s in standin.requests[before:] if s == 200]
    assert paged.count(("GET", "/acr/v1/_catalog")) == len({r for r, _ in live(expected)}) == 4
    web = len({d for r, d in live(expected) if r == "apps/web"})
    assert paged.count(("GET", "/acr/v1/apps%2Fweb/_manifests")) == web >= 2
    assert paged.count(("GET", "/acr/v1/apps%2Fweb/_tags")) == len({t for t in expected.tags if t[0] == "apps/web"})


def test_locked_tags_manifests_and_repositories_land_in_the_snapshot(
    acr: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, expected = acr
    standin.lock("apps/web", tag="v2", delete=True)
    standin.lock("apps/web", digest=expected.names["web_old"], write=True)
    standin.lock("tools/cli", delete=True)  # the whole repository
    admin_crawl(standin, tmp_path / "snap")
    tags = {(t["repository"], t["tag"]): t["locked"] for t in read_table(tmp_path / "snap", "tags").to_pylist()}
    assert {k for k, v in tags.items() if v} == {("apps/web", "v2")} | {k for k in tags if k[0] == "tools/cli"}
    manifests = read_table(tmp_path / "snap", "manifests").to_pylist()
    locked = {(m["repository"], m["digest"]) for m in manifests if m["locked"]}
    assert locked == {("apps/web", expected.names["web_old"])} | {
        (r, d) for r, d in live(expected) if r == "tools/cli"}


def credential_crawl(standin: AcrStandin, out: Path, *args: str, **kwargs: Any) -> dict[str, Any]:
    result = acr_crawl(standin, out, *args, **kwargs)
    assert result.returncode == 0, result.stderr
    return json.loads((out / "snapshot.json").read_text())


def test_a_refresh_token_and_a_scoped_token_sign_in(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, expected = acr
    meta = credential_crawl(standin, tmp_path / "refresh", username=REFRESH_USER, password=standin.refresh_token())
    assert meta["complete"] is True
    # The refresh token buys access tokens itself (grant_type=refresh_token), one per scope.
    assert standin.count("POST", r"^/oauth2/token$", 200) >= 5
    standin.scoped_token("ci-reader", "ci-reader-password-0123456789", ["apps/web"])
    meta = credential_crawl(standin, tmp_path / "scoped", "-r", "apps/web", username="ci-reader",
                            password="ci-reader-password-0123456789")
    assert meta["partial"] is True and meta["errors"] == []
    manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "scoped", "manifests").to_pylist()}
    assert manifests == {(r, d) for r, d in live(expected) if r == "apps/web"}


def test_what_az_acr_login_stored_is_used_when_nothing_is_given(
    acr: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, expected = acr
    config = tmp_path / "docker"
    config.mkdir()
    pair = base64.b64encode(f"{REFRESH_USER}:{standin.refresh_token()}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {standin.host: {"auth": pair}}}))
    meta = credential_crawl(standin, tmp_path / "snap", env={"DOCKER_CONFIG": str(config)})
    assert meta["complete"] is True
    manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "snap", "manifests").to_pylist()}
    assert manifests == live(expected)
    # With no credentials at all, the refusal says how to give some.
    result = acr_crawl(standin, tmp_path / "anonymous")
    assert result.returncode == 4 and "--azure-credential" in result.stderr and "az acr login" in result.stderr


def test_a_refused_scope_is_recorded_against_its_repository(
    acr: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, _ = acr
    standin.scoped_token("web-only", "web-only-password-0123456789", ["apps/web"], catalog=True)
    result = acr_crawl(standin, tmp_path / "snap", username="web-only", password="web-only-password-0123456789")
    assert result.returncode == 3, result.stderr
    errors = json.loads((tmp_path / "snap" / "snapshot.json").read_text())["errors"]
    assert {e["repository"] for e in errors} == {"apps/api", "base/alpine", "tools/cli"}
    assert {e["kind"] for e in errors} == {"denied"}
    # Without the catalog, the repositories must be named; a wrong password stops at once.
    standin.scoped_token("no-catalog", "no-catalog-password-0123456789", ["apps/web"])
    result = acr_crawl(standin, tmp_path / "none", username="no-catalog", password="no-catalog-password-0123456789")
    assert result.returncode == 4 and "--repository" in result.stderr, result.stderr
    result = acr_crawl(standin, tmp_path / "wrong", username=standin.admin_username, password="not-the-password")
    assert result.returncode == 4 and "az acr login" in result.stderr, result.stderr
    assert not (tmp_path / "wrong").exists()


def at_first_manifest(standin: AcrStandin, act: Callable[[], None]) -> Callable[[], None]:
    """What a crawl runs `during`: hold its first manifest read, `act`, then let it go on."""
    hold = standin.hold("GET", r"^/v2/.+/manifests/sha256:")

    def during() -> None:
        try:
            assert hold.reached.wait(timeout=60), "the crawl never read a manifest"
            act()
        finally:
            hold.release()

    return during


def test_an_expired_token_is_renewed_on_401(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, expected = acr
    result = acr_crawl(standin, tmp_path / "snap", username=standin.admin_username, password=standin.admin_password,
                       during=at_first_manifest(standin, standin.expire_access_tokens))
    assert result.returncode == 0, result.stderr
    assert standin.count("GET", r"^/v2/.+/manifests/", 401) >= 1  # refused, then renewed
    manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "snap", "manifests").to_pylist()}
    assert manifests == live(expected)


def test_an_expired_entra_sign_in_is_exchanged_again(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, expected = acr
    stub = standin.az_stub(tmp_path / "az")

    def expire_every_token() -> None:  # refresh tokens too: the stand-in signs with a new key from now on
        standin.server.auth._key = b"a key no earlier token was signed with"

    result = acr_crawl(standin, tmp_path / "snap", "--azure-credential", "cli",
                       env={"PATH": f"{stub}:{isolated_env()['PATH']}"},
                       during=at_first_manifest(standin, expire_every_token))
    assert result.returncode == 0, result.stderr
    # The refresh token from the first exchange was refused: a second sign-in, and no more.
    assert standin.count("POST", r"^/oauth2/exchange$", 200) == 2 and len(az_calls(stub)) == 2
    manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "snap", "manifests").to_pylist()}
    assert manifests == live(expected)


def test_entra_id_through_the_azure_cli(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, _ = acr
    stub = standin.az_stub(tmp_path / "az")
    path = {"PATH": f"{stub}:{isolated_env()['PATH']}"}
    meta = credential_crawl(standin, tmp_path / "snap", "--azure-credential", "cli", env=path)
    assert meta["complete"] is True
    calls = az_calls(stub)
    assert calls and all(c[:2] == ["account", "get-access-token"] for c in calls)
    assert "https://management.azure.com" in calls[0]
    assert standin.count("POST", r"^/oauth2/exchange$", 200) == 1  # exchanged once, for the whole crawl
    # Not signed in: one line saying so, exit 4, nothing written.
    logged_out = standin.az_stub(tmp_path / "az-out", logged_in=False)
    result = acr_crawl(standin, tmp_path / "out", "--azure-credential", "cli",
                       env={"PATH": f"{logged_out}:{isolated_env()['PATH']}"})
    assert result.returncode == 4 and "sign in with az login" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1, result.stderr  # azure-identity's warnings kept quiet
    assert not (tmp_path / "out").exists()


def test_without_azure_identity_the_error_names_the_extra(acr_standin: AcrStandin, tmp_path: Path) -> None:
    shadow = tmp_path / "shadow"
    (shadow / "azure").mkdir(parents=True)
    (shadow / "azure" / "__init__.py").write_text("")  # a plain package: azure.identity is not in it
    result = acr_crawl(acr_standin, tmp_path / "snap", "--azure-credential", "default",
                       env={"PYTHONPATH": str(shadow)})
    assert result.returncode == 4, result.stderr
    assert "pip install 'regstat[azure]'" in result.stderr and "Traceback" not in result.stderr


def test_a_crawl_under_injected_faults_equals_a_clean_one(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, _ = acr
    admin_crawl(standin, tmp_path / "clean")
    standin.faults(rate=0.2, seed=7, statuses=(429, 503))
    admin_crawl(standin, tmp_path / "faulty", env={"REGSTAT_PAGE_SIZE": "1"})  # more requests, more faults
    faulted = {s for _, _, s in standin.requests if s in (429, 503)}
    assert faulted == {429, 503}
    assert tables(tmp_path / "faulty") == tables(tmp_path / "clean")


def test_429_with_retry_after_is_waited_out(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, expected = acr
    standin.faults(rate=0.3, seed=3, statuses=(429,), retry_after=1)
    meta = admin_crawl(standin, tmp_path / "snap", "-r", "apps/web")
    assert meta["errors"] == [] and standin.count("GET", r".", 429) >= 1
    manifests = {(m["repository"], m["digest"]) for m in read_table(tmp_path / "snap", "manifests").to_pylist()}
    assert manifests == {(r, d) for r, d in live(expected) if r == "apps/web"}
