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

import http.client
import random
import re
import socket
import struct
import threading
import time
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import parse_qsl, unquote, urlencode, urlsplit

LOOPBACK = "127.0.0.1"
FAULTS = ("slowdown", "reset", "short_body", "reset_mid_body", "cut_listing", "dropped_entries", "slow")
LISTING_FAULTS = {"cut_listing", "dropped_entries"}
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length", "proxy-connection", "host"}
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


class S3FaultProxy:
    """The proxy, on 127.0.0.1:<free port> in daemon threads; a context manager."""

    def __init__(self, upstream: str, *, seed: int = 0, rate: float = 0.0, faults: tuple[str, ...] = FAULTS,
                 page_size: int | None = None, slow_seconds: float = 0.3) -> None:
        self.upstream = urlsplit(upstream)
        self.seed, self.rate, self.faults = seed, rate, faults
        self.page_size = page_size
        self.slow_seconds = slow_seconds
        self.always: list[tuple[str, str]] = []  # (target prefix, fault)
        self.before: Callable[[S3Request], None] | None = None
        self.log: list[tuple[S3Request, str | None]] = []
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()
        self._httpd = ThreadingHTTPServer((LOOPBACK, 0), _Handler)
        self._httpd.daemon_threads = True
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True)

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def __enter__(self) -> "S3FaultProxy":
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

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

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> tuple[int, list, bytes]:
        connection = http.client.HTTPConnection(self.upstream.hostname or LOOPBACK, self.upstream.port, timeout=30)
        try:
            connection.request(method, path, body=body, headers=headers)
            response = connection.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            connection.close()


def drop_last_entry(body: bytes) -> bytes | None:
    """The listing without its last entry, still valid XML; None when it has no entry."""
    entries = list(_ENTRY.finditer(body))
    if not entries:
        return None
    last = entries[-1]
    return body[: last.start()] + body[last.end() :]


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: object) -> None:
        pass

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass  # the socket was reset on purpose

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def do_POST(self) -> None:
        self._handle("POST")

    def _handle(self, method: str) -> None:
        proxy: S3FaultProxy = self.server.owner  # type: ignore[attr-defined]
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        request = proxy.request(method, self.path)
        fault = proxy.choose(request)
        if proxy.before is not None:
            proxy.before(request)
        if fault == "reset":
            proxy.record(request, fault)
            self._reset()
            return
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        status, got, data = proxy.forward(method, proxy.upstream_path(request), headers, body)
        if fault == "slowdown":
            status, got, data = 503, [("Content-Type", "application/xml")], SLOWDOWN
        elif fault == "slow":
            time.sleep(proxy.slow_seconds)
        elif fault in LISTING_FAULTS:
            data, fault = self._damage_listing(fault, status, data)
        elif fault in ("short_body", "reset_mid_body") and (method == "HEAD" or len(data) < 2):
            fault = None  # nothing to cut
        proxy.record(request, fault)
        self._answer(method, status, got, data, fault)

    def _damage_listing(self, fault: str, status: int, data: bytes) -> tuple[bytes, str | None]:
        if status != 200:
            return data, None
        if fault == "cut_listing":
            return data[: len(data) // 2], fault
        dropped = drop_last_entry(data)
        return (data, None) if dropped is None else (dropped, fault)

    def _answer(self, method: str, status: int, headers: list, data: bytes, fault: str | None) -> None:
        self.send_response(status)
        for name, value in headers:
            if name.lower() not in _HOP_BY_HOP:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if method == "HEAD":
            return
        if fault in ("short_body", "reset_mid_body"):
            self.wfile.write(data[: len(data) // 2])
            self.wfile.flush()
            if fault == "reset_mid_body":
                self._reset()
            self.close_connection = True
            return
        try:
            self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True

    def _reset(self) -> None:
        """Close with RST (SO_LINGER 0), not FIN: what a dropped connection looks like."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
