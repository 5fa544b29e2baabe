"""`regstat crawl --shard K/N` and `regstat merge` (issue 21): N = 3 shards of a real registry,
crawled through its storage tree on disk, through its API and from S3 (moto), merge into the
snapshot a single crawl writes, table by table; merge refuses shards that are not one crawl's.

Tables are compared with their digests as text (ids mapped back), every column and row
(a multiset); snapshot.json on every key but those that say when and by which regstat the
snapshot was written (`id`, `started_at`, `finished_at`, `regstat_version`).
"""

from __future__ import annotations

import hashlib
import itertools
import json
import shutil
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE
from regstat.shards import Shard, shard_of
from regstat.sources.storage_tree import jobs as storage_jobs
from regstat.snapshot import STORED_TABLES, digest_ids
from support import images
from support.acr_components import PopulatedAcr
from support.components import REGION, MotoServer
from support.ecr_accounts import Account, push_scenario
from support.crawls import REPO_ROOT
from support.expected import Populated
from support.s3_fault_proxy import S3FaultProxy
from support.scenario import standard_scenario

N = 3
SCENARIO = REPO_ROOT / "tests" / "scenario_tree"
WHEN = ("id", "started_at", "finished_at", "regstat_version")
_buckets = itertools.count()


def run(*argv: str, code: int = EXIT_OK, stdin: str | None = None) -> str:
    result = CliRunner().invoke(main, list(argv), input=stdin)
    assert result.exit_code == code, f"exit {result.exit_code}, not {code}:\n{result.output}"
    return result.output


def crawl_shards(source: str, directory: Path, *args: str, code: int = EXIT_OK, stdin: str | None = None) -> list[Path]:
    shards = [directory / str(k) for k in range(1, N + 1)]
    for k, out in enumerate(shards, 1):
        run("crawl", source, "-o", str(out), "--shard", f"{k}/{N}", "-q", *args, code=code, stdin=stdin)
    return shards


def meta(snapshot: Path) -> dict[str, Any]:
    return json.loads((snapshot / "snapshot.json").read_text())


def table(snapshot: Path, name: str) -> list[tuple]:
    rows = digest_ids.read(snapshot, name).to_pylist()
    return sorted((tuple(r.values()) for r in rows), key=repr)


def assert_same_snapshot(single: Path, merged: Path) -> None:
    for name in STORED_TABLES:
        assert table(merged, name) == table(single, name), f"table {name} differs"
        # Ids numbered again over every shard's digests: the stored tables are one crawl's.
        assert pq.read_table(merged / name).to_pylist() == pq.read_table(single / name).to_pylist(), name
    one, joined = meta(single), meta(merged)
    assert {k: v for k, v in joined.items() if k not in WHEN} == {k: v for k, v in one.items() if k not in WHEN}


def crawl_and_merge(
    source: str, tmp_path: Path, *args: str, code: int = EXIT_OK, stdin: str | None = None
) -> tuple[Path, Path, list[Path]]:
    single, merged = tmp_path / "single", tmp_path / "merged"
    run("crawl", source, "-o", str(single), "-q", *args, code=code, stdin=stdin)
    shards = crawl_shards(source, tmp_path / "shards", *args, code=code, stdin=stdin)
    run("merge", *map(str, reversed(shards)), "-o", str(merged), "-q", code=code)
    assert_same_snapshot(single, merged)
    return single, merged, shards


def stored_in(snapshot: Path) -> set[str]:
    return {r["digest"] for r in digest_ids.read(snapshot, "blobs").to_pylist() if r["stored"]}


# --- the hash and the ranges --------------------------------------------------------------


def test_a_repository_is_in_one_shard_by_a_hash_of_its_name() -> None:
    names = [f"team-{i}/app" for i in range(300)] + ["", "ünïcode/x", "a" * 255]
    for count in (1, 2, 3, 7):
        for name in names:
            holders = [k for k in range(1, count + 1) if Shard(k, count).holds(name)]
            assert holders == [shard_of(name, count)]
    # The documented hash (docs/scale.md), whatever the machine or the Python: SHA-256 of the
    # UTF-8 name, its first 8 bytes big-endian, modulo N.
    digest = hashlib.sha256(b"apps/api").digest()
    assert shard_of("apps/api", 5) == int.from_bytes(digest[:8], "big") % 5 + 1
    assert sorted({shard_of(n, 3) for n in names}) == [1, 2, 3]


