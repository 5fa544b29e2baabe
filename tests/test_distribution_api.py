"""The OCI Distribution API source against the real registry (docker-registry 2.8.2).

The registry is filled by ``populate``; an API crawl must agree with a crawl of the same
registry's storage tree on everything the API can see: tags, the manifests tags reach (index
children, referrers by tag), and their descriptors. Registries with ``htpasswd`` and ``token``
auth serve the same storage tree; a proxy (``FaultProxy``) adds faults, pages and bad input.
"""

from __future__ import annotations

import base64
import collections
import json
import os
import subprocess
import time
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from support.api_components import DROP, Canned, FaultProxy, TokenServer, tls_certificate
from support.auth_registries import PASSWORD, USER, same_storage
from support.components import Registry, free_port
from support.crawls import api_crawl, crawled, tables, without
from support.expected import Populated
from support.images import DOCKER_SCHEMA1_SIGNED, OCI_INDEX, OCI_MANIFEST, sha256_digest
from support.tools import require_tools

pytestmark = pytest.mark.registry


# --- helpers --------------------------------------------------------------------------------


def refused(result: subprocess.CompletedProcess[str], out: Path, *words: str) -> str:
    """A crawl that failed with exit 4, one line on stderr, and wrote nothing."""
    assert result.returncode == 4, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("regstat: error: "), result.stderr
    for word in words:
        assert word in lines[0], lines[0]
    assert not out.exists() and not list(out.parent.glob(f".{out.name}*")), "something was written"
    return lines[0]


def reachable(snapshot: Path) -> dict[str, list[dict[str, Any]]]:
    """Tags, and the manifests and descriptors that tags reach (index children, referrers)."""
    t = tables(snapshot)
    reach = {(r["repository"], r["digest"]) for r in t["tags"]}
    while True:
        more = {
            (d["repository"], d["digest"])
            for d in t["descriptors"]
            if d["role"] == "manifest" and (d["repository"], d["manifest_digest"]) in reach
        } | {
            (m["repository"], m["digest"])
            for m in t["manifests"]
            if (m["repository"], m["subject_digest"]) in reach
        }
        if more <= reach:
            break
        reach |= more
    return {
        "tags": t["tags"],
        "manifests": [m for m in t["manifests"] if (m["repository"], m["digest"]) in reach],
        "descriptors": [d for d in t["descriptors"] if (d["repository"], d["manifest_digest"]) in reach],
    }


# --- fixtures -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def baseline(populated_fs: Populated, tmp_path_factory: pytest.TempPathFactory) -> dict[str, list[dict[str, Any]]]:
    """The tables of an anonymous API crawl of the populated registry."""
    out = tmp_path_factory.mktemp("baseline") / "snap"
    crawled(api_crawl(populated_fs.registry.url, out, "--insecure"), out)
    return tables(out)


@pytest.fixture
def proxy(populated_fs: Populated) -> Iterator[FaultProxy]:
    with FaultProxy(populated_fs.registry.url) as server:
        yield server  # type: ignore[misc]


# --- what the API sees ------------------------------------------------------------------------


def test_api_crawl_agrees_with_storage_crawl(populated_fs: Populated, tmp_path: Path) -> None:
    api, storage = tmp_path / "api", tmp_path / "storage"
    meta = crawled(api_crawl(populated_fs.registry.url, api, "--insecure"), api)
    crawled(api_crawl(str(populated_fs.registry.root), storage), storage)
    assert meta["complete"] and meta["errors"] == []
    assert meta["source"] == {"kind": "distribution-api", "location": populated_fs.registry.url}
    assert meta["capabilities"] == {
        "untagged_manifests": False,
        "unreferenced_blobs": False,
        "stored_blob_sizes": False,
        "push_times": None,
        "pull_times": None,
        "locks": None,
    }
    got, want = tables(api), reachable(storage)
    for table in ("tags", "manifests", "descriptors"):
        assert got[table] == want[table], table
    # The storage tree also holds the overwritten, untagged web_old, which the API cannot see.
    names = populated_fs.expected.names
    assert names["web_old"] in {m["digest"] for m in tables(storage)["manifests"]}
    assert names["web_old"] not in {m["digest"] for m in got["manifests"]}
    # The signature is reached through its sha256-<hex>.sig tag (2.8.2 has no referrers API).
    assert {m["digest"] for m in got["manifests"] if m["subject_digest"] == names["api_v1"]} == {names["signature"]}
    assert got["repository_blobs"] == [] and got["uploads"] == []
    assert got["blobs"] and not any(b["stored"] for b in got["blobs"])
    assert [r["repository"] for r in got["repositories"]] == ["apps/api", "apps/web", "base/alpine", "tools/cli"]


