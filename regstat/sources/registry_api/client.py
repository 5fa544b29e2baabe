"""The OCI Distribution API as the crawl uses it: authenticated requests, pages, manifests.

`RegistryClient` adds authentication (`registry_auth`) to the HTTP client (`http`), follows
`Link` pagination within the registry's own origin, and turns failures into `ApiProblem`s,
which the crawl records against a repository. It is shared by the crawl's threads.
"""

from __future__ import annotations

import base64
import json
import re
import threading
from collections.abc import Iterator
from urllib.parse import quote, urljoin

from ...errors import ApiProblem, AuthError, SourceError, TransportError
from ...model import MAX_MANIFEST_BYTES, MediaType, digest_of, is_digest
from .http import ATTEMPTS, PAGE_LIMIT, HttpClient, Response, origin, redact_url
from .auth import Authenticator

OCI_ARTIFACT_MANIFEST = "application/vnd.oci.artifact.manifest.v1+json"  # OCI 1.1 drafts; some registries kept it
MANIFEST_ACCEPT = ", ".join(
    [
        MediaType.OCI_MANIFEST,
        MediaType.OCI_INDEX,
        MediaType.DOCKER_MANIFEST,
        MediaType.DOCKER_MANIFEST_LIST,
        MediaType.DOCKER_SCHEMA1_SIGNED,
        MediaType.DOCKER_SCHEMA1,
        OCI_ARTIFACT_MANIFEST,
    ]
)
CATALOG_SCOPE = "registry:catalog:*"
USER_AGENT = "regstat"
AUTH_ROUNDS = 2  # a 401 may need a token, then (that one already expired) a fresh one
_LINK = re.compile(r"<([^>]*)>([^,]*)")
_NEXT = re.compile(r';\s*rel\s*=\s*"?next"?', re.IGNORECASE)


def repository_scope(name: str) -> str:
    return f"repository:{name}:pull"


def manifest_path(name: str, reference: str) -> str:
    return f"/v2/{quote(name, safe='/')}/manifests/{quote(reference, safe=':')}"