@pytest.mark.parametrize("count", [1, 2, 3, 16, 255, 256])
def test_blob_prefix_ranges_give_every_path_to_one_shard(count: int) -> None:
    prefix = "blobs/sha256"
    paths = [f"{prefix}/{i:02x}" for i in range(256)] + [f"{prefix}/{i:02x}/{i:02x}{'0' * 62}/data" for i in range(256)]
    paths += [f"{prefix}/zz", f"{prefix}/-", f"{prefix}/A0", f"{prefix}"]
    owners = {p: [k for k in range(1, count + 1) if Shard(k, count).holds_path(prefix, p)] for p in paths}
    assert all(len(o) == 1 for o in owners.values()), [p for p, o in owners.items() if len(o) != 1]
    # Contiguous: the prefix directories of shard K follow those of shard K - 1.
    firsts = [owners[f"{prefix}/{i:02x}"][0] for i in range(256)]
    assert firsts == sorted(firsts) and set(firsts) == set(range(1, count + 1))
    assert all(owners[f"{prefix}/{i:02x}/{i:02x}{'0' * 62}/data"] == owners[f"{prefix}/{i:02x}"] for i in range(256))


@pytest.mark.parametrize("text", ["0/3", "4/3", "3", "1/0", "a/b", "1/257"])
def test_crawl_refuses_a_shard_that_is_not_k_of_n(text: str, tmp_path: Path) -> None:
    out = run("crawl", str(SCENARIO), "-o", str(tmp_path / "s"), "--shard", text, code=EXIT_USAGE)
    assert "--shard" in out
    assert not (tmp_path / "s").exists()


def test_a_shard_is_not_written_into_a_history(tmp_path: Path) -> None:
    out = run("crawl", str(SCENARIO), "--into", str(tmp_path / "history"), "--shard", "1/3", code=EXIT_USAGE)
    assert "a history holds whole snapshots" in out
    assert not (tmp_path / "history").exists()


# --- shards merged equal one crawl --------------------------------------------------------


@pytest.mark.registry
def test_sharded_storage_tree_merges_into_the_single_crawl(populated_fs: Populated, tmp_path: Path) -> None:
    source = populated_fs.registry.source
    _, merged, shards = crawl_and_merge(source, tmp_path)
    metas = [meta(s) for s in shards]
    # Every shard holds a repository, and lists a part of blobs/; alone, each is partial and
    # cannot see which blobs nothing references; merged, the snapshot is complete and can.
    assert all(m["counts"]["repositories"] > 0 for m in metas)
    assert all(m["shard"]["count"] == N for m in metas) and sorted(m["shard"]["index"] for m in metas) == [1, 2, 3]
    assert all(m["partial"] and not m["complete"] and not m["capabilities"]["unreferenced_blobs"] for m in metas)
    assert all(m["source_repositories"] == meta(merged)["source_repositories"] for m in metas)
    listed = [stored_in(s) for s in shards]
    assert all(listed) and sum(map(len, listed)) == len(stored_in(merged))
    # A blob a shard's manifests name is stored in another shard's range: that shard named it
    # unstored, and the merged snapshot has it stored once.
    named_elsewhere = {r["digest"] for r in digest_ids.read(shards[0], "blobs").to_pylist() if not r["stored"]}
    assert named_elsewhere & stored_in(merged)
    m = meta(merged)
    assert m["complete"] and "shard" not in m and m["capabilities"]["unreferenced_blobs"]


@pytest.mark.registry
def test_sharded_registry_api_crawl_merges_into_the_single_crawl(populated_fs: Populated, tmp_path: Path) -> None:
    _, merged, shards = crawl_and_merge(populated_fs.registry.url, tmp_path, "--insecure")
    assert all(meta(s)["counts"]["repositories"] > 0 for s in shards)
    assert meta(merged)["source"]["kind"] == "distribution-api" and meta(merged)["complete"]