def test_schema1_manifest_digest_is_its_payload(make_registry: Any, populate: Any, tmp_path: Path) -> None:
    """The registry serves schema 1 re-signed; its digest is that of the stored payload."""
    registry = make_registry("fs", schema1=True)
    expected = populate(registry, schema1=True)
    api, storage = tmp_path / "api", tmp_path / "storage"
    crawled(api_crawl(registry.url, api, "--insecure"), api)
    crawled(api_crawl(str(registry.root), storage), storage)
    got, want = tables(api), reachable(storage)

    def strip(r: dict) -> dict:
        # Schema 1 layers carry no size; the storage crawl takes it from the stored blob.
        return {**r, "size": None} if r.get("media_type") is None and "role" in r else r

    for table in ("tags", "manifests", "descriptors"):
        assert [strip(r) for r in got[table]] == [strip(r) for r in want[table]], table
    legacy = [m for m in got["manifests"] if m["digest"] == expected.names["legacy"]]
    assert legacy and legacy[0]["media_type"] == DOCKER_SCHEMA1_SIGNED and legacy[0]["status"] == "ok"


def test_pages_smaller_than_the_lists(proxy: FaultProxy, baseline: dict, tmp_path: Path) -> None:
    """n=1: the real registry pages its catalog; the proxy pages tag lists (2.8.2 does not).
    Plain HTTP to loopback needs no --insecure."""
    proxy.tag_page_size = 1
    out = tmp_path / "snap"
    crawled(api_crawl(proxy.url, out, env={"REGSTAT_PAGE_SIZE": "1"}), out)
    assert tables(out) == baseline
    requested = [path for _, path, _ in proxy.log]
    assert sum(p.startswith("/v2/_catalog?") for p in requested) == 4  # 4 repositories, 1 a page
    assert any(p.startswith("/v2/_catalog?") and "last=" in p for p in requested)
    assert any(p.startswith("/v2/apps/web/tags/list?") and "last=latest" in p for p in requested)


def test_referrers_api_where_the_registry_offers_it(
    populated_fs: Populated, proxy: FaultProxy, baseline: dict, tmp_path: Path
) -> None:
    """The proxy answers the OCI 1.1 referrers API (2.8.2 does not) and hides the signature's
    `sha256-<hex>.sig` tag: the signature is found through its subject, as an untagged
    revision."""
    names = populated_fs.expected.names
    signature = next(m for m in populated_fs.expected.manifests if m.digest == names["signature"])
    signature_tag = "sha256-" + names["api_v1"].split(":")[1] + ".sig"
    proxy.hidden_tags["apps/api"] = [signature_tag]

    def referrers(method: str, path: str, count: int) -> Any:
        if "/referrers/" not in path:
            return None
        found = [] if not path.endswith(names["api_v1"]) else [
            {"mediaType": signature.media_type, "digest": signature.digest, "size": signature.size,
             "artifactType": signature.artifact_type}
        ]  # fmt: skip
        index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": found}
        return 200, {"Content-Type": "application/vnd.oci.image.index.v1+json"}, json.dumps(index).encode()

    proxy.fault = referrers
    out = tmp_path / "snap"
    crawled(api_crawl(proxy.url, out, "--insecure"), out)
    got = tables(out)
    assert got["manifests"] == baseline["manifests"] and got["descriptors"] == baseline["descriptors"]
    assert got["tags"] == [t for t in baseline["tags"] if t["tag"] != signature_tag]
    asked = {path.rsplit("/", 1)[1] for _, path, _ in proxy.log if "/referrers/" in path}
    assert asked == {m["digest"] for m in baseline["manifests"]}  # every manifest, once


