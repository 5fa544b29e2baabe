"""Damage and failures on S3 (a moto_server on loopback): recorded the same way as on disk,
and an S3 source that cannot be read at all is one clear line with exit code 4."""

from __future__ import annotations

import itertools
import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from support.components import MotoServer, free_port
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SOURCE

pytestmark = pytest.mark.s3

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
PREFIX = "reg"
_buckets = itertools.count()


@pytest.fixture
def bucket(moto_server: MotoServer) -> tuple[object, str]:
    """A fresh bucket holding the scenario tree under PREFIX/."""
    name = f"damage-{next(_buckets)}"
    return moto_server.upload_tree(name, SAMPLE, PREFIX), name


def crawl(moto_server: MotoServer, source: str, out: Path) -> tuple[int, dict, str]:
    result = CliRunner().invoke(
        main, ["crawl", source, "--endpoint-url", moto_server.endpoint_url, "--output", str(out)]
    )
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return result.exit_code, meta, result.stderr


def key(path: str) -> str:
    return f"{PREFIX}/docker/registry/v2/{path}"


def test_clean_bucket_matches_the_disk_crawl(moto_server: MotoServer, bucket: tuple, tmp_path: Path) -> None:
    _, name = bucket
    code, meta, _ = crawl(moto_server, f"s3://{name}/{PREFIX}", tmp_path / "s3")
    assert code == EXIT_OK and meta["complete"]
    CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(tmp_path / "disk")])
    drop = {"updated_at", "pushed_at", "linked_at"}

    def strip(rows: list[dict]) -> list[dict]:
        return [{k: v for k, v in r.items() if k not in drop} for r in rows]

    for table in ("tags", "manifests", "descriptors", "repository_blobs"):
        s3_rows = digest_ids.read(tmp_path / "s3", table).to_pylist()
        disk_rows = digest_ids.read(tmp_path / "disk", table).to_pylist()
        assert strip(s3_rows) == strip(disk_rows), table


def test_damage_is_recorded(moto_server: MotoServer, bucket: tuple, tmp_path: Path) -> None:
    s3, name = bucket
    s3.put_object(Bucket=name, Key=key("repositories/apps/web/_manifests/tags/latest/current/link"), Body=b"")
    s3.put_object(Bucket=name, Key=key("repositories/apps/api/stray.txt"), Body=b"x")
    revisions = s3.list_objects_v2(Bucket=name, Prefix=key("repositories/base/alpine/_manifests/revisions/"))
    hex_ = revisions["Contents"][0]["Key"].split("/")[-2]
    s3.delete_object(Bucket=name, Key=key(f"blobs/sha256/{hex_[:2]}/{hex_}/data"))
    code, meta, _ = crawl(moto_server, f"s3://{name}/{PREFIX}", tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    found = {(e["repository"], e["kind"]) for e in meta["errors"]}
    assert {("apps/web", "bad_link"), ("base/alpine", "missing_blob"), (None, "outside_layout")} <= found
    assert set(meta["incomplete_repositories"]) >= {"apps/web", "base/alpine"}


@pytest.mark.parametrize("case", ["no-bucket", "no-tree", "unreachable"])
def test_unreadable_sources(moto_server: MotoServer, bucket: tuple, tmp_path: Path, case: str) -> None:
    _, name = bucket
    source = {"no-bucket": "s3://no-such-bucket", "no-tree": f"s3://{name}/elsewhere"}.get(case, f"s3://{name}")
    args = ["crawl", source, "--output", str(tmp_path / "snap")]
    endpoint = f"http://127.0.0.1:{free_port()}" if case == "unreachable" else moto_server.endpoint_url
    result = CliRunner().invoke(main, [*args, "--endpoint-url", endpoint])
    assert result.exit_code == EXIT_SOURCE, result.stderr
    assert result.stderr.startswith("regstat: error: s3://") and len(result.stderr.splitlines()) == 1
    assert not (tmp_path / "snap").exists()


def test_endpoint_from_the_environment(moto_server: MotoServer, bucket: tuple, tmp_path: Path,
                                        monkeypatch: pytest.MonkeyPatch) -> None:
    _, name = bucket
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    result = CliRunner().invoke(main, ["crawl", f"s3://{name}/{PREFIX}", "--output", str(tmp_path / "snap")])
    assert result.exit_code == EXIT_OK, result.stderr
    meta = json.loads((tmp_path / "snap" / "snapshot.json").read_text())
    assert meta["source"] == {"kind": "storage-layout", "driver": "s3", "location": f"s3://{name}/{PREFIX}",
                              "endpoint_url": moto_server.endpoint_url}


HOSTILE_KEYS = {  # repository directory as the key spells it -> the name the crawl records
    "apps/../evil": "apps/../evil",
    "apps/./dot": "apps/./dot",
    "apps//empty": "apps//empty",
    "../escape": "../escape",
    "a%2Fb": "a%2Fb",
    "ctl\x01name": "ctl\x01name",
    "caf\u00e9": "caf\u00e9",
}


def test_hostile_repository_keys(moto_server: MotoServer, bucket: tuple, tmp_path: Path) -> None:
    # Keys are strings to S3: `..`, `.`, empty components and escapes are names, never paths
    # to resolve. Each copy of apps/web under such a name is recorded; the real ones are exact.
    s3, name = bucket
    web = key("repositories/apps/web/")
    objects = s3.list_objects_v2(Bucket=name, Prefix=web)["Contents"]
    for directory in HOSTILE_KEYS:
        for obj in objects:
            body = s3.get_object(Bucket=name, Key=obj["Key"])["Body"].read()
            s3.put_object(Bucket=name, Key=key(f"repositories/{directory}/") + obj["Key"][len(web):], Body=body)
    code, meta, stderr = crawl(moto_server, f"s3://{name}/{PREFIX}", tmp_path / "snap")
    assert code == EXIT_INCOMPLETE and "Traceback" not in stderr
    recorded = {e["repository"] for e in meta["errors"] if e["kind"] == "invalid_name"}
    assert recorded == set(HOSTILE_KEYS.values())
    assert set(meta["incomplete_repositories"]) == set(HOSTILE_KEYS.values())
    CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(tmp_path / "disk")])
    real = {"apps/api", "apps/web", "base/alpine", "tools/cli"}
    for table in ("tags", "manifests", "descriptors"):
        got = [r for r in digest_ids.read(tmp_path / "snap", table).to_pylist() if r["repository"] in real]
        want = digest_ids.read(tmp_path / "disk", table).to_pylist()
        strip = lambda rows: [{k: v for k, v in r.items() if k not in ("updated_at", "pushed_at")} for r in rows]  # noqa: E731
        assert strip(got) == strip(want), table
    # A hostile copy is read from its own keys, not from the repository its name points at.
    hostile_tags = {(t["repository"], t["tag"]) for t in digest_ids.read(tmp_path / "snap", "tags").to_pylist()}
    assert {(n, "latest") for n in HOSTILE_KEYS.values()} <= hostile_tags


def test_a_key_pair_in_the_source_is_refused_without_echoing_it(tmp_path: Path) -> None:
    source = "s3://AKIAEXAMPLEKEY:wJalrSecretXYZ@bucket/p"
    result = CliRunner().invoke(main, ["crawl", source, "-o", str(tmp_path / "s")])
    assert result.exit_code == EXIT_SOURCE and "credentials do not belong in SOURCE" in result.stderr
    assert "wJalrSecretXYZ" not in result.stderr + result.stdout and not (tmp_path / "s").exists()
