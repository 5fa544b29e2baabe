"""Incremental crawls (`crawl --previous SNAP`, issue 19): manifests an earlier snapshot of the
same source parsed are not read again, listings always are, and the snapshot equals a fresh
crawl's of the same registry state, table for table.

Reads are counted where they happen, at a proxy in front of the real component: GETs of
manifest blobs' `data` objects in front of moto (S3), GETs of `/v2/<name>/manifests/<digest>`
in front of docker-registry (the API). On disk, the --json counts and the tables are checked.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SNAPSHOT
from regstat.snapshot import digest_ids
from support.components import MotoServer, Registry, isolated_env
from support.crawls import assert_same_tables, json_crawl as crawl
from support.s3_fault_proxy import S3FaultProxy, S3Request

SCENARIO = Path(__file__).resolve().parent / "scenario_tree"
NAMES = json.loads((SCENARIO / "EXPECTED.json").read_text())["names"]
V2 = "docker/registry/v2"
REPO_ROOT = Path(__file__).resolve().parent.parent


# --- the registry states, as a registry's own writes leave its storage tree ------------------------


def write(root: Path, path: str, data: bytes) -> None:
    target = root / V2 / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_bytes(data)


def blob_path(digest: str) -> str:
    hex_ = digest.split(":", 1)[1]
    return f"blobs/sha256/{hex_[:2]}/{hex_}/data"


def push_changed_manifest(root: Path) -> str:
    """A new manifest in apps/web (web_new's with one annotation more), tag v2 moved to it."""
    body = json.loads((root / V2 / blob_path(NAMES["web_new"])).read_bytes())
    body["annotations"] = {**body.get("annotations", {}), "org.example.rebuilt": "1"}
    data = json.dumps(body, indent=3).encode()
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    hex_ = digest.split(":", 1)[1]
    write(root, blob_path(digest), data)
    manifests = "repositories/apps/web/_manifests"
    write(root, f"{manifests}/revisions/sha256/{hex_}/link", digest.encode())
    write(root, f"{manifests}/tags/v2/index/sha256/{hex_}/link", digest.encode())
    write(root, f"{manifests}/tags/v2/current/link", digest.encode())
    return digest


def move_tag(root: Path) -> None:
    """apps/web:latest moved to web_old, a manifest the repository holds."""
    write(root, "repositories/apps/web/_manifests/tags/latest/current/link", NAMES["web_old"].encode())


def delete_blob(root: Path) -> None:
    """web_old's blob data gone, its revision link still there (missing_blob)."""
    (root / V2 / blob_path(NAMES["web_old"])).unlink()


def delete_manifest(root: Path) -> None:
    """web_old deleted from apps/web as the registry does: its revision link and its tags."""
    manifests = root / V2 / "repositories/apps/web/_manifests"
    shutil.rmtree(manifests / "revisions/sha256" / NAMES["web_old"].split(":", 1)[1])
    for current in manifests.glob("tags/*/current/link"):
        if current.read_text().strip() == NAMES["web_old"]:
            shutil.rmtree(current.parent.parent)


STATES: dict[str, tuple[Callable[[Path], object], int]] = {  # change, manifests read again
    "unchanged": (lambda root: None, 0),
    "manifest_changed": (push_changed_manifest, 1),
    "tag_moved": (move_tag, 0),
    "blob_deleted": (delete_blob, 1),  # reused no more: read, and found missing
    "manifest_deleted": (delete_manifest, 0),
}


@pytest.fixture(scope="module")
def first(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, dict[str, Any]]:
    """The scenario tree's first crawl: (a copy of the tree, its snapshot, --json summary)."""
    base = tmp_path_factory.mktemp("incremental")
    tree = base / "tree"
    shutil.copytree(SCENARIO / "docker", tree / "docker")
    code, summary, stderr = crawl(str(tree), base / "first")
    assert code == EXIT_OK, stderr
    return tree, base / "first", summary


@pytest.mark.parametrize("state", list(STATES))
def test_incremental_crawl_equals_a_fresh_one(state: str, tmp_path: Path) -> None:
    now = tmp_path / "tree"
    shutil.copytree(SCENARIO / "docker", now / "docker")
    previous = tmp_path / "first"
    code, summary, stderr = crawl(str(now), previous)
    assert code == EXIT_OK, stderr
    assert summary["manifests_reused"] == 0 and summary["manifests_read"] == len(manifest_digests(previous))
    change, read = STATES[state]
    change(now)
    code, incremental, stderr = crawl(str(now), tmp_path / "incremental", "--previous", str(previous))
    fresh_code, fresh, _ = crawl(str(now), tmp_path / "fresh")
    assert code == fresh_code, stderr
    assert "warning" not in stderr
    assert incremental["manifests_read"] == read
    assert incremental["manifests_reused"] == fresh["manifests_read"] - read
    assert_same_tables(tmp_path / "incremental", tmp_path / "fresh")
    if state == "blob_deleted":
        assert code == EXIT_INCOMPLETE
        kinds = {(e["kind"], e["repository"]) for e in json.loads((tmp_path / "incremental/snapshot.json")
                                                                   .read_text())["errors"]}
        assert ("missing_blob", "apps/web") in kinds


# --- previous snapshots that are not trusted ------------------------------------------------------


def damage_manifests(snapshot: Path) -> None:
    for part in (snapshot / "manifests").glob("*.parquet"):
        part.write_bytes(b"PAR1 not parquet PAR1")


def other_schema(snapshot: Path) -> None:
    meta = json.loads((snapshot / "snapshot.json").read_text())
    meta["schema_version"] = 4
    (snapshot / "snapshot.json").write_text(json.dumps(meta))


def other_source(snapshot: Path) -> None:
    meta = json.loads((snapshot / "snapshot.json").read_text())
    meta["source"]["location"] = "/elsewhere"
    (snapshot / "snapshot.json").write_text(json.dumps(meta))


def no_snapshot(snapshot: Path) -> None:
    (snapshot / "snapshot.json").unlink()


@pytest.mark.parametrize("spoil", [damage_manifests, other_schema, other_source, no_snapshot])
def test_an_untrusted_previous_snapshot_is_ignored_with_a_warning(
    spoil: Callable[[Path], None], first, tmp_path: Path
) -> None:
    tree, previous, summary = first
    spoiled = tmp_path / "previous"
    shutil.copytree(previous, spoiled)
    spoil(spoiled)
    code, incremental, stderr = crawl(str(tree), tmp_path / "snap", "--previous", str(spoiled))
    assert code == EXIT_OK, stderr
    warnings = [line for line in stderr.splitlines() if "warning" in line]
    assert len(warnings) == 1 and "--previous ignored" in warnings[0] and str(spoiled) in warnings[0], stderr
    assert incremental["manifests_reused"] == 0
    assert incremental["manifests_read"] == summary["manifests_read"]
    assert_same_tables(tmp_path / "snap", previous)


# --- S3: manifest bodies read, counted at a proxy in front of moto -----------------------------------

PREFIX = "reg"


@pytest.fixture
def bucket(moto_server: MotoServer, request: pytest.FixtureRequest) -> str:
    s3 = moto_server.client("s3")
    name = f"incremental-{request.node.name.lower().replace('_', '-')[:40]}-{os.getpid()}"
    s3.create_bucket(Bucket=name)
    for path in (SCENARIO / "docker").rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=name, Key=f"{PREFIX}/{path.relative_to(SCENARIO)}", Body=path.read_bytes())
    return name


