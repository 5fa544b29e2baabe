"""Incremental crawls of the sources whose jobs read manifests themselves: OCI image layouts,
ECR and ACR (`crawl --previous SNAP`, and `--into`, whose default previous is the history's
latest). A manifest the previous snapshot parsed is not read again once this crawl's own
listing confirms it; listings, times and locks are always fresh; and the incremental snapshot
equals a fresh crawl's of the same state, table for table.

Reads are counted where they happen: each manifest blob file an OCI layout crawl opens (at
`oci_layout.read_file`), the image ids of every BatchGetImage at a proxy in front of moto's
ECR, and the GETs of `/v2/<name>/manifests/<digest>` at the ACR stand-in.
"""

from __future__ import annotations

import json
import re
from collections import Counter
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support import images
from support.acr_components import AcrStandin
from support.components import REGION
from support.crawls import assert_same_tables, json_crawl, read_table
from support.ecr_accounts import Account, push_scenario
from support.ecr_proxy import EcrProxy
from support.oci_layouts import add_manifest, add_root, blob_file
from support.scenario import populate, standard_scenario

from regstat.errors import EXIT_INCOMPLETE, EXIT_OK
from regstat.sources import oci_layout


def manifest_digests(snapshot: Path) -> set[str]:
    return {row["digest"] for row in read_table(snapshot, "manifests").to_pylist()}


def errors(snapshot: Path, kind: str) -> list[dict[str, Any]]:
    return [e for e in json.loads((snapshot / "snapshot.json").read_text())["errors"] if e["kind"] == kind]


# --- OCI image layouts: manifest blob files opened, counted at read_file ------------------------


@pytest.fixture
def blob_reads(monkeypatch: pytest.MonkeyPatch) -> Counter[str]:
    """The blob files (`blobs/<alg>/<hex>`) crawls in this process open for reading, by path."""
    reads: Counter[str] = Counter()
    real = oci_layout.read_file

    def counting(location: str, path: str, limit: int) -> tuple[bytes, int]:
        if path.startswith("blobs/"):
            reads[path] += 1
        return real(location, path, limit)

    monkeypatch.setattr(oci_layout, "read_file", counting)
    return reads


def add_web_root(layout: Path) -> None:
    """A new image, tagged `web`."""
    web = standard_scenario().web_old
    add_manifest(layout, web)
    add_root(layout, web.descriptor(), "web")


def delete_child(layout: Path) -> None:
    """An index child's blob file gone (missing_blob)."""
    blob_file(layout, standard_scenario().cli_index.children[0].digest).unlink()


def resize_child(layout: Path) -> None:
    """An index child's blob file one byte longer: no longer the bytes its digest names."""
    path = blob_file(layout, standard_scenario().cli_index.children[0].digest)
    path.write_bytes(path.read_bytes() + b"\n")


LAYOUT_STATES: dict[str, tuple[Callable[[Path], None], int]] = {  # change, manifest blobs read again
    "unchanged": (lambda layout: None, 0),
    "root_added": (add_web_root, 1),
    "child_deleted": (delete_child, 1),  # reused no more: read, and found missing
    "child_resized": (resize_child, 1),  # read, and found not to hash to its digest
}


def write_layout(directory: Path) -> Path:
    s = standard_scenario()
    return images.write_oci_layout(directory, {"alpine": s.alpine, "cli": s.cli_index})


def manifest_blob_reads(reads: Counter[str], digests: set[str]) -> list[str]:
    return sorted(path for path, n in reads.items() for _ in range(n)
                  if path in {oci_layout.blob_path(d) for d in digests})


