"""The ACR stand-in itself (tests/support/acr_standin.py and friends), through plain urllib.

It must answer as ACR's data-plane API 2021-07-01 does (the spec's examples and recorded real
traffic): field names and types, 7-digit times, paging with ``Link``, the token flow, locks,
and a tag deleted through ``/acr/v1`` gone from ``/v2``. What it lists must be what was pushed
into the registry behind it (the scenario's own record), not what regstat would crawl.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import threading
import urllib.error
import urllib.request
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest

from support.acr_components import AcrStandin, PopulatedAcr
from support.azure_cli import az_calls
from support.expected import Expected

pytestmark = pytest.mark.registry

TIME = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{7}Z$")
ATTRIBUTES = {"deleteEnabled", "writeEnabled", "readEnabled", "listEnabled"}
# The spec's ManifestAttributesBase (plus mediaType, which its examples and ACR carry).
MANIFEST_FIELDS = {"digest", "imageSize", "createdTime", "lastUpdateTime", "architecture", "os", "references",
                   "mediaType", "configMediaType", "tags", "changeableAttributes"}
TAG_FIELDS = {"name", "digest", "createdTime", "lastUpdateTime", "signed", "changeableAttributes"}
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))

Answer = tuple[int, dict[str, str], bytes]


def call(method: str, url: str, headers: dict[str, str] | None = None, data: bytes | None = None) -> Answer:
    request = urllib.request.Request(url, data=data, method=method, headers=headers or {})
    try:
        with _OPENER.open(request, timeout=60) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as e:
        return e.code, {k.lower(): v for k, v in e.headers.items()}, e.read()


def basic(user: str, password: str) -> dict[str, str]:
    return {"Authorization": "Basic " + base64.b64encode(f"{user}:{password}".encode()).decode()}


def admin(acr: AcrStandin) -> dict[str, str]:
    return basic(acr.admin_username, acr.admin_password)


def get_json(acr: AcrStandin, path: str, headers: dict[str, str] | None = None) -> tuple[dict, dict[str, str]]:
    status, got, body = call("GET", acr.url + path, headers or admin(acr))
    assert status == 200, (path, status, body)
    assert got["content-type"].startswith("application/json")
    return json.loads(body), got


def challenge(headers: dict[str, str]) -> dict[str, str]:
    scheme, _, params = headers["www-authenticate"].partition(" ")
    assert scheme == "Bearer"
    return dict(re.findall(r'(\w+)="([^"]*)"', params))


def form(fields: dict[str, str]) -> bytes:
    return urlencode(fields).encode()


def all_pages(acr: AcrStandin, path: str, key: str) -> tuple[list, int]:
    """Follow ``Link`` from ``path``; every item of every page, and the number of pages."""
    items, pages, next_path = [], 0, path
    while next_path:
        doc, headers = get_json(acr, next_path)
        items += doc[key]
        pages += 1
        link = headers.get("link")
        if link is None:
            break
        found = re.fullmatch(r'<(/acr/v1/[^>]+)>; rel="next"', link)
        assert found, link
        next_path = found.group(1)
        assert pages < 50
    return items, pages


def claims_of(token: str) -> dict:
    return json.loads(base64.urlsafe_b64decode(token.split(".")[1] + "=="))  # type: ignore[no-any-return]


def refresh_grant(standin: AcrStandin, refresh: str, scope: str) -> tuple[int, str]:
    status, _, body = call("POST", f"{standin.url}/oauth2/token", data=form({
        "grant_type": "refresh_token", "service": standin.host, "scope": scope, "refresh_token": refresh}))
    return status, json.loads(body).get("access_token", "") if status == 200 else ""


@pytest.fixture
def acr(populated_acr: PopulatedAcr) -> PopulatedAcr:
    """The module's populated registry behind a fresh stand-in: for tests that delete nothing in it."""
    return populated_acr


@pytest.fixture
def fresh(acr_standin: AcrStandin, populate: Callable[..., Expected]) -> tuple[AcrStandin, Expected]:
    """A registry of this test's own, populated: for tests that delete or push."""
    return acr_standin, populate(acr_standin.registry)