def push_changed_to_bucket(s3: Any, bucket: str, local: Path) -> str:
    """push_changed_manifest on a copy of the scenario tree, its new and changed files put in the bucket."""
    shutil.copytree(SCENARIO / "docker", local / "docker")
    digest = push_changed_manifest(local)
    for path in (local / "docker").rglob("*"):
        original = SCENARIO / path.relative_to(local)
        if path.is_file() and (not original.exists() or original.read_bytes() != path.read_bytes()):
            s3.put_object(Bucket=bucket, Key=f"{PREFIX}/{path.relative_to(local)}", Body=path.read_bytes())
    return digest


def manifest_gets(proxy: S3FaultProxy, manifests: set[str]) -> list[str]:
    """The digests of the manifest blobs whose `data` the crawls GET through the proxy so far."""
    got = []
    for request, _ in proxy.log:
        if request.method == "GET" and request.key and request.key.endswith("/data") and "/blobs/" in request.key:
            digest = "sha256:" + request.key.rsplit("/", 2)[-2]
            if digest in manifests:
                got.append(digest)
    return got


def manifest_digests(snapshot: Path) -> set[str]:
    return {r["digest"] for r in digest_ids.read(snapshot, "manifests").to_pylist()}


@pytest.mark.s3
def test_s3_second_crawl_reads_no_manifest_then_only_the_changed_one(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    s3 = moto_server.client("s3")
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        source, endpoint = f"s3://{bucket}/{PREFIX}", ("--endpoint-url", proxy.url)
        code, summary, stderr = crawl(source, tmp_path / "first", *endpoint)
        assert code == EXIT_OK, stderr
        manifests = manifest_digests(tmp_path / "first")
        assert sorted(manifest_gets(proxy, manifests)) == sorted(manifests)  # the proxy sees the reads
        proxy.log.clear()
        code, summary, stderr = crawl(source, tmp_path / "second", *endpoint, "--previous", str(tmp_path / "first"))
        assert code == EXIT_OK, stderr
        assert manifest_gets(proxy, manifests) == [] and summary["manifests_read"] == 0
        assert summary["manifests_reused"] == len(manifests)
        assert any(r.is_listing for r, _ in proxy.log)  # listings are read fresh

        # One manifest changes: that one is read, and nothing else.
        digest = push_changed_to_bucket(s3, bucket, tmp_path / "tree")
        proxy.log.clear()
        code, summary, stderr = crawl(source, tmp_path / "third", *endpoint, "--previous", str(tmp_path / "second"))
        assert code == EXIT_OK, stderr
        assert manifest_gets(proxy, manifests | {digest}) == [digest] and summary["manifests_read"] == 1
        code, _, stderr = crawl(source, tmp_path / "fresh", *endpoint)
        assert code == EXIT_OK, stderr
        assert_same_tables(tmp_path / "third", tmp_path / "fresh")


# --- --resume with --previous: the crawl killed while a proxy holds a manifest's read ------------------


def wait_for(condition: Callable[[], bool], what: str, timeout: float = 90) -> None:
    """A safety net only: the condition comes true while the proxy holds a request."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def journaled_reused_parts(output: Path) -> bool:
    for partial in output.parent.glob(f".{output.name}.regstat-partial-*"):
        for checkpoint in (partial / "_staging/journal").glob("*.json"):
            if json.loads(checkpoint.read_text()).get("parts", {}).get("reused_manifests"):
                return True
    return False


@pytest.mark.s3
def test_resume_with_previous(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    s3 = moto_server.client("s3")
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        source, endpoint = f"s3://{bucket}/{PREFIX}", ["--endpoint-url", proxy.url]
        code, _, stderr = crawl(source, tmp_path / "first", *endpoint)
        assert code == EXIT_OK, stderr
        # web_old's blob vanishes: the previous snapshot's manifest is not confirmed by the listing, so
        # the crawl reads it once every listing is done and the others are reused. That read is
        # held until the crawl is killed.
        hex_ = NAMES["web_old"].split(":", 1)[1]
        s3.delete_object(Bucket=bucket, Key=f"{PREFIX}/{V2}/{blob_path(NAMES['web_old'])}")
        held, release = threading.Event(), threading.Event()

        def hold(request: S3Request) -> None:
            if request.method == "GET" and request.key and hex_ in request.key and request.key.endswith("/data"):
                held.set()
                release.wait(120)

        proxy.before = hold
        out = tmp_path / "second"
        argv = [sys.executable, "-m", "regstat", "crawl", source, *endpoint, "-o", str(out),
                "--previous", str(tmp_path / "first")]
        env = isolated_env({"REGSTAT_CHECKPOINT_SECONDS": "0"})
        process = subprocess.Popen(argv, env=env, cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
        try:
            wait_for(held.is_set, "the held read")
            wait_for(lambda: journaled_reused_parts(out), "a checkpoint naming the reused manifests")
            assert process.poll() is None  # it cannot finish: its read is held
            process.send_signal(signal.SIGKILL)
            process.wait(60)
        finally:
            if process.poll() is None:
                process.kill()
            release.set()
            proxy.before = None
        assert not out.exists()

        # --resume needs the same --previous; with it, the crawl finishes as a fresh one would.
        code, _, stderr = crawl(source, out, *endpoint, "--resume")
        assert code == EXIT_SNAPSHOT and "previous" in stderr, stderr
        proxy.log.clear()
        code, summary, stderr = crawl(source, out, *endpoint, "--resume", "--previous", str(tmp_path / "first"))
        assert code == EXIT_INCOMPLETE, stderr  # web_old's blob is missing
        assert manifest_gets(proxy, manifest_digests(tmp_path / "first")) == [NAMES["web_old"]]
        assert summary["resumed_at"] and summary["manifests_read"] == 1
        code, _, stderr = crawl(source, tmp_path / "fresh", *endpoint)
        assert code == EXIT_INCOMPLETE, stderr
        assert_same_tables(out, tmp_path / "fresh")


# --- the registry API: GETs of manifests by digest, counted at a proxy ---------------------------------


@pytest.mark.registry
def test_api_second_crawl_gets_no_manifest(populated_fs, tmp_path: Path) -> None:
    from support.api_components import FaultProxy

    registry: Registry = populated_fs.registry
    with FaultProxy(registry.url) as proxy:
        code, summary, stderr = crawl(proxy.url, tmp_path / "first")
        assert code in (EXIT_OK, EXIT_INCOMPLETE), stderr

        def gets() -> int:
            return sum(1 for method, path, _ in proxy.log if method == "GET" and "/manifests/sha256:" in path)

        assert gets() > 0 and summary["manifests_read"] > 0
        proxy.log.clear()
        code2, second, stderr = crawl(proxy.url, tmp_path / "second", "--previous", str(tmp_path / "first"))
        assert code2 == code, stderr
        assert gets() == 0 and second["manifests_read"] == 0
        assert second["manifests_reused"] == summary["manifests_read"]
        assert any(method == "HEAD" for method, _, _ in proxy.log)  # tags are resolved fresh
        assert_same_tables(tmp_path / "second", tmp_path / "first")

