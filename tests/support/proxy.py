"""One base for the loopback HTTP servers of the tests and the benchmarks.

:class:`LoopbackServer` is a ThreadingHTTPServer on 127.0.0.1 (a free port unless one is
given) in daemon threads, HTTPS with ``tls``; a context manager. :class:`Proxy` adds the
upstream it forwards to, and :class:`ProxyHandler` what every proxy's requests share:
HTTP/1.1, no log lines, every method routed to ``handle_method(method)``, the request's body and
end-to-end headers, :meth:`~ProxyHandler.forward` to the upstream, :meth:`~ProxyHandler.answer`
and :meth:`~ProxyHandler.reset` (RST). The proxies built on it:

- ``support.s3_fault_proxy.S3FaultProxy``: S3 faults chosen per request, in front of moto;
- ``support.ecr_proxy.EcrProxy``: ECR's paging, limits and throttling, in front of moto;
- ``support.api_components.FaultProxy``: registry API faults, canned answers and tag pages,
  in front of docker-registry (``api_components.TokenServer`` is a LoopbackServer too);
- ``support.acr_standin.AcrStandinServer``: ACR's data-plane API and auth, in front of docker-registry;
- ``benchmarks/latency_proxy.py``'s ``LatencyProxy``: a fixed delay per request, counted.

Nothing here depends on pytest.
"""

from __future__ import annotations

import http.client
import socket
import ssl
import struct
import threading
from collections.abc import Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Self
from urllib.parse import urlsplit

from .components import LOOPBACK, ComponentError

Answer = tuple[int, list[tuple[str, str]], bytes]  # status, headers, body

# Headers of one connection, not of the request or answer; Content-Length is recomputed, and
# Server and Date come from send_response.
HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade",
    "content-length", "host",
})  # fmt: skip
_NOT_FORWARDED_BACK = HOP_BY_HOP | {"server", "date"}


class _HTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    request_queue_size = 512  # the default 5 drops connections when 32 clients connect at once


class LoopbackServer:
    """A ThreadingHTTPServer on 127.0.0.1 in daemon threads; handlers reach it as
    ``self.server.owner``."""

    def __init__(self, handler: type[BaseHTTPRequestHandler], *, port: int = 0,
                 tls: tuple[Path, Path] | None = None) -> None:
        self._httpd = _HTTPServer((LOOPBACK, port), handler)
        self.tls = tls
        if tls is not None:
            context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
            context.load_cert_chain(str(tls[0]), str(tls[1]))
            self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._httpd.owner = self  # type: ignore[attr-defined]
        self.port = int(self._httpd.server_address[1])
        self._thread = threading.Thread(target=self._httpd.serve_forever, daemon=True, name=type(self).__name__)

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

    endpoint_url = url  # the name boto3 and MotoServer give it

    def start(self) -> Self:
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class Proxy(LoopbackServer):
    """A LoopbackServer that forwards to ``upstream`` (http://127.0.0.1:PORT).

    ``keep_upstream``: one upstream connection per client connection, kept alive (cheap per
    request, for benchmarks); otherwise a new one per request (each request stands alone).
    """

    keep_upstream = False
    upstream_timeout = 30.0

    def __init__(self, upstream: str, handler: type[ProxyHandler], *, port: int = 0) -> None:
        super().__init__(handler, port=port)
        self.upstream = urlsplit(upstream)

    def connect(self) -> http.client.HTTPConnection:
        return http.client.HTTPConnection(self.upstream.hostname or LOOPBACK, self.upstream.port,
                                          timeout=self.upstream_timeout)


class ProxyHandler(BaseHTTPRequestHandler):
    """Request handling every proxy shares; a subclass writes ``handle_method(method)``."""

    protocol_version = "HTTP/1.1"  # keep-alive; every answer has a length
    server: _HTTPServer

    @property
    def proxy(self) -> Proxy:
        return self.server.owner  # type: ignore[attr-defined,no-any-return]

    def handle_method(self, method: str) -> None:
        raise NotImplementedError

    def do_GET(self) -> None:  # noqa: N802 (http.server's naming)
        self.handle_method("GET")

    def do_HEAD(self) -> None:  # noqa: N802
        self.handle_method("HEAD")

    def do_PUT(self) -> None:  # noqa: N802
        self.handle_method("PUT")

    def do_POST(self) -> None:  # noqa: N802
        self.handle_method("POST")

    def do_DELETE(self) -> None:  # noqa: N802
        self.handle_method("DELETE")

    def log_message(self, format: str, *args: object) -> None:
        pass  # quiet: a failing test shows what matters, not every request

    def setup(self) -> None:
        super().setup()
        self.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self._upstream: http.client.HTTPConnection | None = None

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass  # the client, or a fault, reset the connection
        if self._upstream is not None:
            self._upstream.close()

    def request_body(self) -> bytes | None:
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def request_headers(self) -> dict[str, str]:
        """The request's end-to-end headers, to forward."""
        return {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}

    def forward(self, method: str, path: str, headers: dict[str, str], body: bytes | None) -> Answer:
        """The upstream's answer, read whole; ComponentError when there is none."""
        proxy = self.proxy
        for attempt in (1, 2):
            reused = self._upstream is not None
            connection = self._upstream or proxy.connect()
            self._upstream = None
            try:
                connection.request(method, path, body=body, headers=headers)
                response = connection.getresponse()
                answer = response.status, response.getheaders(), response.read()
            except (OSError, http.client.HTTPException) as e:
                connection.close()
                if reused and attempt == 1:
                    continue  # a kept connection the upstream had closed meanwhile: open another
                raise ComponentError(f"proxy: {method} {path}: {e}") from None
            if proxy.keep_upstream and not response.will_close:
                self._upstream = connection
            else:
                connection.close()
            return answer
        raise AssertionError("unreachable")

    def answer(self, method: str, status: int, headers: Iterable[tuple[str, str]], body: bytes, *,
               sent: bytes | None = None) -> None:
        """Send an answer: ``headers`` without hop-by-hop ones, the length of ``body`` (a HEAD
        answer keeps the length it was given), then ``sent`` (default: ``body``)."""
        try:
            self.send_response(status)
            length = None
            for name, value in headers:
                lower = name.lower()
                if lower == "content-length":
                    length = value
                elif lower not in _NOT_FORWARDED_BACK:
                    self.send_header(name, value)
            self.send_header("Content-Length", length if method == "HEAD" and length and not body else str(len(body)))
            self.end_headers()
            if method != "HEAD":
                self.wfile.write(body if sent is None else sent)
                self.wfile.flush()
        except (BrokenPipeError, ConnectionResetError):
            self.close_connection = True  # the client hung up (regstat does, on a manifest over 4 MiB)

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0), not FIN: what a dropped connection looks like."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.connection.close()
        self.close_connection = True
