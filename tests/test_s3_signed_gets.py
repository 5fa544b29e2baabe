"""Object GETs and listings signed by regstat (regstat/sources/storage_tree/s3_get.py):
signed exactly as botocore signs them (moto checks no signature, so botocore's own signer is
the reference), read from a real moto_server as botocore reads them, and never a body cut
short; what is not a plain success (nor a key not found) goes through botocore."""

from __future__ import annotations

import itertools
from datetime import datetime
from pathlib import Path

import botocore.auth
import botocore.credentials
import pytest
from botocore.awsrequest import AWSRequest
from urllib.parse import parse_qsl, urlsplit

from support.components import MotoServer
from support.s3_fault_proxy import S3FaultProxy
from regstat.sources.storage_tree.s3 import S3Storage
from regstat.sources.storage_tree.s3_get import SignedRequests

pytestmark = pytest.mark.s3

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
PREFIX = "reg"
_buckets = itertools.count()


def listing_authorization(region: str) -> str:
    return (f"AWS4-HMAC-SHA256 Credential=AKIDEXAMPLE/20261207/{region}/s3/aws4_request, "
            "SignedHeaders=host;x-amz-date, Signature=0")


@pytest.mark.parametrize("listing_url, region", [
    ("http://127.0.0.1:9000/bucket?list-type=2&prefix=reg%2F", "us-east-1"),
    ("https://bucket.s3.eu-west-1.amazonaws.com/?list-type=2&prefix=reg%2F", "eu-west-1"),
    ("https://s3.ap-south-1.amazonaws.com:443/bucket?list-type=2", "ap-south-1"),
])
@pytest.mark.parametrize("token", [None, "session-token"])
@pytest.mark.parametrize("key", [
    "reg/docker/registry/v2/repositories/apps/web/_manifests/tags/v1.2/current/link",
    "reg/docker/registry/v2/repositories/a b/_uploads/x+y:z~w=v/startedat",
])
def test_a_get_is_signed_as_botocore_signs_it(
    monkeypatch: pytest.MonkeyPatch, listing_url: str, region: str, token: str | None, key: str
) -> None:
    credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", token)
    signed = SignedRequests(listing_url, listing_authorization(region), credentials, None)
    url, headers = signed.request(key, 4096, "20261207T150102Z")

    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 12, 7, 15, 1, 2))
    reference = AWSRequest(method="GET", url=url, headers={"Range": "bytes=0-4095"})
    botocore.auth.S3SigV4Auth(credentials, "s3", region).add_auth(reference)
    assert headers["Authorization"] == reference.headers["Authorization"]
    assert headers["x-amz-date"] == reference.headers["X-Amz-Date"]
    assert headers["x-amz-content-sha256"] == reference.headers["X-Amz-Content-SHA256"]
    assert headers.get("x-amz-security-token") == reference.headers.get("X-Amz-Security-Token")


@pytest.mark.parametrize("query", [
    {"list-type": "2", "encoding-type": "url", "prefix": "reg/docker/registry/v2/blobs/"},
    {"list-type": "2", "encoding-type": "url", "prefix": "a b/", "delimiter": "/",
     "start-after": "a b/x+y=z&w~é", "continuation-token": "1/ab+cd==", "max-keys": "1"},
])
def test_a_listing_is_signed_as_botocore_signs_it(monkeypatch: pytest.MonkeyPatch, query: dict[str, str]) -> None:
    credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY", "t")
    listing = "http://127.0.0.1:9000/bucket?list-type=2"
    signed = SignedRequests(listing, listing_authorization("us-east-1"), credentials, None)
    url, headers = signed.request("", 0, "20261207T150102Z", query)
    monkeypatch.setattr(botocore.auth, "get_current_datetime", lambda: datetime(2026, 12, 7, 15, 1, 2))
    reference = AWSRequest(method="GET", url=url)
    botocore.auth.S3SigV4Auth(credentials, "s3", "us-east-1").add_auth(reference)
    assert headers["Authorization"] == reference.headers["Authorization"]
    assert dict(parse_qsl(urlsplit(url).query)) == query and urlsplit(url).path == "/bucket"


def test_only_sigv4_listings_are_imitated() -> None:
    credentials = botocore.credentials.Credentials("AKIDEXAMPLE", "secret")
    url = "http://127.0.0.1:9000/bucket?list-type=2"
    sigv2 = {"url": url, "headers": {"Authorization": "AWS AKIDEXAMPLE:sig"}}
    assert SignedRequests.learn(sigv2, credentials, None) is None
    sigv4 = {"url": url, "headers": {"Authorization": listing_authorization("us-east-1").encode()}}
    assert SignedRequests.learn(sigv4, credentials, None) is not None
    assert SignedRequests.learn(sigv4, None, None) is None
    express = {"url": url, "headers": {**sigv4["headers"], "x-amz-s3session-token": "t"}}
    assert SignedRequests.learn(express, credentials, None) is None