class RegistryClient:
    """Authenticated requests to one registry (`base`: scheme://host[:port]); thread-safe."""

    def __init__(self, base: str, http: HttpClient, auth: Authenticator, page_size: int) -> None:
        self.base = base
        self.http = http
        self.auth = auth
        self.page_size = page_size
        self.referrers_api: bool | None = None  # None until a referrers request tells
        self.head_works = True
        self._origin = origin(base)
        self._local = threading.local()

    # -- requests

    def request(
        self,
        method: str,
        path_or_url: str,
        scope: str,
        *,
        accept: str | None = None,
        limit: int = PAGE_LIMIT,
        attempts: int = ATTEMPTS,
    ) -> Response:
        """One request with the Authorization the scope needs, answering 401 challenges.
        Raises TransportError (no answer) or AuthError (the challenge cannot be met)."""
        url = path_or_url if "://" in path_or_url else self.base + path_or_url
        if origin(url) != self._origin:  # Authorization goes to the registry and nowhere else
            raise AuthError(f"refusing to send a registry request to another host: {redact_url(url)}")
        for round_ in range(AUTH_ROUNDS + 1):
            headers = {"User-Agent": USER_AGENT}
            if accept:
                headers["Accept"] = accept
            sent = self.auth.authorization(scope)
            if sent:
                headers["Authorization"] = sent
            self._local.requests = getattr(self._local, "requests", 0) + 1
            response = self.http.request(method, url, headers, limit=limit, attempts=attempts)
            if response.status != 401 or round_ == AUTH_ROUNDS:
                return response
            self.auth.answer(scope, response, sent)
        raise AssertionError("unreachable")

    def call(self, method: str, path_or_url: str, scope: str, where: str = "", **kwargs: object) -> Response:
        """`request`, with failures to get an answer as ApiProblems against `where` (the API
        path, without host or query), else `path_or_url`."""
        try:
            return self.request(method, path_or_url, scope, **kwargs)  # type: ignore[arg-type]
        except TransportError as e:
            raise ApiProblem(where or path_or_url, "read_error", self.scrub(str(e))) from None
        except AuthError as e:
            raise ApiProblem(where or path_or_url, "denied", self.scrub(str(e))) from None

    def take_requests(self) -> int:
        """Requests made on this thread since the last call: a job's `items`."""
        count = getattr(self._local, "requests", 0)
        self._local.requests = 0
        return count

    def scrub(self, text: str) -> str:
        return self.auth.scrub(text)

    def problem(self, response: Response, path: str, what: str = "") -> ApiProblem:
        """An unexpected answer as an ApiProblem, with the registry's own error code."""
        if response.status in (401, 403):
            kind, text = "denied", f"access denied ({response.status}) with {self.auth.identity()}"
        else:
            kind, text = "read_error", f"answered {response.status} {response.reason}"
        # Scrubbed before it is cut short, so no secret the registry echoes survives in part.
        code, detail = (self.scrub(part) for part in _registry_error(response.body))
        code, detail = code[:40], detail[:160]
        message = f"{what}{': ' if what else ''}{text}{f' ({code}: {detail})' if code or detail else ''}"
        return ApiProblem(path, kind, self.scrub(message), response.status, code)

    # -- the API

    def probe(self) -> None:
        """Check that SOURCE is a registry we may read (`GET /v2/`); raise SourceError if not."""
        try:
            response = self.request("GET", "/v2/", "", attempts=2)
        except (TransportError, AuthError) as e:
            raise SourceError(self.scrub(f"cannot use the registry at {self.base}: {e}")) from None
        if response.status == 200:
            return
        if response.status == 401:
            message = f"the registry at {self.base} refuses access with {self.auth.identity()}"
        elif response.status == 404:
            message = f"no registry API at {self.base}/v2/ (404)"
        else:
            message = f"the registry at {self.base} answers /v2/ with {response.status} {response.reason}"
        raise SourceError(self.scrub(message))

    def pages(self, path: str, scope: str, *, sized: bool = True, accept: str = "application/json") -> Iterator[dict]:
        """The JSON documents of a paginated listing, following `Link: <…>; rel="next"`.

        Raises ApiProblem after the pages it could read; a link to another host is never
        followed (`foreign_link`).
        """
        url: str | None = self.base + path + (f"?n={self.page_size}" if sized else "")
        seen: set[str] = set()
        while url is not None:
            if url in seen:
                raise ApiProblem(path, "invalid_response", "the pages link back to a page already read")
            seen.add(url)
            response = self.call("GET", url, scope, path, accept=accept)
            if response.status != 200:
                raise self.problem(response, path)
            if response.truncated:
                raise ApiProblem(path, "invalid_response", f"a page is over {PAGE_LIMIT} bytes")
            try:
                document = json.loads(response.body)
            except ValueError:
                document = None
            if not isinstance(document, dict):
                raise ApiProblem(path, "invalid_response", "a page is not a JSON object")
            yield document
            url = self._next_page(response, path)

    def _next_page(self, response: Response, path: str) -> str | None:
        for value in response.header_all("Link"):
            for target, params in _LINK.findall(value):
                if _NEXT.search(params):
                    url = urljoin(response.url, target.strip())
                    if origin(url) != self._origin:
                        raise ApiProblem(
                            path, "foreign_link", f"the next page is on another host ({redact_url(url)}); not followed"
                        )
                    return url
        return None

    def manifest(self, method: str, name: str, reference: str, scope: str | None = None) -> Response:
        """HEAD or GET one manifest by tag or digest; a body is read to 4 MiB + 1 at most.
        `scope`: the token's scope, when the source asks for more than `pull`."""
        path = manifest_path(name, reference)
        return self.call(method, path, scope or repository_scope(name), accept=MANIFEST_ACCEPT,
                         limit=MAX_MANIFEST_BYTES)


def header_digest(response: Response) -> str | None:
    """The Docker-Content-Digest the registry names, if it is a digest."""
    value = (response.header("Docker-Content-Digest") or "").strip()
    return value if is_digest(value) else None


def stored_form(body: bytes) -> bytes:
    """The bytes a manifest's digest is computed over.

    For everything but Docker schema 1 signed manifests, the body itself. A signed schema 1
    manifest is served with signatures the registry adds; its digest is that of the payload,
    rebuilt from the first signature's protected header (`formatLength`, `formatTail`).
    """
    if b'"signatures"' not in body:
        return body
    try:
        document = json.loads(body)
        protected = json.loads(_b64url(document["signatures"][0]["protected"]))
        length, tail = protected["formatLength"], _b64url(protected["formatTail"])
    except (ValueError, KeyError, IndexError, TypeError):
        return body
    if document.get("schemaVersion") != 1 or not isinstance(length, int) or not 0 < length <= len(body):
        return body
    return body[:length] + tail


def body_digest(body: bytes, named: str | None) -> str:
    """The digest of a manifest body, in the algorithm of the digest the registry named."""
    algorithm = named.partition(":")[0] if named else "sha256"
    return digest_of(body, algorithm)


def _b64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _registry_error(body: bytes) -> tuple[str, str]:
    """(code, message) of a registry's JSON error body; never the raw body."""
    try:
        first = (json.loads(body).get("errors") or [])[0]
        return str(first.get("code", "")), str(first.get("message", ""))
    except (ValueError, AttributeError, IndexError, TypeError):
        return "", ""