def live(expected: Expected, repository: str) -> set[str]:
    return {m.digest for m in expected.manifests if m.repository == repository and m.status == "ok"}


def tagged(expected: Expected, repository: str) -> dict[str, str]:
    return {t.tag: t.digest for t in expected.tags if t.repository == repository}


# --- shapes ---------------------------------------------------------------------------------


def test_every_answer_has_the_specs_fields_and_what_was_pushed(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    doc, _ = get_json(standin, "/acr/v1/_catalog")
    assert doc == {"repositories": sorted({r.repository for r in expected.repositories})}

    for repository in ("apps/web", "tools/cli", "apps/api", "base/alpine"):
        quoted = repository.replace("/", "%2F")
        attributes, _ = get_json(standin, f"/acr/v1/{quoted}")
        assert set(attributes) == {"registry", "imageName", "createdTime", "lastUpdateTime", "manifestCount",
                                   "tagCount", "changeableAttributes"}
        assert attributes["registry"] == standin.host and attributes["imageName"] == repository
        assert attributes["manifestCount"] == len(live(expected, repository))
        assert attributes["tagCount"] == len(tagged(expected, repository))
        assert TIME.match(attributes["createdTime"]) and TIME.match(attributes["lastUpdateTime"])

        tags, _ = get_json(standin, f"/acr/v1/{quoted}/_tags")
        assert set(tags) == {"registry", "imageName", "tags"}
        assert {t["name"]: t["digest"] for t in tags["tags"]} == tagged(expected, repository)
        for tag in tags["tags"]:
            assert set(tag) == TAG_FIELDS and tag["signed"] is False
            assert TIME.match(tag["createdTime"]) and TIME.match(tag["lastUpdateTime"])
            assert tag["changeableAttributes"] == dict.fromkeys(ATTRIBUTES, True)

        manifests, _ = get_json(standin, f"/acr/v1/{quoted}/_manifests")
        assert set(manifests) == {"registry", "imageName", "manifests"}
        assert {m["digest"] for m in manifests["manifests"]} == live(expected, repository)
        for manifest in manifests["manifests"]:
            assert set(manifest) <= MANIFEST_FIELDS and "references" not in manifest
            assert isinstance(manifest["imageSize"], int) and manifest["imageSize"] > 0
            assert TIME.match(manifest["createdTime"]) and TIME.match(manifest["lastUpdateTime"])
            assert set(manifest["changeableAttributes"]) == ATTRIBUTES
            names = sorted(t for t, d in tagged(expected, repository).items() if d == manifest["digest"])
            assert manifest.get("tags") == (names or None)  # untagged: no key at all


def test_a_manifest_alone_names_platforms_and_an_index_its_references(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    names = expected.names
    index, _ = get_json(standin, f"/acr/v1/tools%2Fcli/_manifests/{names['cli_index']}")
    assert set(index) == {"registry", "imageName", "manifest"}
    body = index["manifest"]
    assert body["mediaType"] == "application/vnd.oci.image.index.v1+json" and "architecture" not in body
    assert body["tags"] == ["v1"]
    assert sorted((r["architecture"], r["os"]) for r in body["references"]) == [("amd64", "linux"), ("arm64", "linux")]
    children = {r["digest"] for r in body["references"]}
    listed, _ = get_json(standin, "/acr/v1/tools%2Fcli/_manifests")
    platforms = {m["digest"]: (m.get("architecture"), m.get("os")) for m in listed["manifests"]}
    assert {platforms[c] for c in children} == {("amd64", "linux"), ("arm64", "linux")}
    # by tag, as ACR allows
    by_tag, _ = get_json(standin, "/acr/v1/tools%2Fcli/_manifests/v1")
    assert by_tag["manifest"]["digest"] == names["cli_index"]
    status, _, body_bytes = call("GET", standin.url + "/acr/v1/tools%2Fcli/_manifests/sha256:" + "0" * 64,
                                 admin(standin))
    assert status == 404 and json.loads(body_bytes)["errors"][0]["code"] == "MANIFEST_UNKNOWN"


def test_unknown_repository_and_tag_answer_404_with_acr_codes(acr_standin: AcrStandin) -> None:
    status, _, body = call("GET", acr_standin.url + "/acr/v1/no%2Fsuch/_tags", admin(acr_standin))
    assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN"


# --- paging ---------------------------------------------------------------------------------


def test_n_1_pages_everything_one_at_a_time_through_link(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    _, headers = get_json(standin, "/acr/v1/_catalog?n=1")
    assert headers["link"] == '</acr/v1/_catalog?last=apps%2Fapi&n=1&orderby=>; rel="next"'  # as ACR writes it
    repositories, pages = all_pages(standin, "/acr/v1/_catalog?n=1", "repositories")
    assert repositories == sorted({r.repository for r in expected.repositories}) and pages == len(repositories)
    tags, pages = all_pages(standin, "/acr/v1/apps%2Fweb/_tags?n=1", "tags")
    assert [t["name"] for t in tags] == sorted(tagged(expected, "apps/web")) and pages == len(tags)
    manifests, pages = all_pages(standin, "/acr/v1/tools%2Fcli/_manifests?n=1", "manifests")
    assert sorted(m["digest"] for m in manifests) == sorted(live(expected, "tools/cli")) == [
        m["digest"] for m in manifests]
    assert pages == len(manifests) == 6

    _, headers = get_json(standin, "/acr/v1/tools%2Fcli/_manifests?n=2")
    link = urlsplit(re.fullmatch(r"<([^>]+)>; rel=\"next\"", headers["link"]).group(1))  # type: ignore[union-attr]
    assert link.path == "/acr/v1/tools%2Fcli/_manifests"
    assert set(parse_qs(link.query, keep_blank_values=True)) == {"last", "n", "orderby"}


def test_orderby_sorts_by_last_update_time(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    standin.set_times("tools/cli", tag="v1", updated=datetime(2020, 1, 1, tzinfo=UTC))
    standin.set_times("tools/cli", tag="v1-docker", updated=datetime(2021, 6, 1, 12, 0, 0, 123456, tzinfo=UTC))
    doc, _ = get_json(standin, "/acr/v1/tools%2Fcli/_tags?orderby=timedesc")
    assert [t["name"] for t in doc["tags"]] == ["v1-docker", "v1"]
    assert doc["tags"][0]["lastUpdateTime"] == "2021-06-01T12:00:00.1234560Z"
    doc, _ = get_json(standin, "/acr/v1/tools%2Fcli/_tags?orderby=timeasc")
    assert [t["name"] for t in doc["tags"]] == ["v1", "v1-docker"]

    old = expected.names["cli_list"]
    standin.set_times("tools/cli", digest=old, created=datetime(2019, 1, 1), updated=datetime(2019, 1, 2))
    doc, _ = get_json(standin, f"/acr/v1/tools%2Fcli/_manifests/{old}")
    assert (doc["manifest"]["createdTime"], doc["manifest"]["lastUpdateTime"]) == (
        "2019-01-01T00:00:00.0000000Z", "2019-01-02T00:00:00.0000000Z")
    manifests, _ = all_pages(standin, "/acr/v1/tools%2Fcli/_manifests?n=1&orderby=timeasc", "manifests")
    assert manifests[0]["digest"] == old and len(manifests) == 6


# --- auth -----------------------------------------------------------------------------------


def token_for(standin: AcrStandin, status_headers: dict[str, str], headers: dict[str, str]) -> str:
    """The challenge's realm, asked (GET, Basic) for the challenge's scope."""
    params = challenge(status_headers)
    assert params["realm"] == f"http://{standin.host}/oauth2/token" and params["service"] == standin.host
    query = urlencode({"service": params["service"], "scope": params.get("scope", "")})
    status, _, body = call("GET", f"{params['realm']}?{query}", headers)
    assert status == 200, body
    return str(json.loads(body)["access_token"])


def test_a_401_challenge_leads_to_a_token_that_opens_the_resource(acr: tuple[AcrStandin, Expected]) -> None:
    standin, _ = acr
    status, headers, body = call("GET", standin.url + "/v2/")
    assert status == 401 and "scope" not in challenge(headers)
    assert call("GET", standin.url + "/v2/", admin(standin))[0] == 200

    status, headers, body = call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags")
    assert status == 401
    assert challenge(headers)["scope"] == "repository:apps/web:metadata_read"
    assert json.loads(body)["errors"][0]["detail"] == [
        {"Type": "repository", "Name": "apps/web", "Action": "metadata_read"}]
    token = token_for(standin, headers, admin(standin))
    assert claims_of(token)["access"] == [{"Type": "repository", "Name": "apps/web", "Actions": ["metadata_read"]}]
    bearer = {"Authorization": f"Bearer {token}"}
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", bearer)[0] == 200
    # The token is for that scope only: pulls and other repositories want their own.
    status, headers, _ = call("GET", standin.url + "/v2/apps/web/tags/list", bearer)
    assert status == 401 and challenge(headers)["scope"] == "repository:apps/web:pull"
    assert challenge(headers)["error"] == "insufficient_scope"

    status, headers, _ = call("GET", standin.url + "/acr/v1/_catalog")
    assert challenge(headers)["scope"] == "registry:catalog:*"
    catalog = {"Authorization": "Bearer " + token_for(standin, headers, admin(standin))}
    assert call("GET", standin.url + "/acr/v1/_catalog", catalog)[0] == 200
    assert call("GET", standin.url + "/v2/_catalog", catalog)[0] == 200


def test_an_expired_token_is_refused_and_a_renewed_one_accepted(acr: tuple[AcrStandin, Expected]) -> None:
    standin, _ = acr

    def manifests(token: str) -> Answer:
        return call("GET", standin.url + "/acr/v1/apps%2Fweb/_manifests", {"Authorization": f"Bearer {token}"})

    _, headers, _ = call("GET", standin.url + "/acr/v1/apps%2Fweb/_manifests")
    standin.token_lifetime = -1  # born expired: no waiting
    status, refused, _ = manifests(token_for(standin, headers, admin(standin)))
    assert status == 401 and challenge(refused)["error"] == "invalid_token"
    standin.token_lifetime = 3600
    fresh = token_for(standin, refused, admin(standin))
    assert manifests(fresh)[0] == 200
    standin.expire_access_tokens()  # mid-run, at once
    status, refused, _ = manifests(fresh)
    assert status == 401 and challenge(refused)["error"] == "invalid_token"
    assert manifests(token_for(standin, refused, admin(standin)))[0] == 200
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb", {"Authorization": "Bearer not.a.token"})[0] == 401
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb", basic(standin.admin_username, "wrong"))[0] == 401


def test_a_scoped_token_gets_only_its_repositories_and_actions(acr: tuple[AcrStandin, Expected]) -> None:
    standin, _ = acr
    standin.scoped_token("reader", "reader-pw", ["apps/web"])
    reader = basic("reader", "reader-pw")
    realm = f"{standin.url}/oauth2/token"

    def granted(scope: str) -> list:
        status, _, body = call("POST", realm, data=form({
            "grant_type": "password", "service": standin.host, "scope": scope,
            "username": "reader", "password": "reader-pw"}))
        assert status == 200
        return claims_of(json.loads(body)["access_token"])["access"]  # type: ignore[no-any-return]

    assert granted("repository:apps/web:metadata_read,pull,delete") == [
        {"Type": "repository", "Name": "apps/web", "Actions": ["metadata_read", "pull"]}]
    assert granted("repository:apps/api:metadata_read") == []
    assert granted("registry:catalog:*") == []

    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", reader)[0] == 200
    assert call("GET", standin.url + "/acr/v1/apps%2Fapi/_tags", reader)[0] == 401
    assert call("GET", standin.url + "/acr/v1/_catalog", reader)[0] == 401
    status, headers, _ = call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", reader)
    assert status == 401 and challenge(headers)["scope"] == "repository:apps/web:delete"
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", reader)[0] == 200  # still there
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb", basic("reader", "wrong"))[0] == 401


def test_an_entra_token_from_the_stub_az_is_exchanged_for_acr_tokens(acr_standin: AcrStandin, tmp_path: Path) -> None:
    standin = acr_standin
    bin_dir = standin.az_stub(tmp_path / "bin")
    done = subprocess.run([str(bin_dir / "az"), "account", "get-access-token", "--output", "json",
                           "--resource", "https://containerregistry.azure.net"],
                          capture_output=True, text=True, check=True, timeout=60, cwd="/bin")
    printed = json.loads(done.stdout)
    assert printed["accessToken"] == standin.entra_token and printed["expires_on"] > 0
    assert az_calls(bin_dir)[-1][-2:] == ["--resource", "https://containerregistry.azure.net"]

    exchange = f"{standin.url}/oauth2/exchange"
    status, _, body = call("POST", exchange, data=form({
        "grant_type": "access_token", "service": standin.host, "tenant": standin.tenant,
        "access_token": printed["accessToken"]}))
    assert status == 200
    refresh = json.loads(body)["refresh_token"]
    status, _, body = call("POST", f"{standin.url}/oauth2/token", data=form({
        "grant_type": "refresh_token", "service": standin.host, "scope": "registry:catalog:*",
        "refresh_token": refresh}))
    assert status == 200
    access = json.loads(body)["access_token"]
    assert call("GET", standin.url + "/acr/v1/_catalog", {"Authorization": f"Bearer {access}"})[0] == 200
    # A refresh token is also a password, for the all-zero user name.
    zero = basic("00000000-0000-0000-0000-000000000000", standin.refresh_token())
    assert call("GET", standin.url + "/acr/v1/_catalog", zero)[0] == 200

    assert call("POST", exchange, data=form({"grant_type": "access_token", "service": standin.host,
                                              "access_token": "forged"}))[0] == 401
    assert call("POST", f"{standin.url}/oauth2/token", data=form({
        "grant_type": "refresh_token", "service": standin.host, "scope": "registry:catalog:*",
        "refresh_token": "forged"}))[0] == 401


def test_acr_cli_s_wildcard_scope_opens_every_repository_but_not_on_abac(acr: tuple[AcrStandin, Expected]) -> None:
    standin, _ = acr
    status, access = refresh_grant(standin, standin.refresh_token(), "registry:catalog:* repository:*:*")
    assert status == 200
    bearer = {"Authorization": f"Bearer {access}"}
    for path in ("/acr/v1/_catalog", "/acr/v1/apps%2Fweb/_tags", "/acr/v1/tools%2Fcli/_manifests",
                 "/v2/base/alpine/tags/list"):
        assert call("GET", standin.url + path, bearer)[0] == 200, path
    assert call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", bearer)[0] == 202

    standin.abac = True  # refresh tokens from now on are an ABAC registry's
    refresh = json.loads(call("POST", f"{standin.url}/oauth2/exchange", data=form({
        "grant_type": "access_token", "service": standin.host, "access_token": standin.entra_token}))[2])[
        "refresh_token"]
    assert "aad_identity" in claims_of(refresh)
    _, access = refresh_grant(standin, refresh, "registry:catalog:* repository:*:*")
    assert claims_of(access)["access"] == [{"Type": "registry", "Name": "catalog", "Actions": ["*"]}]
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", {"Authorization": f"Bearer {access}"})[0] == 401
    _, access = refresh_grant(standin, refresh, "repository:apps/web:pull,delete,metadata_read,metadata_write")
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", {"Authorization": f"Bearer {access}"})[0] == 200


def test_azure_identity_finds_the_stub_az(acr_standin: AcrStandin, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    identity = pytest.importorskip("azure.identity")
    bin_dir = acr_standin.az_stub(tmp_path / "bin")
    monkeypatch.setenv("PATH", f"{bin_dir}:/usr/bin:/bin")
    token = identity.AzureCliCredential().get_token("https://containerregistry.azure.net/.default")
    assert token.token == acr_standin.entra_token
    assert az_calls(bin_dir) == [["account", "get-access-token", "--output", "json",
                                  "--resource", "https://containerregistry.azure.net"]]
    not_logged_in = acr_standin.az_stub(tmp_path / "nobody", logged_in=False)
    monkeypatch.setenv("PATH", f"{not_logged_in}:/usr/bin:/bin")
    with pytest.raises(identity.CredentialUnavailableError):
        identity.AzureCliCredential().get_token("https://containerregistry.azure.net/.default")


# --- faults and counts ----------------------------------------------------------------------


def test_faults_answer_429_with_retry_after_on_a_seeded_share(acr_standin: AcrStandin) -> None:
    standin = acr_standin
    standin.faults(rate=1.0, statuses=(429,), retry_after=7)
    status, headers, body = call("GET", standin.url + "/acr/v1/_catalog", admin(standin))
    assert status == 429 and headers["retry-after"] == "7"
    assert json.loads(body)["errors"][0]["code"] == "TOOMANYREQUESTS"

    def faulted(seed: int) -> list[int]:
        standin.faults(rate=0.2, seed=seed)
        return [call("GET", f"{standin.url}/acr/v1/_catalog?n={n}", admin(standin))[0] for n in range(1, 61)]

    first, second = faulted(1), faulted(2)
    assert set(first) == {200, 429, 503}
    assert 3 <= first.count(429) + first.count(503) <= 30
    assert second != first  # another seed, other faults
    assert faulted(1) == first  # the same seed, the same faults: they hang on (seed, method, path, count)…
    standin.faults(rate=0)
    assert call("GET", standin.url + "/acr/v1/_catalog", admin(standin))[0] == 200
    assert standin.count("GET", r"^/acr/v1/_catalog$") == 1 + 3 * 60 + 1
    assert standin.count("GET", r"^/acr/v1/_catalog$", status=429) == 1 + 2 * first.count(429) + second.count(429)


# --- deletion, the tag overlay, locks ---------------------------------------------------------


def test_untagged_manifests_are_listed_but_have_no_tag(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    old = expected.names["web_old"]
    listed, _ = get_json(standin, "/acr/v1/apps%2Fweb/_manifests")
    untagged = [m for m in listed["manifests"] if m["digest"] == old]
    assert len(untagged) == 1 and "tags" not in untagged[0]
    tags, _ = get_json(standin, "/v2/apps/web/tags/list")
    acr_tags, _ = get_json(standin, "/acr/v1/apps%2Fweb/_tags")
    assert sorted(tags["tags"]) == sorted(t["name"] for t in acr_tags["tags"]) == ["latest", "v2"]
    assert old not in {t["digest"] for t in acr_tags["tags"]}


def test_a_tag_deleted_through_acr_is_gone_from_v2_until_pushed_again(fresh: tuple[AcrStandin, Expected]) -> None:
    standin, expected = fresh
    new, old = expected.names["web_new"], expected.names["web_old"]
    status, _, _ = call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", admin(standin))
    assert status == 202
    assert call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", admin(standin))[0] == 404
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags/v2", admin(standin))[0] == 404
    tags, _ = get_json(standin, "/v2/apps/web/tags/list")
    assert tags["tags"] == ["latest"]
    for method in ("GET", "HEAD"):
        status, _, body = call(method, standin.url + "/v2/apps/web/manifests/v2", admin(standin))
        assert status == 404
        if method == "GET":
            assert json.loads(body)["errors"][0]["code"] == "MANIFEST_UNKNOWN"
    assert call("GET", f"{standin.url}/v2/apps/web/manifests/{new}", {
        **admin(standin), "Accept": "application/vnd.oci.image.manifest.v1+json"})[0] == 200
    manifest, _ = get_json(standin, f"/acr/v1/apps%2Fweb/_manifests/{new}")
    assert manifest["manifest"]["tags"] == ["latest"]
    attributes, _ = get_json(standin, "/acr/v1/apps%2Fweb")
    assert attributes["tagCount"] == 1

    # Pushed again (to another manifest): the tag is back.
    body, media_type, _ = standin.registry.get_manifest("apps/web", old)
    standin.registry.put_manifest("apps/web", "v2", body, media_type)
    tags, _ = get_json(standin, "/v2/apps/web/tags/list")
    assert sorted(tags["tags"]) == ["latest", "v2"]


def test_locks_refuse_deletion_until_lifted(fresh: tuple[AcrStandin, Expected]) -> None:
    standin, expected = fresh
    old, new = expected.names["web_old"], expected.names["web_new"]
    standin.lock("apps/web", tag="latest", delete=True)
    tag, _ = get_json(standin, "/acr/v1/apps%2Fweb/_tags/latest")
    assert tag["tag"]["changeableAttributes"]["deleteEnabled"] is False
    status, _, body = call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/latest", admin(standin))
    assert status == 405 and json.loads(body)["errors"]
    # The tag's lock protects its manifest too.
    assert call("DELETE", f"{standin.url}/v2/apps/web/manifests/{new}", admin(standin))[0] == 405

    standin.lock("apps/web", digest=old, write=True)
    assert call("DELETE", f"{standin.url}/v2/apps/web/manifests/{old}", admin(standin))[0] == 405
    patch = json.dumps({"writeEnabled": True, "deleteEnabled": True}).encode()
    status, _, body = call("PATCH", f"{standin.url}/acr/v1/apps%2Fweb/_manifests/{old}",
                           {**admin(standin), "Content-Type": "application/json"}, patch)
    assert status == 200
    assert json.loads(body)["manifest"]["changeableAttributes"] == dict.fromkeys(ATTRIBUTES, True)
    assert call("DELETE", f"{standin.url}/v2/apps/web/manifests/{old}", admin(standin))[0] == 202
    listed, _ = get_json(standin, "/acr/v1/apps%2Fweb/_manifests")
    assert old not in {m["digest"] for m in listed["manifests"]}
    assert standin.count("DELETE", r"^/v2/apps/web/manifests/") == 3
    assert standin.count("DELETE", r"^/v2/apps/web/manifests/", status=202) == 1

    # PATCH answers the whole tag, as the spec's UpdateTagAttributes example.
    status, _, body = call("PATCH", standin.url + "/acr/v1/apps%2Fweb/_tags/latest",
                           {**admin(standin), "Content-Type": "application/json"},
                           json.dumps({"deleteEnabled": True}).encode())
    assert status == 200 and set(json.loads(body)["tag"]) == TAG_FIELDS
    assert call("DELETE", standin.url + "/acr/v1/apps%2Fweb/_tags/latest", admin(standin))[0] == 202

    standin.lock("base/alpine", delete=True)  # the repository
    assert call("DELETE", standin.url + "/acr/v1/base%2Falpine/_tags/3.19", admin(standin))[0] == 405


def test_the_standin_never_uses_regstat() -> None:
    support = Path(__file__).parent / "support"
    for name in ("acr_standin", "acr_auth", "acr_metadata", "acr_state", "acr_components", "azure_cli"):
        source = (support / f"{name}.py").read_text()
        assert not re.search(r"^\s*(from|import) regstat", source, re.MULTILINE), name


def test_a_deleted_repository_loses_its_manifests_and_leaves_the_catalog(fresh: tuple[AcrStandin, Expected]) -> None:
    standin, expected = fresh
    standin.lock("tools/cli", tag="v1", delete=True)
    assert call("DELETE", standin.url + "/acr/v1/tools%2Fcli", admin(standin))[0] == 405
    status, _, body = call("DELETE", standin.url + "/acr/v1/apps%2Fweb", admin(standin))
    assert status == 202
    assert json.loads(body) == {"manifestsDeleted": sorted(live(expected, "apps/web")),
                                "tagsDeleted": sorted(tagged(expected, "apps/web"))}
    remaining = sorted({r.repository for r in expected.repositories} - {"apps/web"})
    assert get_json(standin, "/acr/v1/_catalog")[0]["repositories"] == remaining
    v2_names, pages = [], 0
    next_path: str | None = "/v2/_catalog?n=1"
    while next_path:
        doc, headers = get_json(standin, next_path)
        v2_names += doc["repositories"]
        pages += 1
        found = re.fullmatch(r'<(/v2/_catalog\?[^>]+)>; rel="next"', headers.get("link", ""))
        next_path = found.group(1) if found else None
    assert v2_names == remaining and pages == len(remaining)
    for path in ("/acr/v1/apps%2Fweb", "/acr/v1/apps%2Fweb/_manifests", "/v2/apps/web/tags/list"):
        status, _, body = call("GET", standin.url + path, admin(standin))
        assert status == 404 and json.loads(body)["errors"][0]["code"] == "NAME_UNKNOWN", path
    assert standin.registry.tags("apps/web") == []  # gone in the registry itself, not only hidden

    # Pushed to again: back, with only what is new.
    body, media_type, _ = standin.registry.get_manifest("base/alpine", "latest")
    for digest in json.loads(body)["layers"] + [json.loads(body)["config"]]:
        data = standin.registry.request("GET", f"/v2/base/alpine/blobs/{digest['digest']}")[2]
        standin.registry.put_blob("apps/web", data)
    standin.registry.put_manifest("apps/web", "again", body, media_type)
    assert "apps/web" in get_json(standin, "/acr/v1/_catalog")[0]["repositories"]
    assert [t["name"] for t in get_json(standin, "/acr/v1/apps%2Fweb/_tags")[0]["tags"]] == ["again"]


def test_hold_blocks_the_nth_request_until_released(acr: tuple[AcrStandin, Expected]) -> None:
    standin, _ = acr
    hold = standin.hold("GET", r"/_tags$", nth=2)
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", admin(standin))[0] == 200
    answers: list[int] = []
    second = threading.Thread(target=lambda: answers.append(
        call("GET", standin.url + "/acr/v1/base%2Falpine/_tags", admin(standin))[0]))
    second.start()
    assert hold.reached.wait(timeout=60)
    second.join(timeout=1)  # held until released, however long this waits: never answered here
    assert second.is_alive() and answers == [] and standin.count("GET", r"/_tags$") == 1
    hold.release()
    second.join(timeout=60)
    assert answers == [200] and standin.count("GET", r"/_tags$") == 2


def test_the_stub_az_exposes_an_acr_refresh_token(acr: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, _ = acr
    bin_dir = standin.az_stub(tmp_path / "bin")
    done = subprocess.run([str(bin_dir / "az"), "acr", "login", "--name", standin.host, "--expose-token",
                           "--output", "json"], capture_output=True, text=True, check=True, timeout=60)
    printed = json.loads(done.stdout)
    assert printed["loginServer"] == standin.host
    status, access = refresh_grant(standin, printed["accessToken"], "repository:apps/web:metadata_read")
    assert status == 200
    assert call("GET", standin.url + "/acr/v1/apps%2Fweb/_tags", {"Authorization": f"Bearer {access}"})[0] == 200


def test_listings_stay_whole_while_manifests_are_deleted(fresh: tuple[AcrStandin, Expected]) -> None:
    standin, expected = fresh
    index = json.loads(standin.registry.get_manifest("tools/cli", expected.names["cli_index"])[0])
    doomed = [("tools/cli", child["digest"]) for child in index["manifests"]]
    doomed.append(("apps/web", expected.names["web_old"]))
    statuses: list[int] = []
    lock = threading.Lock()

    def work(method: str, path: str) -> None:
        status = call(method, standin.url + path, admin(standin))[0]
        with lock:
            statuses.append(status)

    jobs = [("DELETE", f"/v2/{repo}/manifests/{digest}") for repo, digest in doomed]
    jobs += [("GET", f"/acr/v1/{repo.replace('/', '%2F')}{kind}") for repo in ("tools/cli", "apps/web")
             for kind in ("/_manifests", "/_tags", "")] * 4
    threads = [threading.Thread(target=work, args=job) for job in jobs]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(statuses) == sorted([202] * len(doomed) + [200] * (len(jobs) - len(doomed)))
    left = {m["digest"] for m in get_json(standin, "/acr/v1/tools%2Fcli/_manifests")[0]["manifests"]}
    assert left == live(expected, "tools/cli") - {digest for _, digest in doomed}


def test_the_shared_registry_is_never_changed_through_the_standin(acr: tuple[AcrStandin, Expected]) -> None:
    standin, expected = acr
    digest = expected.names["web_old"]
    status, _, body = call("DELETE", f"{standin.url}/v2/apps/web/manifests/{digest}", admin(standin))
    assert status == 500 and b"acr_standin" in body
    assert call("DELETE", standin.url + "/acr/v1/apps%2Fweb", admin(standin))[0] == 500
    assert digest in {m["digest"] for m in get_json(standin, "/acr/v1/apps%2Fweb/_manifests")[0]["manifests"]}
