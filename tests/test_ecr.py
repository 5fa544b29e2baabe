"""The ECR source against a real moto_server (and, where ECR's paging, limits or throttling
matter, the loopback proxy of ``support/ecr_proxy.py`` in front of it).

Each test runs in an AWS account of its own: it assumes a role in a fresh account through
moto's STS, and moto keeps each account's ECR apart, so tests never see each other's images
and crawls are complete (no --repository needed). The crawl reaches moto through
AWS_ENDPOINT_URL, as a user's would.

moto differs from ECR in ways worked around here rather than relied on: it makes up an image's
digest unless put_image is given one (we always give the sha256 of the manifest bytes); it
deletes an image whose only tag moves, where ECR leaves it untagged (untagged images are put
without a tag, which both allow); it ignores maxResults (the proxy pages); and it reports no
lastRecordedPullTime (the proxy adds one).
"""

from __future__ import annotations

import base64
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import images
from support.components import REGION, free_port
from support.ecr_accounts import Account, ecr_view, push_scenario
from support.ecr_proxy import PAGED, EcrProxy
from support.expected import ROW_TYPES, Expected, _Recorder
from support.images import sha256_digest
from support.scenario import filler

from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SOURCE

pytestmark = pytest.mark.s3

SOURCE = f"ecr://{REGION}"


# --- the ECR-like proxy ------------------------------------------------------------------------


@pytest.fixture
def proxy(account: Account, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcrProxy]:
    """The ECR-like proxy in front of moto, as the crawl's endpoint; pages of 2."""
    with EcrProxy(account.moto.endpoint_url, page_sizes=dict.fromkeys(PAGED, 2)) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server


# --- crawling and reading snapshots -----------------------------------------------------------


@dataclass
class Crawl:
    code: int
    meta: dict
    stdout: str
    stderr: str
    path: Path

    def rows(self, table: str) -> set[tuple]:
        """The rows of ``table`` in the columns of its row type in tests/support/expected.py."""
        row_type = ROW_TYPES[table]
        columns = list(row_type._fields)
        return {row_type(**row) for row in digest_ids.read(self.path, table).select(columns).to_pylist()}

    def column(self, table: str, name: str) -> list:
        return digest_ids.read(self.path, table).column(name).to_pylist()

    def errors(self) -> set[tuple[str | None, str]]:
        return {(e["repository"], e["kind"]) for e in self.meta["errors"]}


def crawl(tmp_path: Path, *args: str, source: str = SOURCE, name: str = "snap") -> Crawl:
    out = tmp_path / name
    result = CliRunner().invoke(main, ["crawl", source, "--output", str(out), *args])
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return Crawl(result.exit_code, meta, result.stdout, result.stderr, out)


def assert_tables(snap: Crawl, expected: Expected) -> None:
    for table in ("repositories", "tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads"):
        assert snap.rows(table) == expected.table(table), table


# --- tests ---------------------------------------------------------------------------------------


def test_crawl_matches_what_was_pushed(account: Account, tmp_path: Path) -> None:
    started = time.time()
    expected = push_scenario(account)
    pushed = time.time()
    snap = crawl(tmp_path)
    assert snap.code == EXIT_OK, snap.stderr
    assert snap.meta["complete"] and not snap.meta["partial"] and snap.meta["errors"] == []
    assert snap.meta["source"] == {
        "kind": "ecr",
        "location": SOURCE,
        "registry_id": account.account_id,
        "endpoint_url": account.moto.endpoint_url,
    }
    assert snap.meta["capabilities"] == {
        "untagged_manifests": True,
        "unreferenced_blobs": False,
        "stored_blob_sizes": False,
        "push_times": "exact",
        "pull_times": "exact",
        "locks": None,
    }
    assert_tables(snap, expected)
    # Shared layers are known: the base layer is referenced from three repositories.
    layer_rows = [r for r in snap.rows("descriptors") if r.digest == expected.names["base_layer"]]
    assert {r.repository for r in layer_rows} == {"base/alpine", "apps/web", "apps/api"}
    # moto keeps push times in whole seconds.
    for moment in snap.column("manifests", "pushed_at"):
        assert int(started) <= moment.timestamp() <= pushed
    assert set(snap.column("manifests", "last_pulled_at")) == {None}
    assert set(snap.column("manifests", "locked")) == {None}
    assert set(snap.column("tags", "updated_at")) == {None}


