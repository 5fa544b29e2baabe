"""How an S3 crawl lists (a moto_server on loopback, behind tests/support/s3_fault_proxy.py):
blobs/ flat then in StartAfter ranges that together hold every key once, a repository
directory that fits one page in one request, and no read of a revision link without
--verify-links."""

from __future__ import annotations

import itertools
import json
import random
from pathlib import Path

import pytest
from click.testing import CliRunner

from support.components import MotoServer
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_OK
from regstat.sources.storage_tree import jobs as storage_jobs
from regstat.sources.storage_tree.jobs import blob_ranges
from support.s3_fault_proxy import S3FaultProxy

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
PREFIX = "reg"
ROOT = f"{PREFIX}/docker/registry/v2/"
_buckets = itertools.count()


def test_blob_ranges_start_past_the_first_page_and_increase() -> None:
    rng = random.Random(6)
    for _ in range(500):
        hex_ = "".join(rng.choice("0123456789abcdef") for _ in range(64))
        last = f"blobs/sha256/{hex_[:2]}/{hex_}/data"
        bounds = blob_ranges("blobs/sha256", last, rng.choice([1, 10, 1000]))
        assert bounds[0] == last
        assert all(b < c for b, c in itertools.pairwise(bounds))
        assert all(b.startswith("blobs/sha256/") for b in bounds)
        assert len(bounds) <= storage_jobs.MAX_RANGES


def test_blob_ranges_follow_the_key_density() -> None:
    # A first page of 1,000 keys that reached 1/100 of the hex space: ~99,000 keys remain.
    last = "blobs/sha256/02/028f5c28f5c2" + "0" * 52 + "/data"
    bounds = blob_ranges("blobs/sha256", last, 1000)
    assert abs(len(bounds) - 99_000 / storage_jobs.KEYS_PER_RANGE) <= 2
    # Past the last hex digit, or not a blob path: the rest in one range.
    assert blob_ranges("blobs/sha256", "blobs/sha256/zz/stray", 1000) == ["blobs/sha256/zz/stray"]


@pytest.fixture
def sample_bucket(moto_server: MotoServer) -> str:
    name = f"listing-{next(_buckets)}"
    moto_server.upload_tree(name, SAMPLE, PREFIX)
    return name


def crawl(source: str, out: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["crawl", source, "--output", str(out), *args])
    assert result.exit_code == EXIT_OK, result.output
    return json.loads((out / "snapshot.json").read_text())


def stored_blobs(out: Path) -> list[tuple[str, int]]:
    return sorted((r["digest"], r["size"]) for r in digest_ids.read(out, "blobs").to_pylist() if r["stored"])


@pytest.mark.s3
def test_blobs_listed_in_ranges_hold_every_key_once(
    moto_server: MotoServer, sample_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Pages of 3 keys and ranges of ~2: the sample's 29 blobs take many ranges of several
    # pages each, each range's last page running past its end.
    monkeypatch.setattr(storage_jobs, "KEYS_PER_RANGE", 2)
    crawl(str(SAMPLE), tmp_path / "disk")
    with S3FaultProxy(moto_server.endpoint_url, page_size=3) as proxy:
        crawl(f"s3://{sample_bucket}/{PREFIX}", tmp_path / "s3", "--endpoint-url", proxy.endpoint_url)
    ranges = [r for r, _ in proxy.log
              if r.is_listing and r.target == ROOT + "blobs/sha256/" and "start-after" in r.query]
    assert len({r.query["start-after"] for r in ranges}) > 3
    got = stored_blobs(tmp_path / "s3")
    assert got == stored_blobs(tmp_path / "disk")
    assert len({d for d, _ in got}) == len(got) == 29


@pytest.mark.s3
def test_small_tree_requests(moto_server: MotoServer, sample_bucket: str, tmp_path: Path) -> None:
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        meta = crawl(f"s3://{sample_bucket}/{PREFIX}", tmp_path / "snap", "--endpoint-url", proxy.endpoint_url)
    assert meta["complete"] and meta["counts"]["manifests"] > 0
    requests = [r for r, _ in proxy.log]
    listings = [r.target for r in requests if r.is_listing]
    # blobs/sha256/ fits one page: one flat listing, not one per two-hex shard.
    assert listings.count(ROOT + "blobs/sha256/") == 1
    assert not [t for t in listings if t.startswith(ROOT + "blobs/sha256/") and t != ROOT + "blobs/sha256/"]
    # Each top-level repository directory fits one page: one listing each.
    tops = [t for t in listings if t.startswith(ROOT + "repositories/") and t != ROOT + "repositories/"]
    assert tops and len(tops) == len(set(tops))
    # Revision links are checked by their listed size; tag links are read.
    gets = [r.key for r in requests if r.method == "GET" and r.key]
    assert not [k for k in gets if "/_manifests/revisions/" in k]
    assert [k for k in gets if k.endswith("/current/link")]
