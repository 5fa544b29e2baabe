"""Object GETs and listings signed and sent without botocore's per-request machinery.

A crawl of a bucket is mostly small GETs (tag links, manifests): through `client.get_object`
each costs about 2 ms of CPU in botocore (event hooks, endpoint rules, parameter handling,
signing, response parsing), and its generic XML parser spends more on a listing page of
1,000 keys than on the request; that made regstat CPU-bound on two cores long before the
latency of S3 did (benchmarks/RESULTS.md, "S3"). Here a request is signed (SigV4) and sent
on the client's own HTTP session, so proxies, TLS and its connection pool stay botocore's,
for about a third of that, and a listing is read with ElementTree into the dict botocore
would give (the caller checks every page as before).

What a request looks like is learnt from botocore, never worked out here: the URL form
(path-style or virtual-hosted, the endpoint) and the signing region come from a listing
request botocore itself signed and sent for the bucket, after its region redirects; the
credentials are the client's (refreshed as botocore refreshes them). Only a plain success
is taken from here, and the two answers a crawl expects (a key gone: NoSuchKey; an empty
object: InvalidRange): any other answer, or a connection failure, returns None and the
caller asks botocore, whose retries and errors then apply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
import xml.etree.ElementTree as ET
from collections.abc import Callable, Container
from datetime import datetime
from typing import Any
from urllib.parse import quote, unquote_plus, urlsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import BotoCoreError

from ...errors import BadAnswer

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload
_SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request,")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}
_S3_NS = "{http://s3.amazonaws.com/doc/2006-03-01/}"
# The errors a crawl meets in the normal course, answered here: asking botocore again would
# be a second request (and a crawl counted by requests would see it).
_EXPECTED_ERRORS = {404: "NoSuchKey", 416: "InvalidRange"}
_CODE = re.compile(rb"<Code>([^<]*)</Code>")
# ListObjectsV2's parameters as botocore names them, and as the query does.
_LIST_QUERY = {"Prefix": "prefix", "Delimiter": "delimiter", "ContinuationToken": "continuation-token",
               "StartAfter": "start-after", "MaxKeys": "max-keys"}


class SignedRequests:
    """GETs of keys and listings in one bucket, as botocore sent a listing of it."""

    def __init__(self, listing_url: str, authorization: str, credentials: Any, http_session: Any,
                 timestamp: Callable[[str], datetime] = datetime.fromisoformat) -> None:
        parts = urlsplit(listing_url)
        match = _SCOPE.match(authorization)
        if match is None:
            raise ValueError("not a SigV4 request for s3")
        self.region = match.group(1)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._bucket = parts.path or "/"  # "/BUCKET" path-style, "/" virtual-hosted
        self._path = parts.path.rstrip("/") + "/"  # where keys start
        netloc = parts.netloc
        self._host = netloc.removesuffix(_DEFAULT_PORTS.get(parts.scheme, "\0"))
        self._credentials = credentials
        self._http = http_session
        self._timestamp = timestamp

    @classmethod
    def learn(cls, sent: dict[str, Any], credentials: Any, http_session: Any,
              timestamp: Callable[[str], datetime] = datetime.fromisoformat) -> SignedRequests | None:
        """From the listing request botocore sent last (`sent`: its url and headers), or None
        when it is not one this module can imitate (not SigV4, S3 Express sessions)."""
        url, headers = sent.get("url"), sent.get("headers") or {}
        authorization = headers.get("Authorization")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        if not url or not authorization or credentials is None or "x-amz-s3session-token" in headers:
            return None
        try:
            return cls(url, authorization, credentials, http_session, timestamp)
        except ValueError:
            return None

    def get(self, key: str, limit: int) -> bytes | None:
        """At most `limit` bytes of `key` (bytes=0-limit-1), or None for anything but a
        success: the caller asks botocore then. A body cut short raises BadAnswer; a key
        that is not there, FileNotFoundError."""
        url, headers = self.request(key, limit, _now())
        response = self._send(url, headers, expected=_EXPECTED_ERRORS)
        if response is None:
            return None
        if response.status_code in _EXPECTED_ERRORS:
            code = _error_code(self._body(response, None))
            if code == _EXPECTED_ERRORS[response.status_code]:
                if code == "InvalidRange":
                    return b""  # a zero-length object has no byte 0
                raise FileNotFoundError(key)
            return None
        return self._body(response, limit)

    def list_objects_v2(self, **params: Any) -> dict[str, Any] | None:
        """A ListObjectsV2 page (botocore's parameters, and its answer's keys: Contents with
        Key, Size and LastModified, CommonPrefixes, KeyCount, IsTruncated,
        NextContinuationToken), or None for anything but a success: the caller asks botocore
        then. An answer that does not parse raises BadAnswer."""
        query = {"list-type": "2", "encoding-type": "url"}  # url: keys may hold what XML cannot
        query.update({_LIST_QUERY[name]: str(value) for name, value in params.items()})
        url, headers = self.request("", 0, _now(), query)
        response = self._send(url, headers)
        if response is None:
            return None
        body = self._body(response, None)
        try:
            return self._page(ET.fromstring(body))
        except (ET.ParseError, ValueError, TypeError) as e:
            raise BadAnswer(f"unreadable listing: {e}") from None

    def _send(self, url: str, headers: dict[str, str], expected: Container[int] = ()) -> Any:
        try:
            response = self._http.send(AWSPreparedRequest("GET", url, headers, None, True))
        except BotoCoreError:
            return None  # botocore's own request retries connection failures
        if response.status_code not in (200, 206) and response.status_code not in expected:
            response.raw.close()
            return None
        return response

    def _body(self, response: Any, limit: int | None) -> bytes:
        raw = response.raw
        announced = response.headers.get("Content-Length")
        data = raw.read(limit)  # read whole, urllib3 puts the connection back in the pool
        if announced is not None and int(announced) != len(data):
            if limit is None or not (response.status_code == 200 and int(announced) > len(data) == limit):
                raise BadAnswer(f"body of {len(data)} bytes; Content-Length says {announced}")
            raw.close()  # a server that ignored the range: we want no more of it
        if limit is not None:
            check_range(response.headers.get("Content-Range"), len(data), limit)
        return data

    def _page(self, root: ET.Element) -> dict[str, Any]:
        if root.tag != f"{_S3_NS}ListBucketResult":
            raise ValueError(f"{root.tag} is not a ListBucketResult")
        page: dict[str, Any] = {}
        contents, prefixes = [], []
        for node in root:
            name = node.tag.removeprefix(_S3_NS)
            if name == "Contents":
                fields = {child.tag.removeprefix(_S3_NS): child.text or "" for child in node}
                contents.append({"Key": unquote_plus(fields["Key"]), "Size": int(fields["Size"]),
                                 "LastModified": self._timestamp(fields["LastModified"])})
            elif name == "CommonPrefixes":
                prefixes.append({"Prefix": unquote_plus(node.findtext(f"{_S3_NS}Prefix") or "")})
            elif name == "KeyCount":
                page["KeyCount"] = int(node.text or "")
            elif name == "IsTruncated":
                page["IsTruncated"] = (node.text or "").strip() == "true"
            elif name == "NextContinuationToken":
                page["NextContinuationToken"] = node.text or ""
        if contents:
            page["Contents"] = contents
        if prefixes:
            page["CommonPrefixes"] = prefixes
        return page

    def request(self, key: str, limit: int, stamp: str,
                query: dict[str, str] | None = None) -> tuple[str, dict[str, str]]:
        """The URL and the signed headers of a GET of `key`'s first `limit` bytes at `stamp`
        (`YYYYMMDDTHHMMSSZ`), as botocore's S3SigV4Auth signs it; with `query` (and no
        range), a GET of the bucket with that query."""
        # As botocore quotes a key (S3 signs the path as sent), and the bucket as it asks for it.
        path = self._bucket if query is not None else self._path + quote(key, safe="/~")
        # Sorted and encoded as SigV4's canonical query wants, and sent the same.
        encoded = "&".join(sorted(f"{quote(k, safe='-_.~')}={quote(v, safe='-_.~')}"
                                  for k, v in (query or {}).items()))
        credentials = self._credentials.get_frozen_credentials()
        day = stamp[:8]
        headers = {"host": self._host, "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
        if query is None:
            headers["range"] = f"bytes=0-{limit - 1}"
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        canonical = "\n".join(["GET", path, encoded, *(f"{n}:{headers[n].strip()}" for n in names), "",
                               ";".join(names), _EMPTY_SHA256])
        scope = f"{day}/{self.region}/s3/aws4_request"
        to_sign = f"AWS4-HMAC-SHA256\n{stamp}\n{scope}\n{hashlib.sha256(canonical.encode()).hexdigest()}"
        signing = ("AWS4" + credentials.secret_key).encode()
        for part in (day, self.region, "s3", "aws4_request"):
            signing = hmac.new(signing, part.encode(), hashlib.sha256).digest()
        signature = hmac.new(signing, to_sign.encode(), hashlib.sha256).hexdigest()
        headers["Authorization"] = (f"AWS4-HMAC-SHA256 Credential={credentials.access_key}/{scope}, "
                                    f"SignedHeaders={';'.join(names)}, Signature={signature}")
        del headers["host"]  # urllib3 sends the same from the URL
        return self._origin + path + (f"?{encoded}" if encoded else ""), headers


def _error_code(body: bytes) -> str | None:
    match = _CODE.search(body)
    return match.group(1).decode("ascii", "replace") if match else None


def _now() -> str:
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())


_CONTENT_RANGE = re.compile(r"bytes (\d+)-(\d+)/(\d+)")


def check_range(content_range: str | None, got: int, limit: int) -> None:
    """A ranged body must be as long as its Content-Range says (a cut answer can announce a
    Content-Length that matches what was cut)."""
    if content_range is None:
        return
    match = _CONTENT_RANGE.fullmatch(content_range.strip())
    if match is None:
        raise BadAnswer(f"unreadable Content-Range {content_range!r}")
    first, last, total = (int(g) for g in match.groups())
    expected = min(total, limit) if first == 0 else last - first + 1
    if got != expected:
        raise BadAnswer(f"body of {got} bytes; Content-Range {content_range!r} says {expected}")