def test_repository_split_into_several_jobs(
    populated_fs: Populated, baseline: dict, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One tag per job: a repository's jobs share what they fetched, and nothing is lost or doubled."""
    from regstat.crawl import crawl_source
    from regstat.sources.registry_api import source as distribution_api
    from regstat.sources.base import CrawlOptions

    monkeypatch.setattr(distribution_api, "TAGS_PER_JOB", 1)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    options = CrawlOptions(concurrency=4)
    source = distribution_api.open_distribution_api(populated_fs.registry.url, options)
    assert crawl_source(source, str(tmp_path / "snap"), options).complete
    assert tables(tmp_path / "snap") == baseline


def test_a_repository_without_tags_is_empty_not_an_error(proxy: FaultProxy, baseline: dict, tmp_path: Path) -> None:
    """Distribution answers 404 NAME_UNKNOWN for the tags of a repository whose manifests
    were all pushed by digest: the catalog lists it, the API sees nothing in it."""
    names = [r["repository"] for r in baseline["repositories"]] + ["untagged/only"]
    catalog = json.dumps({"repositories": sorted(names)}).encode()
    proxy.canned[("GET", "/v2/_catalog")] = (200, {"Content-Type": "application/json"}, catalog)
    unknown = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
    proxy.canned[("GET", "/v2/untagged/only/tags/list")] = (404, {}, json.dumps(unknown).encode())
    out = tmp_path / "snap"
    crawled(api_crawl(proxy.url, out, "--insecure"), out)
    got = tables(out)
    assert {r["repository"]: r["complete"] for r in got["repositories"]}["untagged/only"] is True
    assert {k: v for k, v in got.items() if k != "repositories"} == {
        k: v for k, v in baseline.items() if k != "repositories"
    }
    # --repository: the catalog still tells how many repositories the registry has.
    out = tmp_path / "apps"
    meta = crawled(api_crawl(proxy.url, out, "--insecure", "--repository", "apps/*"), out)
    assert meta["counts"]["repositories"] == 2 and meta["source_repositories"] == len(names)

    # Named with --repository (as where there is no catalog), an unknown name is an error.
    proxy.canned[("GET", "/v2/_catalog")] = (404, {}, b"")
    out = tmp_path / "named"
    meta = crawled(api_crawl(proxy.url, out, "--insecure", "--repository", "untagged/only"), out, code=3)
    assert [(e["repository"], e["kind"]) for e in meta["errors"]] == [("untagged/only", "read_error")]
    assert "NAME_UNKNOWN" in meta["errors"][0]["message"]
    assert meta["source_repositories"] is None  # no catalog: unknown


def test_a_catalog_ending_in_an_empty_page_still_lists_its_repositories(
    proxy: FaultProxy, baseline: dict, tmp_path: Path
) -> None:
    """A catalog whose last page is empty (distribution links to one more page when the
    repositories fill the one before exactly): its repositories are still listed ones, so a
    tagless one among them is empty, not an error."""
    names = sorted([r["repository"] for r in baseline["repositories"]] + ["untagged/only"])
    json_type = {"Content-Type": "application/json"}

    def catalog(method: str, path: str, headers: Mapping[str, str]) -> Canned | None:
        if not path.startswith("/v2/_catalog"):
            return None
        if "last=" in path:
            return 200, json_type, json.dumps({"repositories": []}).encode()
        link = {"Link": f'</v2/_catalog?last={names[-1]}&n={len(names)}>; rel="next"'}
        return 200, {**json_type, **link}, json.dumps({"repositories": names}).encode()

    proxy.respond = catalog
    unknown = {"errors": [{"code": "NAME_UNKNOWN", "message": "repository name not known to registry"}]}
    proxy.canned[("GET", "/v2/untagged/only/tags/list")] = (404, {}, json.dumps(unknown).encode())
    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out, "--insecure"), out)
    assert any("last=" in path for _, path, _ in proxy.log)  # the empty page was read
    assert meta["errors"] == []
    assert {r["repository"]: r["complete"] for r in tables(out)["repositories"]}["untagged/only"] is True


