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

It is built on the tests' proxy base (tests/support/proxy.py), as their fault proxies are,
with the upstream connections kept alive; unlike tests/support/s3_fault_proxy.py it chooses
no faults and logs no request: here the per-request cost must stay small.
"""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from urllib.parse import urlsplit

sys.path.insert(0, os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "tests"))

from support.components import ComponentError  # noqa: E402  (the tests' helpers)
from support.proxy import Proxy, ProxyHandler  # noqa: E402

KINDS = ("list", "get", "head", "put", "other")


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


class _Handler(ProxyHandler):
    proxy: LatencyProxy  # type: ignore[assignment]

    def setup(self) -> None:
        super().setup()
        with self.proxy.counts.lock:
            self.proxy.counts.connections += 1

    def handle_method(self, method: str) -> None:
        proxy = self.proxy
        counts = proxy.counts
        arrived = time.perf_counter()
        with counts.lock:
            counts.requests[kind_of(method, self.path)] += 1
            counts.inflight += 1
            counts.max_inflight = max(counts.max_inflight, counts.inflight)
        try:
            body = self.request_body()
            if proxy.delay > 0:
                time.sleep(proxy.delay)
            try:
                status, headers, data = self.forward(method, self.path, self.request_headers(), body)
            except ComponentError as e:
                with counts.lock:
                    counts.errors += 1
                status, headers, data = 502, [], str(e).encode()
            self.answer(method, status, headers, data)
        finally:
            with counts.lock:
                counts.inflight -= 1
                counts.busy_seconds += time.perf_counter() - arrived


class LatencyProxy(Proxy):
    """The proxy in daemon threads of this process; a context manager. ``delay`` (seconds)
    may be changed between runs; ``counts`` holds what went through since ``counts.reset()``."""

    keep_upstream = True  # one upstream connection per client connection
    upstream_timeout = 120.0

    def __init__(self, upstream: str, *, delay: float = 0.0, port: int = 0) -> None:
        super().__init__(upstream, _Handler, port=port)
        self.delay = delay
        self.counts = Counts()


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
