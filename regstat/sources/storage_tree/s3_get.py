"""Object GETs signed and sent without botocore's per-request machinery.

A crawl of a bucket is mostly small GETs (tag links, manifests): through `client.get_object`
each costs about 2 ms of CPU in botocore (event hooks, endpoint rules, parameter handling,
signing, response parsing), which made regstat CPU-bound on two cores long before the
latency of S3 did (benchmarks/RESULTS.md, "S3"). Here a GET is signed (SigV4) and sent on
the client's own HTTP session, so proxies, TLS and its connection pool stay botocore's, for
about a third of that.

What a request looks like is learnt from botocore, never worked out here: the URL form
(path-style or virtual-hosted, the endpoint) and the signing region come from a listing
request botocore itself signed and sent for the bucket, after its region redirects; the
credentials are the client's (refreshed as botocore refreshes them). Only a plain success
is taken from here: any other answer, or a connection failure, returns None and the caller
asks botocore's `get_object`, whose retries and errors then apply.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import time
from typing import Any
from urllib.parse import quote, urlsplit

from botocore.awsrequest import AWSPreparedRequest
from botocore.exceptions import BotoCoreError

from ...errors import BadAnswer

_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()  # a GET's payload
_SCOPE = re.compile(r"^AWS4-HMAC-SHA256 Credential=[^/]+/\d{8}/([^/]+)/s3/aws4_request,")
_DEFAULT_PORTS = {"http": ":80", "https": ":443"}


class SignedGets:
    """GETs of keys in one bucket, as botocore sent a listing of it."""

    def __init__(self, listing_url: str, authorization: str, credentials: Any, http_session: Any) -> None:
        parts = urlsplit(listing_url)
        match = _SCOPE.match(authorization)
        if match is None:
            raise ValueError("not a SigV4 request for s3")
        self.region = match.group(1)
        self._origin = f"{parts.scheme}://{parts.netloc}"
        self._path = parts.path.rstrip("/") + "/"  # "/BUCKET/" path-style, "/" virtual-hosted
        netloc = parts.netloc
        self._host = netloc.removesuffix(_DEFAULT_PORTS.get(parts.scheme, "\0"))
        self._credentials = credentials
        self._http = http_session

    @classmethod
    def learn(cls, sent: dict[str, Any], credentials: Any, http_session: Any) -> SignedGets | None:
        """From the listing request botocore sent last (`sent`: its url and headers), or None
        when it is not one this module can imitate (not SigV4, S3 Express sessions)."""
        url, headers = sent.get("url"), sent.get("headers") or {}
        authorization = headers.get("Authorization")
        if isinstance(authorization, bytes):
            authorization = authorization.decode("ascii", "replace")
        if not url or not authorization or credentials is None or "x-amz-s3session-token" in headers:
            return None
        try:
            return cls(url, authorization, credentials, http_session)
        except ValueError:
            return None

    def get(self, key: str, limit: int) -> bytes | None:
        """At most `limit` bytes of `key` (bytes=0-limit-1), or None for anything but a
        success: the caller asks botocore then. A body cut short raises BadAnswer."""
        url, headers = self.request(key, limit, time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()))
        request = AWSPreparedRequest("GET", url, headers, None, True)
        try:
            response = self._http.send(request)
        except BotoCoreError:
            return None  # botocore's own request retries connection failures
        raw = response.raw
        if response.status_code not in (200, 206):
            raw.close()
            return None
        announced = response.headers.get("Content-Length")
        data = raw.read(limit)  # read whole, urllib3 puts the connection back in the pool
        if announced is not None and int(announced) != len(data):
            if not (response.status_code == 200 and int(announced) > len(data) == limit):
                raise BadAnswer(f"body of {len(data)} bytes; Content-Length says {announced}")
            raw.close()  # a server that ignored the range: we want no more of it
        check_range(response.headers.get("Content-Range"), len(data), limit)
        return data

    def request(self, key: str, limit: int, stamp: str) -> tuple[str, dict[str, str]]:
        """The URL and the signed headers of a GET of `key`'s first `limit` bytes at `stamp`
        (`YYYYMMDDTHHMMSSZ`), as botocore's S3SigV4Auth signs it."""
        path = self._path + quote(key, safe="/~")  # as botocore quotes a key; S3 signs it as sent
        credentials = self._credentials.get_frozen_credentials()
        day = stamp[:8]
        headers = {"host": self._host, "range": f"bytes=0-{limit - 1}",
                   "x-amz-content-sha256": _EMPTY_SHA256, "x-amz-date": stamp}
        if credentials.token:
            headers["x-amz-security-token"] = credentials.token
        names = sorted(headers)
        canonical = "\n".join(["GET", path, "", *(f"{n}:{headers[n].strip()}" for n in names), "",
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
        return self._origin + path, headers


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
