"""S3 crawls through a fault-injecting proxy in front of the real moto_server (issue 7).

With a seeded fifth of requests faulted (503 SlowDown, resets, bodies cut short, listings cut
mid-XML or shorter but well-formed, slow answers) a crawl gives exactly the tables of a clean
crawl; with faults that never stop for one repository, that repository is recorded incomplete
and everything else is exact; a listing that stays short is an error, never a shorter listing.
"""

from __future__ import annotations

import itertools
import json
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from support.components import MotoServer
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK
from regstat.snapshot import STORED_TABLES, TABLES
from regstat.sources.storage_tree.s3 import page_problem
from support.s3_fault_proxy import FAULTS, S3FaultProxy

pytestmark = pytest.mark.s3

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
PREFIX = "reg"
PAGE_SIZE = 2  # small pages: every listing is several requests, each of which may fail
MIRRORS = ("mirror1", "mirror2")  # scenario_tree's repositories again under these: more requests
_buckets = itertools.count()


def key(path: str) -> str:
    return f"{PREFIX}/docker/registry/v2/{path}"


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer) -> str:
    """the scenario tree under PREFIX/ in a fresh bucket, its repositories also under each of
    MIRRORS (read-only for the tests here)."""
    s3 = moto_server.client("s3")
    name = f"faults-{next(_buckets)}"
    s3.create_bucket(Bucket=name)
    repositories = key("repositories/")
    for path in (SAMPLE / "docker").rglob("*"):
        if path.is_file():
            target, body = f"{PREFIX}/{path.relative_to(SAMPLE)}", path.read_bytes()
            s3.put_object(Bucket=name, Key=target, Body=body)
            if target.startswith(repositories):
                for mirror in MIRRORS:
                    rest = target[len(repositories) :]
                    s3.put_object(Bucket=name, Key=f"{repositories}{mirror}/{rest}", Body=body)
    return name