def test_paging_batches_and_pull_times(account: Account, proxy: EcrProxy, tmp_path: Path) -> None:
    expected = push_scenario(account)
    # A repository of 101 untagged images: two BatchGetImage calls, of 100 and 1.
    rec = _Recorder()
    for i in range(101):
        image = images.build_image([], labels={"n": str(i)})
        account.push_image("bulk/many", image)
        rec.image("bulk/many", image)
    bulk = ecr_view(rec.expected())
    for table in ("repositories", "manifests", "descriptors", "blobs"):
        expected.table(table).update(bulk.table(table))

    # ECR reports the last recorded pull; moto does not, so the proxy adds one.
    pulled = "2024-05-06T07:08:09.123456+00:00"
    web_new = next(r.digest for r in expected.tags if r.tag == "v2")

    def add_pull_time(request: dict, response: dict) -> None:
        for detail in response["imageDetails"]:
            if detail["imageDigest"] == web_new:
                detail["lastRecordedPullTime"] = 1714979289.123456

    proxy.rewrite["DescribeImages"] = add_pull_time
    # moto takes 60 ms to list 101 images, whatever the page: fewer, larger pages here.
    proxy.page_sizes["DescribeImages"] = 25
    snap = crawl(tmp_path)
    assert snap.code == EXIT_OK, snap.stderr
    assert_tables(snap, expected)

    # 5 repositories, 2 a page (after the start-up check, which asks for 1).
    listing = [r for r in proxy.operations("DescribeRepositories") if r["maxResults"] == 1000]
    assert [r.get("nextToken") for r in listing] == [None, "page-2", "page-4"]
    bulk_pages = [r for r in proxy.operations("DescribeImages") if r["repositoryName"] == "bulk/many"]
    assert len(bulk_pages) == 5 and all(r["maxResults"] == 1000 for r in bulk_pages)
    batches = sorted(len(r["imageIds"]) for r in proxy.operations("BatchGetImage")
                     if r["repositoryName"] == "bulk/many")
    assert batches == [1, 100]
    accepted = set(proxy.operations("BatchGetImage")[0]["acceptedMediaTypes"])
    assert {images.OCI_MANIFEST, images.OCI_INDEX, images.DOCKER_MANIFEST, images.DOCKER_MANIFEST_LIST} <= accepted

    manifests = digest_ids.read(snap.path, "manifests").to_pylist()
    pulls = {(m["digest"], m["last_pulled_at"].isoformat()) for m in manifests if m["last_pulled_at"]}
    assert pulls == {(web_new, pulled)}


def test_a_listing_torn_by_a_moving_tag(account: Account, proxy: EcrProxy, tmp_path: Path) -> None:
    first, second, third = (images.build_image([], labels={"n": n}) for n in "123")
    account.push_image("torn/repo", first, "latest")
    account.push_image("torn/repo", second)
    account.push_image("torn/repo", third)

    def move_latest(request: dict, response: dict) -> None:
        # Page 2, taken after `latest` moved to the second image and pages shifted: the first
        # image is listed again, and `latest` is on another image than on page 1.
        if request.get("nextToken") == "page-2":
            [detail] = response["imageDetails"]
            assert detail["imageDigest"] == third.digest
            detail["imageTags"] = ["latest"]
            response["imageDetails"].append({**detail, "imageDigest": first.digest, "imageTags": []})

    proxy.rewrite["DescribeImages"] = move_latest
    snap = crawl(tmp_path)
    assert snap.code == EXIT_INCOMPLETE
    assert [(e["kind"], e["path"]) for e in snap.meta["errors"]] == [("read_error", "torn/repo:latest")]
    assert {(r.tag, r.digest) for r in snap.rows("tags")} == {("latest", first.digest)}
    assert {r.digest for r in snap.rows("manifests")} == {first.digest, second.digest, third.digest}


