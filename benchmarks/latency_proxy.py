#!/usr/bin/env python3
"""An HTTP proxy on 127.0.0.1 that adds a fixed delay to every request, and counts them.

It stands for the round trip to a real S3 in front of a local ``moto_server``: every request
waits ``delay`` seconds, then is forwarded to the upstream and its answer returned whole.
Many connections at once (a thread per client connection; the crawl keeps up to 32 busy),
HTTP/1.1 keep-alive towards the clients and towards the upstream (one persistent upstream
connection per client connection, reopened when the upstream closed it).

It counts requests by kind (``list``: a GET on the bucket, ``get`` and ``head`` of an
object, ``put``, ``other``), the client connections opened, the most requests in flight at
once, and the sum of the time requests spent inside it (that sum divided by a run's wall
time is the mean number of requests in flight: the concurrency a client achieved).

    python benchmarks/latency_proxy.py http://127.0.0.1:5000 --delay-ms 20 --port 5001

Not tests/s3_fault_proxy.py: that one chooses faults per request, logs every request and
opens a new upstream connection for each; here the per-request cost must stay small.
"""

from __future__ import annotations

import argparse
import http.client
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOOPBACK = "127.0.0.1"
KINDS = ("list", "get", "head", "put", "other")
_HOP_BY_HOP = {"connection", "keep-alive", "transfer-encoding", "content-length",
               "proxy-connection", "te", "trailer", "upgrade"}


class Counts:
    """What went through the proxy since the last reset."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.reset()

    def reset(self) -> None:
        self.requests = {kind: 0 for kind in KINDS}
        self.connections = 0
        self.inflight = 0
        self.max_inflight = 0
        self.busy_seconds = 0.0  # summed over requests: time from arrival to answer sent
        self.errors = 0  # upstream failures answered with 502

    def snapshot(self) -> dict[str, object]:
        with self.lock:
            return {
                "requests": dict(self.requests), "total": sum(self.requests.values()),
                "connections": self.connections, "max_inflight": self.max_inflight,
                "busy_seconds": round(self.busy_seconds, 3), "errors": self.errors,
            }


def kind_of(method: str, path: str) -> str:
    """Path-style S3: /BUCKET is a bucket operation (a listing when GET), /BUCKET/KEY an object."""
    key = urlsplit(path).path.lstrip("/").partition("/")[2]
    if method == "GET":
        return "get" if key else "list"
    if method == "HEAD":
        return "head" if key else "other"
    if method == "PUT" and key:
        return "put"
    return "other"


class _Server(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default 5 drops SYNs when 32 clients connect at once
    proxy: LatencyProxy


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server: _Server

    def log_message(self, format: str, *args: object) -> None:
        pass

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.upstream: http.client.HTTPConnection | None = None
        proxy = self.server.proxy
        with proxy.counts.lock:
            proxy.counts.connections += 1

    def finish(self) -> None:
        try:
            super().finish()
        except OSError:
            pass
        if self.upstream is not None:
            self.upstream.close()

    def do_GET(self) -> None:
        self._handle("GET")

    def do_HEAD(self) -> None:
        self._handle("HEAD")

    def do_PUT(self) -> None:
        self._handle("PUT")

    def do_POST(self) -> None:
        self._handle("POST")

    def do_DELETE(self) -> None:
        self._handle("DELETE")

    def _forward(self, method: str, body: bytes | None,
                 headers: dict[str, str]) -> tuple[int, str, list[tuple[str, str]], bytes]:
        proxy = self.server.proxy
        for attempt in (1, 2):
            if self.upstream is None:
                self.upstream = http.client.HTTPConnection(proxy.upstream_host, proxy.upstream_port,
                                                           timeout=120)
            try:
                self.upstream.request(method, self.path, body=body, headers=headers)
                response = self.upstream.getresponse()
                data = response.read()
                if response.will_close:
                    self.upstream.close()
                    self.upstream = None
                return response.status, response.reason, response.getheaders(), data
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError,
                    http.client.CannotSendRequest, http.client.BadStatusLine):
                # A kept-alive upstream connection the upstream had closed: reopen once.
                self.upstream.close()
                self.upstream = None
                if attempt == 2:
                    raise
        raise AssertionError("unreachable")

    def _handle(self, method: str) -> None:
        proxy = self.server.proxy
        counts = proxy.counts
        arrived = time.perf_counter()
        with counts.lock:
            counts.requests[kind_of(method, self.path)] += 1
            counts.inflight += 1
            counts.max_inflight = max(counts.max_inflight, counts.inflight)
        try:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else None
            headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
            if proxy.delay > 0:
                time.sleep(proxy.delay)
            try:
                status, reason, got, data = self._forward(method, body, headers)
            except (OSError, http.client.HTTPException) as e:
                with counts.lock:
                    counts.errors += 1
                status, reason, got, data = 502, "Bad Gateway", [], str(e).encode()
            self.send_response(status, reason)
            content_length = None
            for name, value in got:
                lower = name.lower()
                if lower == "content-length":
                    content_length = value
                elif lower not in _HOP_BY_HOP and lower not in ("server", "date"):
                    self.send_header(name, value)
            # A HEAD answer announces the object's length without a body.
            if method == "HEAD" and content_length is not None:
                self.send_header("Content-Length", content_length)
            else:
                self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            if method != "HEAD" and data:
                self.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True
        finally:
            with counts.lock:
                counts.inflight -= 1
                counts.busy_seconds += time.perf_counter() - arrived


class LatencyProxy:
    """The proxy in daemon threads of this process; a context manager. ``delay`` (seconds)
    may be changed between runs; ``counts`` holds what went through since ``counts.reset()``."""

    def __init__(self, upstream: str, *, delay: float = 0.0, port: int = 0) -> None:
        parts = urlsplit(upstream)
        self.upstream_host = parts.hostname or LOOPBACK
        self.upstream_port = parts.port or 80
        self.delay = delay
        self.counts = Counts()
        self._httpd = _Server((LOOPBACK, port), _Handler)
        self._httpd.proxy = self
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True,
                                        name="latency-proxy")

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> LatencyProxy:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> LatencyProxy:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("upstream", help="e.g. http://127.0.0.1:5000 (moto_server)")
    parser.add_argument("--delay-ms", type=float, default=20.0)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args(argv)
    proxy = LatencyProxy(args.upstream, delay=args.delay_ms / 1000, port=args.port).start()
    print(f"{proxy.endpoint_url} -> {args.upstream}, +{args.delay_ms:g} ms per request "
          "(Ctrl-C prints the counts)", flush=True)
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        print(proxy.counts.snapshot())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