@pytest.fixture(scope="module")
def clean(moto_server: MotoServer, bucket: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl straight from moto: what every faulted crawl must reproduce."""
    out = tmp_path_factory.mktemp("clean") / "snap"
    code, meta, stderr = crawl(moto_server.endpoint_url, bucket, out)
    assert code == EXIT_OK and meta["complete"], stderr
    return out


def crawl(endpoint: str, bucket: str, out: Path) -> tuple[int, dict, str]:
    args = ["crawl", f"s3://{bucket}/{PREFIX}", "--endpoint-url", endpoint, "--output", str(out)]
    result = CliRunner().invoke(main, args)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return result.exit_code, meta, result.stderr


def tables(out: Path) -> dict[str, list[dict]]:
    """Every table of a snapshot as readers see it (digests as text), whole (times included:
    same bucket, same objects). Not the stored ids: a crawl that saw fewer digests numbers
    them differently."""
    assert {p.name for p in out.iterdir() if p.is_dir()} == set(STORED_TABLES)
    return {name: digest_ids.read(out, name).to_pylist() for name in TABLES}


def without(rows: list[dict], repository: str) -> list[dict]:
    return [r for r in rows if r.get("repository") != repository]


def orphaned(out: Path) -> set[tuple[str, str]]:
    # In a child process: DuckDB and Arrow leave threads behind, and disk crawls fork from here.
    args = [sys.executable, "-m", "regstat", "sql", str(out), "SELECT repository, digest FROM orphaned_manifests",
            "--format", "json"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return {(r["repository"], r["digest"]) for r in json.loads(result.stdout)}


@pytest.mark.parametrize("seed", [7, 8])
def test_a_fifth_of_requests_faulted_gives_the_clean_tables(
    moto_server: MotoServer, bucket: str, clean: Path, tmp_path: Path, seed: int
) -> None:
    with S3FaultProxy(moto_server.endpoint_url, seed=seed, rate=0.2, page_size=PAGE_SIZE, slow_seconds=0.2) as proxy:
        code, meta, stderr = crawl(proxy.endpoint_url, bucket, tmp_path / "snap")
    injected = proxy.faults_injected()
    assert set(injected) == set(FAULTS), injected  # every kind of fault met the crawl
    assert code == EXIT_OK and meta["errors"] == [], stderr
    got, want = tables(tmp_path / "snap"), tables(clean)
    assert got.keys() == want.keys()
    for name in want:
        assert got[name] == want[name], name
    assert meta["counts"] == json.loads((clean / "snapshot.json").read_text())["counts"]


@pytest.mark.parametrize("fault", ["slowdown", "reset", "reset_mid_body"])
def test_faults_that_never_stop_for_one_repository(
    moto_server: MotoServer, bucket: str, clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # what is retried fails fast; the outcome is the same
    with S3FaultProxy(moto_server.endpoint_url, page_size=PAGE_SIZE) as proxy:
        proxy.always = [(key("repositories/apps/web/"), fault)]
        code, meta, _ = crawl(proxy.endpoint_url, bucket, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE and meta["complete"] is False
    assert meta["incomplete_repositories"] == ["apps/web"]
    assert meta["errors"] and {(e["repository"], e["kind"]) for e in meta["errors"]} == {("apps/web", "read_error")}
    got, want = tables(tmp_path / "snap"), tables(clean)
    for name in want:
        assert without(got[name], "apps/web") == without(want[name], "apps/web"), name
    repositories = {r["repository"]: r["complete"] for r in got["repositories"]}
    assert repositories["apps/web"] is False
    # Its tags could not be read, so its manifests look untagged: only where it says so.
    assert {r for r, _ in orphaned(tmp_path / "snap") - orphaned(clean)} <= {"apps/web"}


@pytest.mark.parametrize("fault", ["dropped_entries", "cut_listing"])
def test_a_listing_that_never_succeeds_is_an_error_not_a_shorter_listing(
    moto_server: MotoServer, bucket: str, clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with S3FaultProxy(moto_server.endpoint_url, page_size=PAGE_SIZE) as proxy:
        proxy.always = [(key("repositories/tools/"), fault)]
        code, meta, _ = crawl(proxy.endpoint_url, bucket, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE and meta["complete"] is False
    # The shard's repositories are unknown: the error is the snapshot's, not a repository's.
    errors = [(e["repository"], e["path"], e["kind"]) for e in meta["errors"]]
    assert errors == [(None, "repositories/tools", "read_error")]
    if fault == "dropped_entries":
        assert "KeyCount" in meta["errors"][0]["message"]
    got, want = tables(tmp_path / "snap"), tables(clean)
    assert "tools/cli" not in {r["repository"] for r in got["repositories"]}
    for name in want:
        assert without(got[name], "tools/cli") == without(want[name], "tools/cli"), name


def test_the_blob_listing_never_comes_back_shorter(
    moto_server: MotoServer, bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # A shorter blob listing would make referenced blobs look missing and hide unreferenced ones.
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    with S3FaultProxy(moto_server.endpoint_url, page_size=PAGE_SIZE) as proxy:
        proxy.always = [(key("blobs/"), "dropped_entries")]
        code, meta, _ = crawl(proxy.endpoint_url, bucket, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert meta["errors"] and all(
        e["repository"] is None and e["kind"] == "read_error" and e["path"].startswith("blobs") for e in meta["errors"]
    )


# --- page_problem: the checks that catch a listing page which parses but cannot be right ------


def page(keys: list[str], prefixes: list[str] = (), **extra: object) -> dict:  # type: ignore[assignment]
    body = {"Contents": [{"Key": k} for k in keys], "CommonPrefixes": [{"Prefix": p} for p in prefixes]}
    body["KeyCount"] = len(keys) + len(prefixes)
    return {**body, **extra}


def test_page_problem_accepts_good_pages() -> None:
    assert page_problem(page(["p/a", "p/b"], ["p/c/"]), "p/", "") is None
    assert page_problem(page(["p/c"], IsTruncated=True, NextContinuationToken="t"), "p/", "p/b") is None
    assert page_problem({"KeyCount": 0}, "p/", "") is None
    assert page_problem(page(["p/a"], KeyCount=None), "p/", "") is None  # stores that omit it


@pytest.mark.parametrize(
    "bad, after, why",
    [
        (page(["p/a", "p/b"], KeyCount=3), "", "KeyCount"),
        (page(["p/a"], IsTruncated=True), "", "continuation token"),
        (page(["p/b", "p/a"]), "", "out of order"),
        (page(["p/a"]), "p/a", "does not come after"),  # the same page again
        (page(["q/a"]), "", "outside the prefix"),
        (page([], ["p/b/", "p/a/"]), "", "out of order"),
    ],
)
def test_page_problem_catches_pages_that_parse_but_cannot_be_right(bad: dict, after: str, why: str) -> None:
    problem = page_problem(bad, "p/", after)
    assert problem is not None and why in problem
