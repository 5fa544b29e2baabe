"""A small HTTP client for registry APIs: keep-alive connections per thread, TLS, retries.

Standard library only (`http.client`). Each crawl thread keeps one connection per host and
reuses it. Connection errors, 429 and 5xx are retried with exponential backoff and jitter,
honouring `Retry-After`, within a budget per request and one per crawl; then the request
fails with `TransportError`, whose message never holds credentials.
"""

from __future__ import annotations

import http.client
import random
import ssl
import threading
import time
import urllib.request
from collections.abc import Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime
from urllib.parse import SplitResult, parse_qsl, urlencode, urlsplit, urlunsplit

from ...errors import TransportError

ATTEMPTS = 5  # per request: the first try and four retries
BACKOFF_BASE = 0.25  # seconds before the first retry; doubles each time
BACKOFF_MAX = 20.0
RETRY_AFTER_MAX = 60.0  # a registry asking for a longer wait (a rate limit) fails the request at once
CRAWL_RETRY_BUDGET = 1000  # retries for the whole crawl, so a sick registry ends it in bounded time
TIMEOUT = 60.0
PAGE_LIMIT = 16 * 1024 * 1024  # bytes read from a listing page or a token response

# Query parameters a URL may show in a message; any other value is replaced.
_SAFE_QUERY_KEYS = frozenset({"n", "last", "service", "scope", "digest"})


@dataclass(frozen=True)
class Response:
    """An HTTP response with its body read up to a limit."""

    url: str
    status: int
    reason: str
    headers: http.client.HTTPMessage
    body: bytes
    truncated: bool = False  # the body is longer than the limit; `body` holds limit + 1 bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name)

    def header_all(self, name: str) -> list[str]:
        return self.headers.get_all(name) or []


class RetryBudget:
    """Retries left for a whole crawl, shared by its threads."""

    def __init__(self, retries: int = CRAWL_RETRY_BUDGET) -> None:
        self._left = retries
        self._lock = threading.Lock()

    def take(self) -> bool:
        with self._lock:
            if self._left <= 0:
                return False
            self._left -= 1
            return True


def tls_context(insecure: bool, ca_file: str | None) -> ssl.SSLContext:
    """Verification on, with the system's trust plus `ca_file`; `insecure` turns it off."""
    context = ssl.create_default_context()
    if insecure:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    elif ca_file:
        context.load_verify_locations(cafile=ca_file)
    return context


def redact_url(url: str) -> str:
    """`url` fit for a message: no user info, and only harmless query values."""
    parts = urlsplit(url)
    netloc = parts.netloc.rpartition("@")[2]
    query = urlencode(
        [(k, v if k in _SAFE_QUERY_KEYS else "REDACTED") for k, v in parse_qsl(parts.query, keep_blank_values=True)],
        safe="/:*",
    )
    return urlunsplit((parts.scheme, netloc, parts.path, query, ""))


def origin(url: str) -> tuple[str, str, int]:
    """(scheme, host, port) of `url`, with the scheme's default port filled in."""
    parts = urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    return parts.scheme, (parts.hostname or "").lower(), port