def test_a_referrer_without_a_digest_is_an_invalid_answer(proxy: FaultProxy, tmp_path: Path) -> None:
    """A referrers list holding a descriptor with no digest is recorded as an invalid answer
    for the manifest it was asked about; the crawl goes on."""

    def referrers(method: str, path: str, headers: Mapping[str, str]) -> Canned | None:
        if "/referrers/" not in path:
            return None
        index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [{"mediaType": OCI_MANIFEST, "size": 2}]}
        return 200, {"Content-Type": OCI_INDEX}, json.dumps(index).encode()

    proxy.respond = referrers
    out = tmp_path / "snap"
    result = api_crawl(proxy.url, out, "--insecure")
    meta = crawled(result, out, code=3)
    assert "Traceback" not in result.stderr
    assert meta["errors"] and {(e["kind"], e["message"]) for e in meta["errors"]} == {
        ("invalid_response", "the referrers are not a list of descriptors")
    }


def test_link_to_another_host_is_not_followed(proxy: FaultProxy, tmp_path: Path) -> None:
    proxy.foreign_link = "http://registry.invalid"
    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out, "--insecure", env={"REGSTAT_PAGE_SIZE": "2"}), out, code=3)
    assert [(e["repository"], e["kind"]) for e in meta["errors"]] == [(None, "foreign_link")]
    assert "registry.invalid" in meta["errors"][0]["message"]
    assert [r["repository"] for r in tables(out)["repositories"]] == ["apps/api", "apps/web"]


# --- faults -----------------------------------------------------------------------------------


def test_retries_through_503_429_and_dropped_connections(proxy: FaultProxy, baseline: dict, tmp_path: Path) -> None:
    def first_time_fails(method: str, path: str, count: int) -> Any:
        if count > 1:
            return None
        if method == "HEAD":
            return DROP
        if len(path) % 2:
            return 503, {"Retry-After": "0"}, b"busy"
        return 429, {"Retry-After": "0"}, b"slow down"

    proxy.fault = first_time_fails
    out = tmp_path / "snap"
    crawled(api_crawl(proxy.url, out, "--insecure"), out)
    assert tables(out) == baseline
    statuses = {status for _, _, status in proxy.log}
    assert {0, 429, 503} <= statuses


def test_a_repository_that_always_fails_is_incomplete(proxy: FaultProxy, baseline: dict, tmp_path: Path) -> None:
    proxy.fault = lambda method, path, count: (
        (503, {"Retry-After": "0"}, b"down") if path.startswith("/v2/apps/web/") else None
    )
    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out, "--insecure"), out, code=3)
    assert meta["incomplete_repositories"] == ["apps/web"]
    assert {(e["repository"], e["kind"]) for e in meta["errors"]} == {("apps/web", "read_error")}
    assert "503" in meta["errors"][0]["message"]
    got = tables(out)
    for table in ("tags", "manifests", "descriptors"):
        assert got[table] == without(baseline[table], "apps/web"), table
    assert {r["repository"]: r["complete"] for r in got["repositories"]} == {
        "apps/api": True,
        "apps/web": False,
        "base/alpine": True,
        "tools/cli": True,
    }