def test_repository_globs(account: Account, tmp_path: Path) -> None:
    expected = push_scenario(account)
    snap = crawl(tmp_path, "--repository", "apps/*", "--repository", "tools/cl?")
    assert snap.code == EXIT_OK, snap.stderr
    assert snap.meta["partial"] and not snap.meta["complete"]
    assert snap.meta["repository_filter"] == ["apps/*", "tools/cl?"]
    assert snap.meta["source_repositories"] == 4  # base/alpine is listed, and left out
    chosen = {"apps/web", "apps/api", "tools/cli"}
    assert {r.repository for r in snap.rows("repositories")} == chosen
    assert snap.rows("tags") == {r for r in expected.tags if r.repository in chosen}
    assert snap.rows("manifests") == {r for r in expected.manifests if r.repository in chosen}


def test_registry_id_and_endpoint_option(account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    other = "999988887777"
    image = images.build_image([images.make_layer({"other": b"other"})])
    account.put("shared/app", image.manifest, image.media_type, "v1", registry_id=other)
    # --endpoint-url wins over the environment, which points nowhere.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    snap = crawl(tmp_path, "--registry-id", other, "--endpoint-url", account.moto.endpoint_url)
    assert snap.code == EXIT_OK, snap.stderr
    assert snap.meta["source"]["registry_id"] == other
    assert snap.meta["source"]["endpoint_url"] == account.moto.endpoint_url
    assert {(r.repository, r.tag, r.digest) for r in snap.rows("tags")} == {("shared/app", "v1", image.digest)}


def test_throttling_is_retried(account: Account, proxy: EcrProxy, tmp_path: Path) -> None:
    image = images.build_image([images.make_layer({"a": b"a"})])
    account.push_image("one/repo", image, "v1")
    proxy.throttle.update({"DescribeRepositories": 1, "DescribeImages": 1, "BatchGetImage": 1})
    snap = crawl(tmp_path)
    assert snap.code == EXIT_OK, snap.stderr
    assert [op for op, _ in proxy.throttled] == ["DescribeRepositories", "DescribeImages", "BatchGetImage"]
    assert {(r.repository, r.tag, r.digest) for r in snap.rows("tags")} == {("one/repo", "v1", image.digest)}


def test_failing_to_the_end_marks_the_repository(
    account: Account, proxy: EcrProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    expected = push_scenario(account)
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # the standard setting; keeps the test fast
    proxy.throttle_if = lambda operation, request: (
        (operation == "DescribeImages" and request.get("repositoryName") == "apps/web")
        or (operation == "BatchGetImage" and request.get("repositoryName") == "tools/cli")
    )
    snap = crawl(tmp_path)
    assert snap.code == EXIT_INCOMPLETE
    assert snap.errors() == {("apps/web", "read_error"), ("tools/cli", "read_error")}
    assert snap.meta["incomplete_repositories"] == ["apps/web", "tools/cli"]
    web = next(e for e in snap.meta["errors"] if e["repository"] == "apps/web")
    assert "DescribeImages: ThrottlingException" in web["message"] and "after 1 retry" in web["message"]
    # What could be read is there; what could not is said so.
    assert {r.repository for r in snap.rows("tags")} == {"base/alpine", "apps/api", "tools/cli"}
    statuses = {r.status for r in snap.rows("manifests") if r.repository == "tools/cli"}
    assert statuses == {"unreadable"}
    assert {r for r in snap.rows("repositories") if r.complete} == {
        r for r in expected.repositories if r.repository in ("base/alpine", "apps/api")
    }


def signed_schema1(payload_doc: dict) -> tuple[bytes, bytes]:
    """A Docker schema 1 manifest signed in libtrust's "pretty JWS" form: (signed, payload).

    The signature is not a valid one; nothing here checks it, and the digest is the payload's.
    """
    payload = json.dumps(payload_doc, indent=3).encode()
    length = payload.rindex(b"\n}")
    b64 = lambda data: base64.urlsafe_b64encode(data).rstrip(b"=").decode()  # noqa: E731
    protected = b64(json.dumps({"formatLength": length, "formatTail": b64(payload[length:])}).encode())
    signature = {"header": {"alg": "ES256"}, "signature": "c2ln", "protected": protected}
    signed = payload[:length] + b',\n   "signatures": ' + json.dumps([signature]).encode() + payload[length:]
    return signed, payload


def test_bad_manifests_are_recorded(account: Account, proxy: EcrProxy, tmp_path: Path) -> None:
    repo = "odd/things"
    good = images.build_image([images.make_layer({"ok": b"ok"})])
    account.push_image(repo, good, "good")
    mismatched = account.put(repo, good.manifest.replace(b"}", b" }", 1), good.media_type, "mismatch",
                             digest=sha256_digest(b"something else"))
    invalid_body = images.canonical_json({"schemaVersion": 2, "mediaType": images.OCI_MANIFEST, "layers": "no"})
    invalid = account.put(repo, invalid_body, images.OCI_MANIFEST, "invalid")
    unknown_type = "application/vnd.example.thing.v1+json"
    unknown = account.put(repo, images.canonical_json({"schemaVersion": 2, "mediaType": unknown_type}), unknown_type)
    amd64 = images.build_image([images.make_layer({"x": filler("x", 10)})])
    lonely = images.build_index([amd64])
    account.put(repo, lonely.manifest, lonely.media_type, "lonely")  # its child was never pushed
    doomed = images.build_image([images.make_layer({"doomed": b"doomed"})])
    account.push_image(repo, doomed, "doomed")
    layer = images.make_layer({"legacy": b"legacy"})
    signed, payload = signed_schema1({
        "schemaVersion": 1, "name": repo, "tag": "legacy", "architecture": "amd64",
        "fsLayers": [{"blobSum": layer.digest}], "history": [{"v1Compatibility": "{}"}],
    })
    legacy = account.put(repo, signed, images.DOCKER_SCHEMA1_SIGNED, "legacy", digest=sha256_digest(payload))
    archived = images.build_image([images.make_layer({"old": b"old"})])
    account.push_image(repo, archived, "archived")

    def listing_then_deletion(request: dict, response: dict) -> None:
        for detail in response["imageDetails"]:  # moto has no archive: say so as ECR would
            detail["imageStatus"] = "ARCHIVED" if detail["imageDigest"] == archived.digest else "ACTIVE"
        # Deleted between DescribeImages (its last page) and BatchGetImage, as another
        # client might.
        if request["repositoryName"] == repo and "nextToken" not in response:
            account.client.batch_delete_image(repositoryName=repo, imageIds=[{"imageDigest": doomed.digest}])

    proxy.rewrite["DescribeImages"] = listing_then_deletion
    snap = crawl(tmp_path)
    assert snap.code == EXIT_INCOMPLETE
    kinds = sorted(e["kind"] for e in snap.meta["errors"])
    assert kinds == ["digest_mismatch", "image_vanished", "invalid_manifest", "missing_child", "read_error"], kinds
    assert {e["repository"] for e in snap.meta["errors"]} == {repo}
    vanished = next(e for e in snap.meta["errors"] if e["kind"] == "image_vanished")
    assert vanished["path"] == f"{repo}@{doomed.digest}" and "doomed" in vanished["message"]
    child = next(e for e in snap.meta["errors"] if e["kind"] == "missing_child")
    assert amd64.digest in child["message"] and child["path"] == f"{repo}@{lonely.digest}"

    manifests = {r.digest: r for r in snap.rows("manifests")}
    assert doomed.digest not in manifests
    assert "doomed" not in {r.tag for r in snap.rows("tags")}
    # An archived image is present, but ECR does not serve its manifest: it is not asked for.
    assert archived.digest not in {i["imageDigest"] for r in proxy.operations("BatchGetImage") for i in r["imageIds"]}
    assert ("archived", archived.digest) in {(r.tag, r.digest) for r in snap.rows("tags")}
    assert manifests[archived.digest].status == "unreadable"
    # Every error names the image as ECR does, those the crawl derives from statuses too.
    assert {e["path"] for e in snap.meta["errors"]} == {
        f"{repo}@{d}" for d in (mismatched, invalid, lonely.digest, doomed.digest, archived.digest)
    }
    assert {d: manifests[d].status for d in (good.digest, mismatched, invalid, unknown, lonely.digest, legacy)} == {
        good.digest: "ok",
        mismatched: "digest_mismatch",
        invalid: "invalid",
        unknown: "unknown_media_type",
        lonely.digest: "ok",
        legacy: "ok",
    }
    assert manifests[unknown].media_type == unknown_type
    # A signed schema 1 manifest is its payload, as its digest says.
    assert manifests[legacy].media_type == images.DOCKER_SCHEMA1_SIGNED
    assert manifests[legacy].size == len(payload)
    legacy_layers = {(r.role, r.digest) for r in snap.rows("descriptors") if r.manifest_digest == legacy}
    assert legacy_layers == {("layer", layer.digest)}


def test_no_secret_in_the_snapshot_or_the_logs(
    account: Account, proxy: EcrProxy, tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    image = images.build_image([images.make_layer({"s": b"s"})])
    account.push_image("secret/repo", image, "v1")
    account.put("secret/repo", b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json"}',
                images.OCI_MANIFEST, "broken")
    proxy.throttle_if = lambda operation, request: operation == "BatchGetImage" and len(proxy.throttled) < 1
    caplog.set_level(logging.DEBUG)
    snap = crawl(tmp_path, "--json")
    assert snap.code == EXIT_INCOMPLETE and snap.meta["errors"]
    secret = account.credentials["AWS_SECRET_ACCESS_KEY"]
    token = account.credentials["AWS_SESSION_TOKEN"]
    for path in snap.path.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            assert secret.encode() not in data and token.encode() not in data, path
    for text in (snap.stdout, snap.stderr):
        assert secret not in text and token not in text
    # botocore's own debug log shows the session token as a header; never the secret key.
    assert secret not in caplog.text


@pytest.mark.parametrize(
    "case", ["unreachable", "no-credentials", "unknown-profile", "no-region", "path", "bad-registry-id"]
)
def test_unreadable_sources(account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, case: str) -> None:
    args: list[str] = []
    source = SOURCE
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    if case == "unreachable":
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    elif case == "no-credentials":
        for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
            monkeypatch.delenv(name)
    elif case == "unknown-profile":
        monkeypatch.setenv("AWS_PROFILE", "no-such-profile")
    elif case == "no-region":
        source = "ecr://"
    elif case == "path":
        source = f"{SOURCE}/apps/web"
    else:
        args = ["--registry-id", "acme"]
    snap = crawl(tmp_path, *args, source=source)
    assert snap.code == EXIT_SOURCE, snap.stderr
    assert snap.stderr.startswith("regstat: error: ecr://") and len(snap.stderr.splitlines()) == 1, snap.stderr
    assert not snap.path.exists() and list(tmp_path.iterdir()) == []
    if case == "no-credentials":
        assert "no AWS credentials" in snap.stderr


def test_credentials_from_a_profile_and_the_ecr_endpoint_variable(
    account: Account, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    image = images.build_image([images.make_layer({"p": b"p"})])
    account.push_image("profiled/app", image, "v1")
    credentials = tmp_path / "credentials"
    credentials.write_text(
        "[crawler]\n"
        f"aws_access_key_id = {account.credentials['AWS_ACCESS_KEY_ID']}\n"
        f"aws_secret_access_key = {account.credentials['AWS_SECRET_ACCESS_KEY']}\n"
        f"aws_session_token = {account.credentials['AWS_SESSION_TOKEN']}\n"
    )
    for name in ("AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"):
        monkeypatch.delenv(name)
    monkeypatch.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials))
    monkeypatch.setenv("AWS_PROFILE", "crawler")
    # The ECR-specific variable wins over the general one, which points nowhere.
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    monkeypatch.setenv("AWS_ENDPOINT_URL_ECR", account.moto.endpoint_url)
    snap = crawl(tmp_path, name="out")
    assert snap.code == EXIT_OK, snap.stderr
    assert snap.meta["source"]["endpoint_url"] == account.moto.endpoint_url
    assert snap.meta["source"]["registry_id"] == account.account_id
    assert {(r.repository, r.tag) for r in snap.rows("tags")} == {("profiled/app", "v1")}