@pytest.fixture(scope="module")
def bucket(moto_server: MotoServer) -> str:
    name = f"signed-{next(_buckets)}"
    s3 = moto_server.upload_tree(name, SAMPLE, PREFIX)
    s3.put_object(Bucket=name, Key=f"{PREFIX}/docker/registry/v2/empty", Body=b"")
    for odd in ODD_KEYS:
        s3.put_object(Bucket=name, Key=f"{PREFIX}/docker/registry/v2/odd/{odd}", Body=odd.encode())
    return name


ODD_KEYS = ["a b", "a+b", "a%2Fb", "x&y=z", "tilde~", "é/ü", "dir/", "q?r#s"]


@pytest.mark.parametrize("max_keys, delimiter", [(1000, None), (3, None), (2, "/")])
def test_listings_read_as_botocore_reads_them(
    moto_server: MotoServer, bucket: str, max_keys: int, delimiter: str | None
) -> None:
    storage = S3Storage(f"s3://{bucket}/{PREFIX}", endpoint_url=moto_server.endpoint_url)
    assert storage._signed is not None
    s3 = moto_server.client("s3")
    for prefix in (f"{PREFIX}/docker/registry/v2/", f"{PREFIX}/docker/registry/v2/odd/"):
        params = {"Prefix": prefix, "MaxKeys": max_keys, **({"Delimiter": delimiter} if delimiter else {})}
        pages = 0
        while True:
            ours = storage._signed.list_objects_v2(**params)
            theirs = s3.list_objects_v2(Bucket=bucket, **params)
            assert ours is not None
            assert ours.get("Contents", []) == [{k: o[k] for k in ("Key", "Size", "LastModified")}
                                                for o in theirs.get("Contents", [])]
            assert ours.get("CommonPrefixes", []) == theirs.get("CommonPrefixes", [])
            for field in ("KeyCount", "IsTruncated"):
                assert ours.get(field) == theirs.get(field), field
            pages += 1
            if not theirs.get("IsTruncated"):
                break
            # moto's tokens are opaque: go on from botocore's, asking both the same
            assert ours.get("NextContinuationToken")
            params["ContinuationToken"] = theirs["NextContinuationToken"]
        assert pages >= (2 if max_keys < 10 else 1)
    odd = storage.read_many([f"odd/{k}" for k in ODD_KEYS], 100)
    assert odd == {f"odd/{k}": k.encode() for k in ODD_KEYS}


def test_reads_are_whole_and_a_missing_key_is_not_found(moto_server: MotoServer, bucket: str) -> None:
    storage = S3Storage(f"s3://{bucket}/{PREFIX}", endpoint_url=moto_server.endpoint_url)
    assert storage._signed is not None and storage._signed.region == "us-east-1"  # in use here
    stored = moto_server.list_keys(bucket, f"{PREFIX}/docker/registry/v2/repositories/")
    paths = sorted(k.split("/docker/registry/v2/", 1)[1] for k in stored)
    s3 = moto_server.client("s3")
    got = storage.read_many([*paths, "missing/link", "empty"], 1_000_000)
    for path in paths:
        body = s3.get_object(Bucket=bucket, Key=f"{PREFIX}/docker/registry/v2/{path}")["Body"].read()
        assert got[path] == body, path
    assert isinstance(got["missing/link"], FileNotFoundError)  # NoSuchKey
    assert got["empty"] == b""  # InvalidRange
    assert storage.read_many([paths[0]], 10)[paths[0]] == got[paths[0]][:10]  # type: ignore[index]


def test_a_missing_or_empty_object_takes_one_request(moto_server: MotoServer, bucket: str) -> None:
    # A crawl counted by its requests (the incremental crawl's tests) must not see them twice.
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        storage = S3Storage(f"s3://{bucket}/{PREFIX}", endpoint_url=proxy.endpoint_url)
        proxy.log.clear()
        got = storage.read_many(["missing/link", "empty"], 100)
    assert isinstance(got["missing/link"], FileNotFoundError) and got["empty"] == b""
    assert sorted(request.key for request, _ in proxy.log) == [f"{PREFIX}/docker/registry/v2/{p}"
                                                                 for p in ("empty", "missing/link")]


@pytest.mark.parametrize("fault", ["short_body", "reset_mid_body", "slowdown"])
def test_a_body_cut_short_is_never_read_as_the_file(
    moto_server: MotoServer, bucket: str, monkeypatch: pytest.MonkeyPatch, fault: str
) -> None:
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")
    link = "repositories/apps/web/_manifests/tags/latest/current/link"
    with S3FaultProxy(moto_server.endpoint_url) as proxy:
        storage = S3Storage(f"s3://{bucket}/{PREFIX}", endpoint_url=proxy.endpoint_url)
        proxy.always = [(f"{PREFIX}/docker/registry/v2/{link}", fault)]
        got = storage.read_many([link], 1_000_000)[link]
        proxy.always = []
        healed = storage.read_many([link], 1_000_000)[link]
    assert isinstance(got, OSError), got
    assert isinstance(healed, bytes) and healed.startswith(b"sha256:")
    assert len([r for r, f in proxy.log if f == fault]) >= 2  # tried again before giving up
