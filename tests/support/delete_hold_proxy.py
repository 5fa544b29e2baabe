"""An S3 proxy in front of moto that counts DeleteObjects requests and holds the Nth one until
the test has killed the client: a kill at an exact moment of an apply-gc, without timing.

Every DeleteObjects (``POST /BUCKET?delete``) is numbered from 1; the keys of each one
forwarded to moto are recorded (``forwarded``), so a test sees any key deleted twice. The
request numbered ``hold_at`` sets ``reached`` and waits for ``release``; then it is dropped
(a connection reset: it never reached S3) or, with ``forward_held``, forwarded (S3 deleted it,
but the client died before it heard so), and ``held_done`` is set.
"""

from __future__ import annotations

import re
import threading

from .proxy import Proxy, ProxyHandler

_KEY = re.compile(rb"<Key>(.*?)</Key>", re.S)
HOLD_TIMEOUT = 120.0  # a safety net only: the test releases the request


class DeleteHoldProxy(Proxy):
    def __init__(self, upstream: str, *, hold_at: int | None = None, forward_held: bool = False) -> None:
        super().__init__(upstream, _Handler)
        self.hold_at, self.forward_held = hold_at, forward_held
        self.reached, self.release, self.held_done = threading.Event(), threading.Event(), threading.Event()
        self.forwarded: list[list[str]] = []  # keys of each DeleteObjects forwarded, in order
        self._deletes = 0
        self._lock = threading.Lock()

    def record(self, body: bytes | None) -> None:
        with self._lock:
            self.forwarded.append([k.decode() for k in _KEY.findall(body or b"")])

    def number(self) -> int:
        with self._lock:
            self._deletes += 1
            return self._deletes


class _Handler(ProxyHandler):
    proxy: DeleteHoldProxy  # type: ignore[assignment]

    def handle_method(self, method: str) -> None:
        proxy = self.proxy
        body = self.request_body()
        deleting = method == "POST" and "?delete" in self.path
        held = deleting and proxy.number() == proxy.hold_at
        if held:
            proxy.reached.set()
            proxy.release.wait(HOLD_TIMEOUT)
            if not proxy.forward_held:
                self.reset()
                return
        status, headers, data = self.forward(method, self.path, self.request_headers(), body)
        if deleting:
            proxy.record(body)
        if held:
            proxy.held_done.set()
        self.answer(method, status, headers, data)
