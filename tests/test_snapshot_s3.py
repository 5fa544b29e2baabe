"""Snapshots written to and read from S3 (moto_server): `crawl -o s3://`, `merge -o s3://` and
every command reading `s3://BUCKET/PREFIX` as SNAPSHOT (issue 21). S3 has no rename: the
upload puts `snapshot.json` last, and a prefix without it is refused by readers."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_SNAPSHOT
from regstat.snapshot import STORED_TABLES, digest_ids
from regstat.snapshot.object_store import download_snapshot
from support.components import MotoServer
from support.crawls import REPO_ROOT
from support.s3_fault_proxy import S3FaultProxy

pytestmark = pytest.mark.s3

SCENARIO = REPO_ROOT / "tests" / "scenario_tree"
_buckets = itertools.count()


def run(*argv: str, code: int = EXIT_OK) -> str:
    result = CliRunner().invoke(main, list(argv))
    assert result.exit_code == code, f"exit {result.exit_code}, not {code}:\n{result.output}"
    return result.output


@pytest.fixture
def bucket(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> str:
    """An empty bucket; readers reach moto through AWS_ENDPOINT_URL."""
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return moto_server.create_bucket(f"snaps-{next(_buckets)}")


def tables(snapshot: Path) -> dict[str, list]:
    return {name: digest_ids.read(snapshot, name).to_pylist() for name in STORED_TABLES}


def test_crawl_uploads_snapshot_json_last_and_readers_read_it_back(
    moto_server: MotoServer, bucket: str, tmp_path: Path
) -> None:
    local = tmp_path / "local"
    run("crawl", str(SCENARIO), "-o", str(local), "-q")
    url = f"s3://{bucket}/nightly/one"
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        out = run("crawl", str(SCENARIO), "-o", url, "--endpoint-url", proxy.endpoint_url)
    assert url in out
    puts = [r.key for r, _ in proxy.log if r.method == "PUT" and r.key]
    assert puts[-1] == "nightly/one/snapshot.json" and len(puts) > len(STORED_TABLES)
    keys = moto_server.list_keys(bucket)
    assert all(k.startswith("nightly/one/") for k in keys)
    # Read back: the same tables as the local crawl's, through boto3, and through a command.
    copy = download_snapshot(url)
    assert tables(copy) == tables(local)
    sql = run("sql", url, "SELECT COUNT(*) AS n FROM manifests", "-f", "json")
    assert json.loads(sql)[0]["n"] == json.loads((local / "snapshot.json").read_text())["counts"]["manifests"]
    assert not list(Path(copy).parent.parent.glob("regstat-upload-*/one"))  # the local copy went


def test_an_existing_snapshot_is_replaced_only_with_force(bucket: str, tmp_path: Path) -> None:
    url = f"s3://{bucket}/snap"
    run("crawl", str(SCENARIO), "-o", url, "-q")
    first = json.loads((download_snapshot(url) / "snapshot.json").read_text())["id"]
    out = run("crawl", str(SCENARIO), "-o", url, "-q", code=EXIT_SNAPSHOT)
    assert "holds a snapshot; --force replaces it" in out
    run("crawl", str(SCENARIO), "-o", url, "-q", "--force")
    assert json.loads((download_snapshot(url) / "snapshot.json").read_text())["id"] != first


def test_a_prefix_without_snapshot_json_is_not_a_snapshot(moto_server: MotoServer, bucket: str) -> None:
    # What an upload that died leaves: the tables, not snapshot.json.
    s3 = moto_server.client("s3")
    s3.put_object(Bucket=bucket, Key="half/manifests/part-00000.parquet", Body=b"PAR1")
    out = run("sql", f"s3://{bucket}/half", "SELECT 1", code=EXIT_SNAPSHOT)
    assert "no snapshot.json there" in out and out.count("\n") == 1
    out = run("crawl", str(SCENARIO), "-o", f"s3://{bucket}/half", "-q", code=EXIT_SNAPSHOT)
    assert "1 objects (no snapshot.json)" in out


def test_shards_in_s3_merge_into_s3(moto_server: MotoServer, bucket: str, tmp_path: Path) -> None:
    local = tmp_path / "local"
    run("crawl", str(SCENARIO), "-o", str(local), "-q")
    shards = [f"s3://{bucket}/shards/{k}" for k in (1, 2)]
    for k, url in enumerate(shards, 1):
        run("crawl", str(SCENARIO), "-o", url, "--shard", f"{k}/2", "-q")
    run("merge", *shards, "-o", f"s3://{bucket}/merged", "-q")
    assert tables(download_snapshot(f"s3://{bucket}/merged")) == tables(local)
