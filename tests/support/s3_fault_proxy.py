"""A fault-injecting HTTP proxy in front of a real moto_server, for S3 crawls under faults.

Path-style requests only (`/BUCKET/KEY?QUERY`), as regstat sends to custom endpoints. Each
request is forwarded to moto unless a fault is chosen for it:

- ``slowdown``: 503 with S3's ``SlowDown`` XML error body;
- ``reset``: the connection is reset (RST) before any answer;
- ``short_body``: the whole Content-Length is announced, half the body sent, then EOF;
- ``reset_mid_body``: the same, then RST;
- ``cut_listing`` (listings only): the XML cut short mid-document, Content-Length matching
  the cut body, so only the parser can tell;
- ``dropped_entries`` (listings with entries): the last entry removed, the XML still valid
  (``KeyCount`` still counts it): a shorter listing that parses;
- ``slow``: answered correctly after ``slow_seconds``.

Which request is faulted is a function of (seed, method, path, query without the
continuation token (moto's tokens are random), how often that was asked), never of arrival
order, so a run is reproducible under concurrency (each prefix is listed by one thread).
``always`` faults every request whose key (or listing prefix) starts with a given prefix;
``before`` runs before a request is forwarded (tests mutate the bucket there);
``page_size`` lowers ListObjectsV2's ``max-keys`` so that small buckets list in many pages
(moto does not check signatures, so rewriting the query is harmless).
"""

from __future__ import annotations

import random
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

from .proxy import Proxy, ProxyHandler

FAULTS = ("slowdown", "reset", "short_body", "reset_mid_body", "cut_listing", "dropped_entries", "slow")
LISTING_FAULTS = {"cut_listing", "dropped_entries"}
_ENTRY = re.compile(rb"<(Contents|CommonPrefixes)>.*?</\1>", re.S)
SLOWDOWN = (
    b'<?xml version="1.0" encoding="UTF-8"?>\n<Error><Code>SlowDown</Code>'
    b"<Message>Please reduce your request rate.</Message><RequestId>FAULT</RequestId></Error>"
)


@dataclass(frozen=True)
class S3Request:
    method: str
    raw_path: str  # path and query as sent
    bucket: str
    key: str | None  # None for bucket operations (listings)
    query: dict[str, str]
    count: int  # how often this request (identity) was asked, this one included

    @property
    def identity(self) -> str:
        query = sorted((k, v) for k, v in self.query.items() if k != "continuation-token")
        return f"{self.method} {urlsplit(self.raw_path).path}?{urlencode(query)}"

    @property
    def is_listing(self) -> bool:
        return self.key is None and self.query.get("list-type") == "2"

    @property
    def target(self) -> str:
        """The object key, or the prefix a listing asks for."""
        return self.key if self.key is not None else self.query.get("prefix", "")


def parse_request(method: str, raw_path: str, count: int) -> S3Request:
    parts = urlsplit(raw_path)
    bucket, _, key = parts.path.lstrip("/").partition("/")
    return S3Request(method, raw_path, bucket, unquote(key) if key else None, dict(parse_qsl(parts.query)), count)


class S3FaultProxy(Proxy):
    """The proxy, on 127.0.0.1:<free port> in daemon threads; a context manager."""

    def __init__(self, upstream: str, *, seed: int = 0, rate: float = 0.0, faults: tuple[str, ...] = FAULTS,
                 page_size: int | None = None, slow_seconds: float = 0.3) -> None:
        super().__init__(upstream, _Handler)
        self.seed, self.rate, self.faults = seed, rate, faults
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self.always: list[tuple[str, str]] = []  # (target prefix, fault)
        self.before: Callable[[S3Request], None] | None = None
        self.log: list[tuple[S3Request, str | None]] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()

    def faults_injected(self) -> dict[str, int]:
        out: dict[str, int] = {}
        for _, fault in self.log:
            if fault:
                out[fault] = out.get(fault, 0) + 1
        return out

    def request(self, method: str, raw_path: str) -> S3Request:
        first = parse_request(method, raw_path, 0)
        with self._lock:
            count = self._counts[first.identity] = self._counts.get(first.identity, 0) + 1
        return parse_request(method, raw_path, count)

    def choose(self, request: S3Request) -> str | None:
        for prefix, fault in self.always:
            if request.target.startswith(prefix):
                return fault
        rng = random.Random(f"{self.seed}|{request.identity}|{request.count}")
        if rng.random() >= self.rate:
            return None
        usable = [f for f in self.faults if request.is_listing or f not in LISTING_FAULTS]
        return rng.choice(usable) if usable else None

    def record(self, request: S3Request, fault: str | None) -> None:
        with self._lock:
            self.log.append((request, fault))

    def upstream_path(self, request: S3Request) -> str:
        if not (request.is_listing and self.page_size):
            return request.raw_path
        query = dict(request.query)
        query["max-keys"] = str(min(int(query.get("max-keys", 1000)), self.page_size))
        return f"{urlsplit(request.raw_path).path}?{urlencode(query)}"


def drop_last_entry(body: bytes) -> bytes | None:
    """The listing without its last entry, still valid XML; None when it has no entry."""
    entries = list(_ENTRY.finditer(body))
    if not entries:
        return None
    last = entries[-1]
    return body[: last.start()] + body[last.end() :]


class _Handler(ProxyHandler):
    proxy: S3FaultProxy  # type: ignore[assignment]

    def handle_method(self, method: str) -> None:
        proxy = self.proxy
        body = self.request_body()
        request = proxy.request(method, self.path)
        fault = proxy.choose(request)
        if proxy.before is not None:
            proxy.before(request)
        if fault == "reset":
            proxy.record(request, fault)
            self.reset()
            return
        status, got, data = self.forward(method, proxy.upstream_path(request), self.request_headers(), body)
        if fault == "slowdown":
            status, got, data = 503, [("Content-Type", "application/xml")], SLOWDOWN
        elif fault == "slow":
            time.sleep(proxy.slow_seconds)
        elif fault in LISTING_FAULTS:
            data, fault = self._damage_listing(fault, status, data)
        elif fault in ("short_body", "reset_mid_body") and (method == "HEAD" or len(data) < 2):
            fault = None  # nothing to cut
        proxy.record(request, fault)
        if fault not in ("short_body", "reset_mid_body"):
            self.answer(method, status, got, data)
            return
        self.answer(method, status, got, data, sent=data[: len(data) // 2])
        if fault == "reset_mid_body":
            self.reset()
        self.close_connection = True

    def _damage_listing(self, fault: str, status: int, data: bytes) -> tuple[bytes, str | None]:
        if status != 200:
            return data, None
        if fault == "cut_listing":
            return data[: len(data) // 2], fault
        dropped = drop_last_entry(data)
        return (data, None) if dropped is None else (dropped, fault)