@pytest.mark.parametrize("state", list(LAYOUT_STATES))
def test_oci_layout_incremental_crawl_reads_only_what_changed(
    state: str, blob_reads: Counter[str], tmp_path: Path
) -> None:
    layout = write_layout(tmp_path / "layout")
    source = f"oci:{layout}"
    code, first, stderr = json_crawl(source, tmp_path / "first")
    assert code == EXIT_OK, stderr
    manifests = manifest_digests(tmp_path / "first") | {standard_scenario().web_old.digest}
    assert len(manifest_blob_reads(blob_reads, manifests)) == first["manifests_read"] == 4  # the reads are seen
    change, read = LAYOUT_STATES[state]
    change(layout)
    blob_reads.clear()
    code, incremental, stderr = json_crawl(source, tmp_path / "incremental", "--previous", str(tmp_path / "first"))
    assert len(manifest_blob_reads(blob_reads, manifests)) == incremental["manifests_read"] == read
    assert incremental["manifests_reused"] == 4 - (0 if state == "root_added" else read)
    assert "warning" not in stderr
    fresh_code, _, _ = json_crawl(source, tmp_path / "fresh")
    assert code == fresh_code
    assert_same_tables(tmp_path / "incremental", tmp_path / "fresh")
    if state == "child_deleted":
        assert code == EXIT_INCOMPLETE and len(errors(tmp_path / "incremental", "missing_blob")) == 1
    if state == "child_resized":
        assert code == EXIT_INCOMPLETE and len(errors(tmp_path / "incremental", "digest_mismatch")) == 1


def test_oci_layout_into_a_history_reuses_its_latest(blob_reads: Counter[str], tmp_path: Path) -> None:
    layout = write_layout(tmp_path / "layout")
    into = ("--into", str(tmp_path / "history"))
    code, first, stderr = json_crawl(f"oci:{layout}", None, *into)
    assert code == EXIT_OK and first["manifests_read"] == 4, stderr
    manifests = manifest_digests(tmp_path / "history" / "latest")
    blob_reads.clear()
    code, second, stderr = json_crawl(f"oci:{layout}", None, *into)
    assert code == EXIT_OK and "warning" not in stderr, stderr
    assert (second["manifests_read"], second["manifests_reused"]) == (0, 4)
    assert manifest_blob_reads(blob_reads, manifests) == []


# --- ECR: image ids asked of BatchGetImage, counted at a proxy in front of moto ---------------------


def batch_got(proxy: EcrProxy) -> list[str]:
    """The digests every BatchGetImage through the proxy asked for so far."""
    return sorted(i["imageDigest"] for request in proxy.operations("BatchGetImage") for i in request["imageIds"])