def test_bad_input_is_recorded_against_its_repository(
    populated_fs: Populated, proxy: FaultProxy, baseline: dict, tmp_path: Path
) -> None:
    names, registry = populated_fs.expected.names, populated_fs.registry
    # base/alpine: a body that does not hash to its digest.
    alpine, _, _ = registry.get_manifest("base/alpine", names["base"])
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": names["base"]}
    proxy.canned[("GET", f"/v2/base/alpine/manifests/{names['base']}")] = (200, headers, alpine + b" ")
    # tools/cli: an index child over 4 MiB.
    child = next(d.digest for d in populated_fs.expected.descriptors if d.manifest_digest == names["cli_index"])
    big = b" " * (4 * 1024 * 1024 + 10)
    proxy.canned[("GET", f"/v2/tools/cli/manifests/{child}")] = (200, {"Content-Type": OCI_MANIFEST}, big)
    # apps/api: the signature's tag serves malformed JSON (that hashes to the digest named).
    signature_tag = "sha256-" + names["api_v1"].split(":")[1] + ".sig"
    _canned_manifest(proxy, "apps/api", signature_tag, b"{not json")
    # apps/web: a listed tag that answers 404, and one of a media type regstat does not know.
    proxy.extra_tags["apps/web"] = ["gone", "weird"]
    weird = _canned_manifest(proxy, "apps/web", "weird", b'{"schemaVersion":2,"mediaType":"application/x-weird"}')

    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out, "--insecure"), out, code=3)
    assert {(e["repository"], e["kind"]) for e in meta["errors"]} == {
        ("base/alpine", "digest_mismatch"),
        ("tools/cli", "manifest_too_large"),
        ("apps/api", "invalid_manifest"),
        ("apps/web", "tag_vanished"),
    }
    got = tables(out)
    status = {(m["repository"], m["digest"]): m["status"] for m in got["manifests"]}
    assert status[("base/alpine", names["base"])] == "digest_mismatch"
    paths = {e["kind"]: e["path"] for e in meta["errors"]}
    assert paths["digest_mismatch"] == f"/v2/base/alpine/manifests/{names['base']}"
    assert status[("tools/cli", child)] == "too_large"
    assert status[("apps/web", weird)] == "unknown_media_type"
    assert "gone" not in {t["tag"] for t in got["tags"]}
    # The crawl went on: what was not tampered with is all there.
    assert without(got["manifests"], "tools/cli") != [] and status[("tools/cli", names["cli_list"])] == "ok"
    assert [t for t in got["tags"] if t["repository"] == "base/alpine"] == [
        t for t in baseline["tags"] if t["repository"] == "base/alpine"
    ]


def _canned_manifest(proxy: FaultProxy, repository: str, tag: str, body: bytes) -> str:
    """Serve `body` for `tag` (HEAD and GET by digest); return its digest."""
    digest = sha256_digest(body)
    headers = {"Content-Type": OCI_MANIFEST, "Docker-Content-Digest": digest, "Content-Length": str(len(body))}
    proxy.canned[("HEAD", f"/v2/{repository}/manifests/{tag}")] = (200, headers, b"")
    proxy.canned[("GET", f"/v2/{repository}/manifests/{digest}")] = (200, headers, body)
    return digest


# --- the source is not there ------------------------------------------------------------------


def test_unreachable_or_unsafe_sources_are_refused(tmp_path: Path) -> None:
    out = tmp_path / "snap"
    refused(api_crawl(f"http://127.0.0.1:{free_port()}", out, "--insecure"), out, "connection refused")
    refused(api_crawl("http://registry.invalid:5000", out), out, "refusing plain HTTP", "--insecure")
    line = refused(api_crawl("https://someone:hunter2-secret@registry.invalid", out), out, "--username")
    assert "hunter2" not in line


def test_tls_is_verified_unless_insecure(populated_fs: Populated, baseline: dict, tmp_path: Path) -> None:
    require_tools("openssl")
    cert, key = tls_certificate(tmp_path / "tls")
    with same_storage(populated_fs, tmp_path / "registry", tls=(cert, key)) as registry:
        assert registry.url.startswith("https://")
        out = tmp_path / "snap"
        refused(api_crawl(registry.url, out), out, "TLS verification failed")
        for name, args in [("ca-file", ("--ca-file", str(cert))), ("insecure", ("--insecure",))]:
            out = tmp_path / name
            crawled(api_crawl(registry.url, out, *args), out)
            assert tables(out) == baseline, name


# --- authentication ---------------------------------------------------------------------------