@pytest.mark.s3
def test_sharded_s3_tree_merges_into_the_single_crawl(
    moto_server: MotoServer, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 3 keys and ranges of ~2: a shard's blob range is listed in several ranges of
    # several pages, the last page of each running past its end.
    monkeypatch.setattr(storage_jobs, "KEYS_PER_RANGE", 2)
    bucket = f"shards-{next(_buckets)}"
    moto_server.upload_tree(bucket, SCENARIO, "reg")
    source = f"s3://{bucket}/reg"
    single = tmp_path / "single"
    with S3FaultProxy(moto_server.endpoint_url, page_size=3) as proxy:
        run("crawl", source, "-o", str(single), "-q", "--endpoint-url", proxy.endpoint_url)
        proxy.log.clear()  # the shards' requests only
        shards = crawl_shards(source, tmp_path / "shards", "--endpoint-url", proxy.endpoint_url)
    run("merge", *map(str, shards), "-o", str(tmp_path / "merged"), "-q")
    assert_same_snapshot(single, tmp_path / "merged")
    assert all(stored_in(s) for s in shards)
    starts = {r.query["start-after"] for r, _ in proxy.log
              if r.is_listing and r.target == "reg/docker/registry/v2/blobs/sha256/" and "start-after" in r.query}
    assert len(starts) > 2 * N, starts  # ranges within shards, not one chain of pages each
    merged = tmp_path / "merged"
    assert meta(merged)["source"]["driver"] == "s3"


@pytest.mark.s3
def test_sharded_ecr_crawl_merges_into_the_single_crawl(account: Account, tmp_path: Path) -> None:
    push_scenario(account)
    _, merged, shards = crawl_and_merge(f"ecr://{REGION}", tmp_path)
    assert all(meta(s)["counts"]["repositories"] > 0 for s in shards)
    assert meta(merged)["source"]["kind"] == "ecr"


@pytest.mark.registry
def test_sharded_acr_crawl_merges_into_the_single_crawl(
    populated_acr: PopulatedAcr, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    standin = populated_acr.standin
    login = ("--insecure", "--username", standin.admin_username, "--password-stdin")
    _, merged, _ = crawl_and_merge(standin.source, tmp_path, *login, stdin=standin.admin_password + "\n")
    assert meta(merged)["source"]["kind"] == "acr" and meta(merged)["complete"]


def test_sharded_oci_layout_is_listed_by_its_repositorys_shard(tmp_path: Path) -> None:
    scenario = standard_scenario()
    layout = images.write_oci_layout(tmp_path / "layout", {"alpine": scenario.alpine, "cli": scenario.cli_index})
    _, merged, shards = crawl_and_merge(f"oci:{layout}", tmp_path)
    home = shard_of("layout", N)
    assert [bool(stored_in(s)) for s in shards] == [k == home for k in range(1, N + 1)]
    assert [meta(s)["counts"]["repositories"] for s in shards] == [int(k == home) for k in range(1, N + 1)]
    assert meta(merged)["complete"]


def test_errors_of_every_shard_are_merged_once(tmp_path: Path) -> None:
    tree = tmp_path / "tree"
    shutil.copytree(SCENARIO, tree, symlinks=True)
    v2 = tree / "docker" / "registry" / "v2"
    (v2 / "blobs" / "stray").write_text("not a blob")  # every shard lists the top of blobs/
    tag = next((v2 / "repositories" / "base" / "alpine" / "_manifests" / "tags").iterdir())
    (tag / "current" / "link").write_text("sha256:nothing")  # one shard's repository
    _, merged, shards = crawl_and_merge(str(tree), tmp_path, code=EXIT_INCOMPLETE)
    errors = meta(merged)["errors"]
    assert {e["kind"] for e in errors} >= {"outside_layout", "bad_link"}
    assert all(any(e["path"].endswith("blobs/stray") for e in meta(s)["errors"]) for s in shards)
    assert meta(merged)["incomplete_repositories"] == ["base/alpine"] and not meta(merged)["complete"]


def test_schema1_layers_are_sized_from_the_shard_that_listed_their_blobs(tmp_path: Path) -> None:
    """A schema 1 manifest's layers carry no size: a crawl takes the stored blob's. In a shard,
    the blob may be in another shard's blobs/ range; the merge sizes it from there."""
    tree = tmp_path / "tree"
    shutil.copytree(SCENARIO, tree, symlinks=True)
    v2 = tree / "docker" / "registry" / "v2"
    layers = sorted(p.parent.name for p in (v2 / "blobs" / "sha256").glob("*/*/data"))
    by_shard = {k: [h for h in layers if Shard(k, N).holds_path("blobs/sha256", f"blobs/sha256/{h[:2]}")]
                for k in range(1, N + 1)}
    repository = "base/alpine"
    home = shard_of(repository, N)
    elsewhere = [h for k, hs in by_shard.items() if k != home for h in hs[:1]]
    body = json.dumps({"schemaVersion": 1, "name": repository, "tag": "old", "architecture": "amd64",
                       "fsLayers": [{"blobSum": f"sha256:{h}"} for h in elsewhere]}).encode()
    hex_ = hashlib.sha256(body).hexdigest()
    (v2 / "blobs" / "sha256" / hex_[:2] / hex_).mkdir(parents=True)
    (v2 / "blobs" / "sha256" / hex_[:2] / hex_ / "data").write_bytes(body)
    revision = v2 / "repositories" / repository / "_manifests" / "revisions" / "sha256" / hex_
    revision.mkdir(parents=True)
    (revision / "link").write_text(f"sha256:{hex_}")
    _, merged, shards = crawl_and_merge(str(tree), tmp_path)
    unsized = [r for r in digest_ids.read(shards[home - 1], "descriptors").to_pylist()
               if r["manifest_digest"] == f"sha256:{hex_}"]
    assert len(unsized) == len(elsewhere) >= 2 and all(r["size"] is None for r in unsized)
    sized = [r for r in digest_ids.read(merged, "descriptors").to_pylist() if r["manifest_digest"] == f"sha256:{hex_}"]
    assert all(r["size"] is not None for r in sized) and len(sized) == len(elsewhere)


# --- what merge refuses -------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario_shards(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    return crawl_shards(str(SCENARIO), tmp_path_factory.mktemp("shards"))


def test_merge_reads_a_directory_of_shards(scenario_shards: list[Path], tmp_path: Path) -> None:
    single = tmp_path / "single"
    run("crawl", str(SCENARIO), "-o", str(single), "-q")
    run("merge", str(scenario_shards[0].parent), "-o", str(tmp_path / "merged"), "-q")
    assert_same_snapshot(single, tmp_path / "merged")


def refused(*inputs: Path, out: Path, says: str) -> None:
    output = run("merge", *map(str, inputs), "-o", str(out), code=EXIT_SNAPSHOT)
    assert says in output and output.count("\n") == 1, output
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*"))


def test_merge_refuses_shards_that_are_not_one_crawls(scenario_shards: list[Path], tmp_path: Path) -> None:
    one, two, three = scenario_shards
    out = tmp_path / "merged"
    refused(one, two, out=out, says="shard 3/3 missing")
    refused(one, two, two, three, out=out, says="shard 2/3 given twice")
    other = tmp_path / "other"
    run("crawl", str(REPO_ROOT / "sample_data"), "-o", str(other), "--shard", "3/3", "-q")
    refused(one, two, other, out=out, says="shards of different sources")
    halves = tmp_path / "half"
    run("crawl", str(SCENARIO), "-o", str(halves), "--shard", "2/2", "-q")
    refused(one, halves, out=out, says="shard of 2")
    whole = tmp_path / "whole"
    run("crawl", str(SCENARIO), "-o", str(whole), "-q")
    refused(one, two, three, whole, out=out, says="not a shard")
    filtered = tmp_path / "filtered"
    run("crawl", str(SCENARIO), "-o", str(filtered), "--shard", "3/3", "-r", "apps/*", "-q")
    refused(one, two, filtered, out=out, says="different --repository")
    older = tmp_path / "older"
    shutil.copytree(three, older)
    doc = meta(older) | {"schema_version": 4}
    (older / "snapshot.json").write_text(json.dumps(doc))
    refused(one, two, older, out=out, says="schema version 4")