@pytest.mark.s3
def test_ecr_second_crawl_gets_no_manifest_then_only_the_new_one(
    account: Account, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    push_scenario(account)
    with EcrProxy(account.moto.endpoint_url) as proxy:
        monkeypatch.setenv("AWS_ENDPOINT_URL", proxy.endpoint_url)
        source = f"ecr://{REGION}"
        code, first, stderr = json_crawl(source, tmp_path / "first")
        assert code == EXIT_OK, stderr
        manifests = manifest_digests(tmp_path / "first")
        assert batch_got(proxy) == sorted(manifests) and first["manifests_read"] == len(manifests)

        proxy.calls.clear()
        code, second, stderr = json_crawl(source, tmp_path / "second", "--previous", str(tmp_path / "first"))
        assert code == EXIT_OK and "warning" not in stderr, stderr
        assert batch_got(proxy) == [] and second["manifests_read"] == 0
        assert second["manifests_reused"] == len(manifests)
        assert proxy.operations("DescribeImages")  # the listing is read fresh
        assert_same_tables(tmp_path / "second", tmp_path / "first")  # a fresh crawl of this state

        # One image pushed, and one child of the tools/cli index deleted: only the new image is
        # read; the reused index is checked against the fresh listing (missing_child).
        new = images.build_image([images.make_layer({"srv/new": b"new"})])
        account.push_image("apps/web", new, "v3")
        child = standard_scenario().cli_index.children[0].digest
        account.client.batch_delete_image(repositoryName="tools/cli", imageIds=[{"imageDigest": child}])
        proxy.calls.clear()
        code, third, stderr = json_crawl(source, tmp_path / "third", "--previous", str(tmp_path / "second"))
        assert code == EXIT_INCOMPLETE, stderr
        assert batch_got(proxy) == [new.digest] and third["manifests_read"] == 1
        assert third["manifests_reused"] == len(manifests) - 1
        assert [child in e["message"] for e in errors(tmp_path / "third", "missing_child")] == [True]
        fresh_code, _, _ = json_crawl(source, tmp_path / "fresh")
        assert fresh_code == code
        assert_same_tables(tmp_path / "third", tmp_path / "fresh")


# --- ACR: GETs of manifests by digest, counted at the stand-in ------------------------------------------

def manifest_gets(standin: AcrStandin, since: int) -> list[str]:
    """The digests of the manifests GET by digest at the stand-in, from its `since`th request on."""
    return [path.rpartition("/")[2] for method, path, _ in standin.requests[since:]
            if method == "GET" and re.match(r"/v2/.+/manifests/sha256:", path)]


def acr_crawl(standin: AcrStandin, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """An admin crawl of the stand-in, in this process; no Docker configuration read."""
    login = ("--insecure", "--username", standin.admin_username, "--password-stdin")
    env = {"DOCKER_CONFIG": str(out.parent / "no-docker-config")}
    return json_crawl(standin.source, out, *login, *args, input=f"{standin.admin_password}\n", env=env)


def by_key(snapshot: Path, table: str, *key: str) -> dict[tuple, dict[str, Any]]:
    return {tuple(row[k] for k in key): row for row in read_table(snapshot, table).to_pylist()}


@pytest.mark.registry
def test_acr_second_crawl_gets_no_manifest_and_takes_locks_and_times_fresh(
    acr_standin: AcrStandin, tmp_path: Path
) -> None:
    expected = populate(acr_standin.registry)
    code, first, stderr = acr_crawl(acr_standin, tmp_path / "first")
    assert code == EXIT_OK, stderr
    manifests = manifest_digests(tmp_path / "first")
    assert sorted(manifest_gets(acr_standin, 0)) == sorted(manifests) and first["manifests_read"] == len(manifests)

    # Locks and a time change between the crawls: the listing is read fresh, never the snapshot.
    web_old = expected.names["web_old"]
    acr_standin.lock("apps/web", tag="v2", delete=True)
    acr_standin.lock("apps/web", digest=web_old, write=True)
    updated = datetime(2026, 11, 30, 12, 0, 0, 123456, tzinfo=UTC)
    acr_standin.set_times("apps/web", digest=web_old, updated=updated)
    since = len(acr_standin.requests)
    code, second, stderr = acr_crawl(acr_standin, tmp_path / "second", "--previous", str(tmp_path / "first"))
    assert code == EXIT_OK and "warning" not in stderr, stderr
    assert manifest_gets(acr_standin, since) == [] and second["manifests_read"] == 0
    assert acr_standin.count("GET", r"/_manifests$") > 0  # the listing is read fresh
    assert second["manifests_reused"] == len(manifests)
    assert by_key(tmp_path / "second", "tags", "repository", "tag")[("apps/web", "v2")]["locked"] is True
    old = by_key(tmp_path / "second", "manifests", "repository", "digest")[("apps/web", web_old)]
    assert old["locked"] is True and old["updated_at"] == updated
    code, _, stderr = acr_crawl(acr_standin, tmp_path / "fresh-second")
    assert code == EXIT_OK, stderr
    assert_same_tables(tmp_path / "second", tmp_path / "fresh-second")

    # One image pushed, and one child of the tools/cli index deleted: only the new image is read;
    # the reused index is checked against the fresh listing (missing_child).
    new = images.build_image([images.make_layer({"srv/new": b"new"})])
    acr_standin.registry.push_image("apps/web", new, "v3")
    child = standard_scenario().cli_index.children[0].digest
    acr_standin.registry.delete_manifest("tools/cli", child)
    since = len(acr_standin.requests)
    code, third, stderr = acr_crawl(acr_standin, tmp_path / "third", "--previous", str(tmp_path / "second"))
    assert code == EXIT_INCOMPLETE, stderr
    assert manifest_gets(acr_standin, since) == [new.digest]
    assert third["manifests_read"] == 1 and third["manifests_reused"] == len(manifests) - 1
    assert [child in e["message"] for e in errors(tmp_path / "third", "missing_child")] == [True]
    code, _, stderr = acr_crawl(acr_standin, tmp_path / "fresh-third")
    assert code == EXIT_INCOMPLETE, stderr
    assert_same_tables(tmp_path / "third", tmp_path / "fresh-third")