def test_basic_auth(htpasswd_registry: Registry, baseline: dict, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    crawled(api_crawl(htpasswd_registry.url, out, "--insecure", password=PASSWORD), out)
    assert tables(out) == baseline
    out = tmp_path / "refused"
    refused(api_crawl(htpasswd_registry.url, out, "--insecure", password="wrong"), out, "refused the credentials")
    refused(api_crawl(htpasswd_registry.url, out, "--insecure"), out, "requires a user and password")


def test_credentials_from_docker_config(htpasswd_registry: Registry, baseline: dict, tmp_path: Path) -> None:
    """`auths` (base64 user:password), then a credential helper named by `credHelpers`."""
    config = tmp_path / "docker"
    config.mkdir()
    pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    (config / "config.json").write_text(json.dumps({"auths": {f"http://{htpasswd_registry.host}": {"auth": pair}}}))
    out = tmp_path / "auths"
    crawled(api_crawl(htpasswd_registry.url, out, "--insecure", env={"DOCKER_CONFIG": str(config)}), out)
    assert tables(out) == baseline

    bin_dir, asked = tmp_path / "bin", tmp_path / "asked"
    bin_dir.mkdir()
    helper = bin_dir / "docker-credential-regstattest"
    answer = json.dumps({"ServerURL": htpasswd_registry.host, "Username": USER, "Secret": PASSWORD})
    helper.write_text(f"#!/bin/sh\n[ \"$1\" = get ] || exit 1\ncat > {asked}\necho '{answer}'\n")
    helper.chmod(0o755)
    (config / "config.json").write_text(json.dumps({"credHelpers": {htpasswd_registry.host: "regstattest"}}))
    out = tmp_path / "helper"
    env = {"DOCKER_CONFIG": str(config), "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    crawled(api_crawl(htpasswd_registry.url, out, "--insecure", env=env), out)
    assert tables(out) == baseline
    assert asked.read_text() == htpasswd_registry.host


def test_bearer_tokens_cached_per_scope(
    token_registry: Registry, token_server: TokenServer, baseline: dict, tmp_path: Path
) -> None:
    before = len(token_server.issued)
    out = tmp_path / "snap"
    crawled(api_crawl(token_registry.url, out, "--insecure", password=PASSWORD), out)
    assert tables(out) == baseline
    issued = token_server.issued[before:]
    assert all(i.user == USER for i in issued)
    scopes = sorted(i.scopes for i in issued)
    # One token per scope: /v2/ (none), the catalog, and each repository.
    assert scopes == [
        (),
        ("registry:catalog:*",),
        ("repository:apps/api:pull",),
        ("repository:apps/web:pull",),
        ("repository:base/alpine:pull",),
        ("repository:tools/cli:pull",),
    ]


def test_bearer_without_credentials_is_refused(token_registry: Registry, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    refused(api_crawl(token_registry.url, out, "--insecure"), out, "does not list its repositories")
    refused(api_crawl(token_registry.url, out, "--insecure", password="wrong"), out, "refused")


def test_expired_token_is_refreshed_on_401(token_registry: Registry, token_server: TokenServer, tmp_path: Path) -> None:
    """Tokens that the registry stops accepting after ~3 s (distribution allows 60 s past
    `exp`), though the token service says they last 300 s: the second crawl, with the same
    source (and token cache), meets 401s and fetches fresh tokens."""
    from regstat.crawl import crawl_source
    from regstat.sources.base import CrawlOptions
    from regstat.sources.registry_api.source import open_distribution_api

    options = CrawlOptions(username=USER, password=PASSWORD, insecure=True)
    token_server.jwt_lifetime = -57
    try:
        source = open_distribution_api(token_registry.url, options)
        assert crawl_source(source, str(tmp_path / "first"), options).complete
        before = len(token_server.issued)
        time.sleep(4)
        assert crawl_source(source, str(tmp_path / "second"), options).complete
    finally:
        token_server.jwt_lifetime = 300
    refreshed = sorted(i.scopes for i in token_server.issued[before:])
    assert refreshed == [
        ("registry:catalog:*",),
        ("repository:apps/api:pull",),
        ("repository:apps/web:pull",),
        ("repository:base/alpine:pull",),
        ("repository:tools/cli:pull",),
    ]


def test_credentials_never_go_to_a_plain_http_realm_on_another_host(
    populated_fs: Populated, tmp_path: Path
) -> None:
    """The registry (127.0.0.1) names a realm on `localhost` over plain HTTP: refused, even
    with the user's consent to that host."""
    require_tools("openssl")
    with TokenServer(tmp_path / "token", {USER: PASSWORD}, realm_host="localhost") as server:
        with same_storage(populated_fs, tmp_path / "registry", server.registry_auth()) as registry:  # type: ignore[attr-defined]
            for consent in ({}, {"REGSTAT_REALM_HOSTS": "localhost"}):
                out = tmp_path / "snap"
                line = refused(
                    api_crawl(registry.url, out, "--insecure", password=PASSWORD, env=consent), out,
                    "not sending credentials"
                )
                assert "neither HTTPS nor the registry's own host" in line
        assert server.authorization_seen == []  # type: ignore[attr-defined]


def test_credentials_go_to_an_https_realm_on_another_host_only_with_consent(
    populated_fs: Populated, baseline: dict, tmp_path: Path
) -> None:
    """The registry (127.0.0.1) names a realm on `localhost` over HTTPS: another host, so the
    credentials go there only once REGSTAT_REALM_HOSTS names it."""
    require_tools("openssl")
    cert, key = tls_certificate(tmp_path / "tls", dns_name="localhost")
    with TokenServer(tmp_path / "token", {USER: PASSWORD}, realm_host="localhost", tls=(cert, key)) as server:
        assert server.realm.startswith("https://localhost:")  # type: ignore[attr-defined]
        with same_storage(populated_fs, tmp_path / "registry", server.registry_auth()) as registry:  # type: ignore[attr-defined]
            out = tmp_path / "refused"
            line = refused(api_crawl(registry.url, out, "--ca-file", str(cert), password=PASSWORD), out)
            assert "not sending credentials" in line and "REGSTAT_REALM_HOSTS=localhost" in line
            assert server.authorization_seen == []  # type: ignore[attr-defined]
            out = tmp_path / "consent"
            consent = {"REGSTAT_REALM_HOSTS": "registry.invalid, LOCALHOST"}
            crawled(api_crawl(registry.url, out, "--ca-file", str(cert), password=PASSWORD, env=consent), out)
            assert tables(out) == baseline
        pair = base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
        assert set(server.authorization_seen) == {f"Basic {pair}"}  # type: ignore[attr-defined]


def test_credentials_never_follow_a_link_to_another_host(
    htpasswd_registry: Registry, baseline: dict, tmp_path: Path
) -> None:
    """Tag pages link to another origin (a second proxy, on `localhost`): not followed, so it
    never hears from regstat, least of all its credentials."""
    with FaultProxy(htpasswd_registry.url) as proxy, FaultProxy(htpasswd_registry.url) as elsewhere:
        proxy.tag_page_size = 1  # type: ignore[attr-defined]
        proxy.foreign_link = f"http://localhost:{elsewhere.port}"  # type: ignore[attr-defined]
        out = tmp_path / "snap"
        meta = crawled(api_crawl(proxy.url, out, password=PASSWORD), out, code=3)  # type: ignore[attr-defined]
        assert elsewhere.log == []  # type: ignore[attr-defined]
    tag_counts = collections.Counter(t["repository"] for t in baseline["tags"])
    several = sorted(r for r, n in tag_counts.items() if n > 1)
    assert several
    assert sorted((e["repository"], e["kind"]) for e in meta["errors"]) == [(r, "foreign_link") for r in several]
    assert all(e["path"] == f"/v2/{e['repository']}/tags/list" for e in meta["errors"])


def test_passwords_and_tokens_never_appear(
    htpasswd_registry: Registry, token_registry: Registry, token_server: TokenServer, tmp_path: Path
) -> None:
    """Every output of successful, failing and incomplete crawls, searched for secrets."""
    runs = []
    for name, url, password in [
        ("basic", htpasswd_registry.url, PASSWORD),
        ("basic-wrong", htpasswd_registry.url, PASSWORD + "-wrong"),
        ("bearer", token_registry.url, PASSWORD),
        ("bearer-wrong", token_registry.url, PASSWORD + "-wrong"),
    ]:
        out = tmp_path / name
        runs.append((out, api_crawl(url, out, "--insecure", "--json", password=password)))
    texts = [r.stdout + r.stderr for _, r in runs]
    files = [p.read_bytes() for out, _ in runs if out.exists() for p in out.rglob("*") if p.is_file()]
    assert len(files) > 10, "the successful crawls wrote their snapshots"
    secrets = [PASSWORD, base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode(), *token_server.tokens()]
    assert len(secrets) > 2
    for secret in secrets:
        for text in texts:
            assert secret not in text
        for data in files:
            assert secret.encode() not in data
