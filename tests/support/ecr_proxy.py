"""A loopback proxy in front of moto's ECR that answers more like ECR does.

moto's ECR returns every repository and image in one page whatever ``maxResults`` says, takes
any number of image ids in BatchGetImage, and never throttles. :class:`EcrProxy` forwards each
call to moto and then:

- pages DescribeRepositories, DescribeImages and ListImages by ``maxResults`` (ECR's default
  100, at most 1000) and by ``page_sizes[operation]`` when set, with an opaque ``nextToken``;
- refuses more than 100 image ids in BatchGetImage, BatchDeleteImage and DescribeImages, and
  ``maxResults`` over 1000, as ECR does;
- answers ``400 ThrottlingException`` when told to (``throttle``, ``throttle_if``);
- lets a test edit a response, or act in between (``rewrite``: delete an image after it was
  listed, add a ``lastRecordedPullTime`` moto does not keep).

Every ECR call it saw is in ``calls`` as (operation, request), for tests to count pages and
batch sizes. Calls to other services (STS) pass through untouched.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable

from .proxy import Proxy, ProxyHandler

PAGED = {"DescribeRepositories": "repositories", "DescribeImages": "imageDetails", "ListImages": "imageIds"}
DEFAULT_MAX_RESULTS = 100
MAX_RESULTS = 1000
BATCH_LIMIT = 100  # image ids per call
BATCHED = ("BatchGetImage", "BatchDeleteImage", "DescribeImages")
_JSON = "application/x-amz-json-1.1"

Rewrite = Callable[[dict, dict], None]  # (request, response) -> None, edits response in place


class EcrProxy(Proxy):
    """A loopback HTTP server forwarding to ``upstream`` (moto), as a context manager."""

    def __init__(self, upstream: str, *, page_sizes: dict[str, int] | None = None) -> None:
        super().__init__(upstream, _Handler)
        self.page_sizes = dict(page_sizes or {})
        self.calls: list[tuple[str, dict]] = []
        self.throttle: dict[str, int] = {}  # operation -> how many more calls to throttle
        self.throttle_if: Callable[[str, dict], bool] | None = None  # throttle every match
        self.throttled: list[tuple[str, dict]] = []
        self.rewrite: dict[str, Rewrite] = {}
        self._lock = threading.Lock()

    def operations(self, name: str) -> list[dict]:
        """The requests of every call to operation ``name``, in order."""
        with self._lock:
            return [request for operation, request in self.calls if operation == name]

    # -- called by the handler

    def answer(self, operation: str, request: dict, forward: Callable[[dict], tuple[int, bytes]]) -> tuple[int, bytes]:
        with self._lock:
            self.calls.append((operation, dict(request)))
            if self.throttle.get(operation, 0) > 0 or (self.throttle_if and self.throttle_if(operation, request)):
                self.throttle[operation] = max(0, self.throttle.get(operation, 0) - 1)
                self.throttled.append((operation, dict(request)))
                return _error("ThrottlingException", "Rate exceeded")
        if operation in BATCHED and len(request.get("imageIds") or []) > BATCH_LIMIT:
            return _error("InvalidParameterException", "imageIds: at most 100")
        paged = PAGED.get(operation)
        if paged is None:
            status, body = forward(request)
            return self._rewritten(operation, request, status, body)
        upstream = {k: v for k, v in request.items() if k not in ("maxResults", "nextToken")}
        limit = request.get("maxResults", DEFAULT_MAX_RESULTS)
        if not isinstance(limit, int) or not 1 <= limit <= MAX_RESULTS:
            return _error("InvalidParameterException", f"maxResults must be 1 to {MAX_RESULTS}")
        limit = min(limit, self.page_sizes.get(operation, limit))
        token = request.get("nextToken")
        try:
            offset = int(token.removeprefix("page-")) if token else 0
        except (AttributeError, ValueError):
            return _error("InvalidParameterException", "invalid nextToken")
        status, body = forward(upstream)
        if status != 200:
            return status, body
        response = json.loads(body)
        items = response.get(paged) or []
        response[paged] = items[offset : offset + limit]
        response.pop("nextToken", None)
        if offset + limit < len(items):
            response["nextToken"] = f"page-{offset + limit}"
        return self._rewritten(operation, request, status, json.dumps(response).encode())

    def _rewritten(self, operation: str, request: dict, status: int, body: bytes) -> tuple[int, bytes]:
        rewrite = self.rewrite.get(operation)
        if rewrite is None or status != 200:
            return status, body
        response = json.loads(body)
        rewrite(request, response)
        return status, json.dumps(response).encode()


def _error(code: str, message: str) -> tuple[int, bytes]:
    return 400, json.dumps({"__type": code, "message": message}).encode()


class _Handler(ProxyHandler):
    proxy: EcrProxy  # type: ignore[assignment]

    def handle_method(self, method: str) -> None:
        body = self.request_body() or b""
        target = self.headers.get("X-Amz-Target", "")
        if method != "POST" or not target.startswith("AmazonEC2ContainerRegistry"):
            status, headers, answer = self.forward(method, self.path, self.request_headers(), body or None)
            self.answer(method, status, headers, answer)
            return
        operation = target.rsplit(".", 1)[-1]
        status, answer = self.proxy.answer(operation, json.loads(body or b"{}"), self._forward_json)
        self.answer(method, status, [("Content-Type", _JSON)], answer)

    def _forward_json(self, request: dict) -> tuple[int, bytes]:
        # moto checks no signatures, so a request whose body changed still goes through.
        status, _, body = self.forward("POST", self.path, self.request_headers(), json.dumps(request).encode())
        return status, body