class HttpClient:
    """Requests with keep-alive connections per thread, retries and a body limit."""

    def __init__(self, context: ssl.SSLContext, budget: RetryBudget | None = None) -> None:
        self.context = context
        self.budget = budget or RetryBudget()
        self._local = threading.local()

    def request(
        self,
        method: str,
        url: str,
        headers: Mapping[str, str] | None = None,
        body: bytes | None = None,
        limit: int = PAGE_LIMIT,
        attempts: int = ATTEMPTS,
    ) -> Response:
        """Send one request, retrying what is worth retrying; raise TransportError when no
        answer came, or only 429/5xx answers until the retries ran out."""
        parts = urlsplit(url)
        where = f"{method} {redact_url(url)}"
        attempt = 0
        while True:
            attempt += 1
            try:
                response = self._send(parts, method, dict(headers or {}), body, limit)
            except ssl.SSLCertVerificationError as e:
                raise TransportError(f"{where}: TLS verification failed: {e.verify_message}") from None
            except ConnectionRefusedError:
                problem, delay, refused = "connection refused", None, True
            except (OSError, http.client.HTTPException) as e:
                problem, delay, refused = _describe(e), None, False
            else:
                if not _retryable(response.status):
                    return response
                problem, delay, refused = f"{response.status} {response.reason}", _retry_after(response), False
                if delay is not None and delay > RETRY_AFTER_MAX:
                    raise TransportError(f"{where}: {problem}, retry after {delay:.0f} s: longer than regstat waits")
            if attempt >= attempts:
                raise TransportError(f"{where}: {problem} (after {attempt} attempts)", refused=refused)
            if not self.budget.take():
                raise TransportError(f"{where}: {problem} (the crawl's retry budget is spent)", refused=refused)
            time.sleep(delay if delay is not None else _backoff(attempt))

    def _send(
        self, parts: SplitResult, method: str, headers: dict[str, str], body: bytes | None, limit: int
    ) -> Response:
        key = origin(urlunsplit(parts))
        target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        for fresh in (False, True):
            connection, absolute, reused = self._connection(key, fresh)
            try:
                # Through a plain HTTP proxy the request line names the whole URL.
                connection.request(method, f"{parts.scheme}://{parts.netloc}{target}" if absolute else target,
                                   body=body, headers=headers)
                answer = connection.getresponse()
                data, truncated = _read(answer, limit)
            except (http.client.RemoteDisconnected, ConnectionResetError, BrokenPipeError):
                self._drop(key)
                if reused and not fresh:
                    continue  # the server closed an idle keep-alive connection: not a failure
                raise
            except BaseException:
                self._drop(key)
                raise
            if truncated or answer.will_close:
                self._drop(key)
            return Response(urlunsplit(parts), answer.status, answer.reason, answer.headers, data, truncated)
        raise AssertionError("unreachable")

    def _connection(self, key: tuple[str, str, int], fresh: bool) -> tuple[http.client.HTTPConnection, bool, bool]:
        """This thread's connection to `key`, whether it takes absolute URLs, whether reused."""
        connections: dict = self._local.__dict__.setdefault("connections", {})
        if not fresh and key in connections:
            return (*connections[key], True)
        self._drop(key)
        connections[key] = _connect(key, self.context)
        return (*connections[key], False)

    def _drop(self, key: tuple[str, str, int]) -> None:
        entry = self._local.__dict__.get("connections", {}).pop(key, None)
        if entry is not None:
            entry[0].close()


def _connect(key: tuple[str, str, int], context: ssl.SSLContext) -> tuple[http.client.HTTPConnection, bool]:
    """A connection to `key`, through the proxy the environment names for it, if any; and
    whether requests on it must name the whole URL (a plain HTTP proxy)."""
    scheme, host, port = key
    proxy = urllib.request.getproxies().get(scheme)
    if proxy and not urllib.request.proxy_bypass(f"{host}:{port}"):
        via = urlsplit(proxy if "://" in proxy else f"http://{proxy}")
        if scheme == "https":
            tunnel = http.client.HTTPSConnection(via.hostname or "", via.port or 80, timeout=TIMEOUT, context=context)
            tunnel.set_tunnel(host, port)
            return tunnel, False
        return http.client.HTTPConnection(via.hostname or "", via.port or 80, timeout=TIMEOUT), True
    if scheme == "https":
        return http.client.HTTPSConnection(host, port, timeout=TIMEOUT, context=context), False
    return http.client.HTTPConnection(host, port, timeout=TIMEOUT), False


def _read(answer: http.client.HTTPResponse, limit: int) -> tuple[bytes, bool]:
    """At most limit + 1 bytes of the body: never more than needed to know it is too long.

    A body that ends before its Content-Length raises IncompleteRead (retried like a dropped
    connection): `read(amt)` would hand back the short body as if it were whole.
    """
    if answer.length is not None and answer.length > limit:
        return b"", True
    chunks, total = [], 0
    while total <= limit:
        chunk = answer.read(min(1 << 16, limit + 1 - total))
        if not chunk:
            break
        chunks.append(chunk)
        total += len(chunk)
    data = b"".join(chunks)
    if answer.length:  # bytes promised and never sent: the connection closed mid-body
        raise http.client.IncompleteRead(data, answer.length)
    return data, total > limit


def _retryable(status: int) -> bool:
    return status == 429 or (500 <= status <= 599 and status not in (501, 505))


def _retry_after(response: Response) -> float | None:
    value = (response.header("Retry-After") or "").strip()
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError):
            return None
    return max(seconds, 0.0)


def _backoff(attempt: int) -> float:
    # Half fixed, half random ("equal jitter"): threads that failed together retry apart.
    ceiling = min(BACKOFF_MAX, BACKOFF_BASE * 2 ** (attempt - 1))
    return ceiling / 2 + random.uniform(0, ceiling / 2)


def _describe(error: BaseException) -> str:
    name = type(error).__name__
    text = str(error)
    return f"{name}: {text}"[:200] if text and text != name else name
