"""The OCI Distribution API source: any registry, over HTTPS (SOURCE `https://host[:port]`).

It sees what the API shows: repositories (`/v2/_catalog`), their tags, the manifests the
tags point at, index children and referrers, but no untagged manifest nothing reaches and no
stored blob. Jobs run on threads (every one waits on the network):

- `list_repositories`: the catalog's pages, then one job per repository (`--repository`);
- `crawl_repository`: the tags' pages, then tags in batches of `TAGS_PER_JOB`; the first
  batch in the same job, the others as `resolve_tags` jobs, so a repository with many tags is
  crawled in parallel too. A repository's jobs share the set of digests already claimed, so
  a manifest is fetched once per repository however many tags, indexes or referrers name it.

A tag is resolved with HEAD (its digest; HEAD does not count against pull limits) and then,
if this repository has not fetched that digest yet, GET by digest, whose body must hash to
it. Referrers come from the OCI 1.1 referrers API where the registry offers it; otherwise
from the `sha256-<hex>[.suffix]` tags of the tag schema, which are tags and crawled anyway.

Plain `http://` is refused unless `--insecure` or the host is loopback (nothing leaves the
machine; Docker treats 127.0.0.0/8 the same way). `REGSTAT_PAGE_SIZE` sets `n` for catalog
and tag pages (default 1000), for registries that cap it lower. `REGSTAT_REALM_HOSTS`
(comma-separated) names the hosts, other than the registry's, whose HTTPS token realms may
receive the credentials.

Names from the registry are checked against the distribution grammar before they go into a
URL: a repository or tag name it rejects (`..`, `%2F`, unicode, control characters) is
recorded as `invalid_name` and never requested.
"""

from __future__ import annotations

import ipaddress
import os
import ssl
import threading
from collections.abc import Mapping
from typing import Any
from urllib.parse import quote, urlsplit

from ...errors import ApiProblem, CrawlError, SourceError
from ...model import MAX_MANIFEST_BYTES, TAG, Manifest, MediaType, is_digest
from ...shards import Selection
from ...snapshot.info import Capabilities, SourceInfo
from ...snapshot.previous import PreviousManifests
from ..base import CrawlOptions, Job, JobResult, add_unselected
from .http import HttpClient, tls_context
from .auth import REALM_HOSTS_VARIABLE, Authenticator, Credentials
from .client import (
    CATALOG_SCOPE,
    RegistryClient,
    body_digest,
    header_digest,
    manifest_path,
    repository_scope,
    stored_form,
)
from ..storage_tree.jobs import parse_or_record
from ..storage_tree.layout import valid_repository_name

CAPABILITIES = Capabilities(
    untagged_manifests=False,  # only tags and what they reach
    unreferenced_blobs=False,
    stored_blob_sizes=False,  # sizes come from descriptors
    push_times=None,
    pull_times=None,
    locks=None,
)
PAGE_SIZE_VARIABLE = "REGSTAT_PAGE_SIZE"
DEFAULT_PAGE_SIZE = 1000
TAGS_PER_JOB = 64
_GLOB_CHARACTERS = frozenset("*?[")


def open_distribution_api(source: str, options: CrawlOptions) -> DistributionApiSource:
    """Open a registry by URL and check that it answers `/v2/`; raise SourceError if not."""
    location = parse_location(source, options.insecure)
    explicit = explicit_credentials(options)
    http = HttpClient(tls_from(options))
    authenticator = Authenticator(http, location, explicit, realm_hosts())
    client = RegistryClient(location, http, authenticator, page_size())
    client.probe()
    return DistributionApiSource(client, Selection(options.repositories, options.shard))


def explicit_credentials(options: CrawlOptions) -> Credentials | None:
    """`--username` and the password from `--password-stdin`, which go together."""
    if options.password is not None and not options.username:
        raise SourceError("--password-stdin needs --username")
    if options.username and options.password is None:
        raise SourceError("--username needs --password-stdin (the password or token on standard input)")
    if options.username and options.password is not None:
        return Credentials(options.username, options.password)
    return None


def tls_from(options: CrawlOptions) -> ssl.SSLContext:
    """The TLS context of `--insecure` and `--ca-file`."""
    try:
        return tls_context(options.insecure, options.ca_file)
    except (OSError, ssl.SSLError) as e:
        raise SourceError(f"cannot load --ca-file {options.ca_file}: {type(e).__name__}: {e}") from None


def parse_location(source: str, insecure: bool) -> str:
    """`scheme://host[:port]` from SOURCE, applying the plain-HTTP rule."""
    parts = urlsplit(source)
    if "@" in parts.netloc:  # never echo it: it holds a password
        raise SourceError("credentials do not belong in SOURCE: use --username and --password-stdin")
    try:
        _ = parts.port  # read for its check: a port that is not a number raises
    except ValueError:
        raise SourceError(f"not a registry address: {source!r}") from None
    if not parts.hostname or parts.path.rstrip("/") not in ("", "/v2") or parts.query or parts.fragment:
        raise SourceError(f"a registry SOURCE is https://HOST[:PORT], without a path: {source!r}")
    if parts.scheme == "http" and not insecure and not is_loopback(parts.hostname):
        raise SourceError(
            f"refusing plain HTTP to {parts.hostname}: credentials and content would cross the network "
            "unprotected; use https://, or --insecure to allow it"
        )
    return f"{parts.scheme}://{parts.netloc.lower()}"


def is_loopback(host: str) -> bool:
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def page_size() -> int:
    """`n` for catalog and tag pages: REGSTAT_PAGE_SIZE, read here and nowhere else."""
    text = os.environ.get(PAGE_SIZE_VARIABLE, "")
    if not text:
        return DEFAULT_PAGE_SIZE
    if not text.isdigit() or int(text) < 1:
        raise SourceError(f"{PAGE_SIZE_VARIABLE} must be a positive whole number, not {text!r}")
    return int(text)


def realm_hosts() -> frozenset[str]:
    """Hosts the user consents to send credentials to (REGSTAT_REALM_HOSTS), read here only."""
    text = os.environ.get(REALM_HOSTS_VARIABLE, "")
    return frozenset(h.strip().lower() for h in text.split(",") if h.strip())


class DistributionApiSource:
    """A registry read through the OCI Distribution API."""

    processes = False  # every job waits on the network: threads
    default_concurrency = 16

    def __init__(self, client: RegistryClient, selection: Selection) -> None:
        self.client = client
        self.selection = selection
        self.previous: PreviousManifests | None = None  # set by an incremental crawl

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="distribution-api", location=self.client.base)

    def capabilities(self, partial: bool) -> Capabilities:
        return CAPABILITIES

    def first_jobs(self) -> list[Job]:
        return [(list_repositories, (self.client, self.selection, self.previous))]

    def fetch_job(self, digests: list[str]) -> Job:
        # Manifests are read per repository (the API has no registry-wide read), so the jobs
        # never hand digests to the driver.
        raise NotImplementedError("the distribution API source fetches manifests in its repository jobs")

    def manifest_path(self, repository: str, digest: str) -> str:
        return manifest_path(repository, digest)  # the API path it was read from


def list_repositories(
    client: RegistryClient, selection: Selection, previous: PreviousManifests | None = None
) -> JobResult:
    """The catalog's pages; one `crawl_repository` job per selected repository."""
    result = JobResult()
    for name, listed in select_repositories(client, "/v2/_catalog", selection, result):
        result.jobs.append((crawl_repository, (client, name, listed, previous)))
    result.items = client.take_requests()
    return result


def select_repositories(
    client: RegistryClient, path: str, selection: Selection, result: JobResult
) -> list[tuple[str, bool]]:
    """The repositories of the catalog at `path` that `selection` selects and whose names are
    valid, each with whether the catalog listed it. Without a catalog (denied or absent),
    the names its globs give when none is a pattern; else SourceError. Errors and the count of
    unselected repositories go to `result`."""
    names: list[str] = []
    listed = True
    try:
        for page in client.pages(path, CATALOG_SCOPE):
            page_names = page.get("repositories") or []
            if not isinstance(page_names, list) or not all(isinstance(n, str) for n in page_names):
                raise ApiProblem(path, "invalid_response", "`repositories` is not a list of names")
            names += page_names
    except ApiProblem as p:
        if names or p.kind not in ("denied", "read_error") or p.status not in (401, 403, 404):
            result.errors.append(CrawlError(None, p.path, p.kind, p.message))
        elif selection.globs and not any(_GLOB_CHARACTERS & set(g) for g in selection.globs):
            names, listed = list(selection.globs), False  # no catalog here (Docker Hub has none): crawl the names given
            result.unselected = None  # and how many repositories the registry has is unknown
        else:
            raise SourceError(
                f"the registry at {client.base} does not list its repositories ({p.message}); "
                "name them with --repository"
            ) from None
    selected = []
    for name in sorted(set(names)):
        if not selection.selects(name):
            result.unselected = add_unselected(result.unselected, 1)
        elif valid_repository_name(name):
            selected.append((name, listed))
        else:  # never put it in a URL
            result.repositories.append(name)
            result.errors.append(CrawlError(name, path, "invalid_name", "not a valid repository name"))
    return selected


class RepositoryState:
    """What the jobs of one repository share: the digests one of them has claimed to fetch."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._claimed: set[str] = set()
        self._lock = threading.Lock()

    def claim(self, digest: str) -> bool:
        """True for the first caller only: that one fetches the manifest."""
        with self._lock:
            if digest in self._claimed:
                return False
            self._claimed.add(digest)
            return True

    def resume_key(self) -> str:
        return self.name

    @classmethod
    def resumed(cls, key: str, revisions: Mapping[str, set[str]]) -> RepositoryState:
        """After an interruption: what the repository's finished jobs fetched stays claimed."""
        state = cls(key)
        state._claimed.update(revisions.get(key, ()))
        return state


def crawl_repository(
    client: RegistryClient, name: str, listed: bool = True, previous: PreviousManifests | None = None
) -> JobResult:
    """A repository's tags, then its manifests (the first batch here, more as jobs).

    `listed`: the catalog named it. Distribution answers NAME_UNKNOWN for a repository
    without tags (its manifests were pushed by digest, or its tags deleted): then there is
    nothing the API can see in it, which is no error; for a name the catalog never gave, it
    is one.
    """
    result = JobResult(repositories=[name])
    path = f"/v2/{quote(name, safe='/')}/tags/list"
    tags: list[str] = []
    try:
        for page in client.pages(path, repository_scope(name)):
            page_tags = page.get("tags") or []
            if not isinstance(page_tags, list) or not all(isinstance(t, str) for t in page_tags):
                raise ApiProblem(path, "invalid_response", "`tags` is not a list of names")
            tags += page_tags
    except ApiProblem as p:
        if not (listed and p.status == 404 and p.code == "NAME_UNKNOWN"):
            result.errors.append(CrawlError(name, p.path, p.kind, p.message))
    tags = _valid_tags(name, path, list(dict.fromkeys(tags)), result)
    state = RepositoryState(name)
    batches = [tags[i : i + TAGS_PER_JOB] for i in range(0, len(tags), TAGS_PER_JOB)] or [[]]
    _Walk(client, state, result, previous).resolve(batches[0])
    result.jobs = [(resolve_tags, (client, state, batch, previous)) for batch in batches[1:]]
    result.items = client.take_requests()
    return result


def _valid_tags(name: str, path: str, tags: list[str], result: JobResult) -> list[str]:
    """The tags the grammar allows; the others are recorded and never put in a URL."""
    valid = [t for t in tags if TAG.fullmatch(t)]
    for tag in tags:
        if not TAG.fullmatch(tag):
            result.errors.append(CrawlError(name, path, "invalid_name", f"not a valid tag name: {tag!r}"))
    return valid


def resolve_tags(
    client: RegistryClient, state: RepositoryState, tags: list[str], previous: PreviousManifests | None = None
) -> JobResult:
    """More of a repository's tags, and the manifests they reach."""
    result = JobResult()
    _Walk(client, state, result, previous).resolve(tags)
    result.items = client.take_requests()
    return result


class _Walk:
    """Resolves tags and fetches what they reach (children, referrers) into one JobResult.

    With `previous` (an incremental crawl), a manifest that snapshot parsed is not read: a
    HEAD of it (the tag's, or one by digest) must answer 200 with its digest and the size
    recorded, and then its facts are reused; a 404 is what a GET would have met; anything
    else, and any other manifest, is read as usual.
    """

    def __init__(
        self, client: RegistryClient, state: RepositoryState, result: JobResult,
        previous: PreviousManifests | None = None,
    ) -> None:
        self.client = client
        self.previous = previous
        self.state = state
        self.name = state.name
        self.result = result
        self.children: list[str] = []  # digests to fetch
        self.referred: list[str] = []  # digests whose referrers to ask for

    def resolve(self, tags: list[str]) -> None:
        for tag in tags:
            self._attempt(self._tag, tag)
            while self.children or self.referred:
                if self.children:
                    digest = self.children.pop()
                    if self.state.claim(digest):
                        self._attempt(self._fetch, digest)
                else:
                    self._attempt(self._referrers, self.referred.pop())

    def _attempt(self, step: Any, argument: str) -> None:
        try:
            step(argument)
        except ApiProblem as p:
            self.result.errors.append(CrawlError(self.name, p.path, p.kind, self.client.scrub(p.message)))

    def _tag(self, tag: str) -> None:
        path = manifest_path(self.name, tag)
        vanished = ApiProblem(path, "tag_vanished", f"tag {tag} was listed, then answered 404 (deleted meanwhile)")
        if self.client.head_works:
            head = self.client.manifest("HEAD", self.name, tag)
            if head.status == 404:
                raise vanished
            if head.status in (400, 405, 501):
                self.client.head_works = False  # some registries have no HEAD: GET from now on
            elif head.status != 200:
                raise self.client.problem(head, path, f"tag {tag}")
            elif (digest := header_digest(head)) is not None:
                linked = True  # unless the manifest vanished: then so did the tag
                try:
                    if self.state.claim(digest):
                        self._fetch(digest, vanished, head)
                except ApiProblem as p:
                    linked = p is not vanished
                    raise
                finally:
                    if linked:
                        self.result.add("tag_links", (self.name, tag, digest, None, None))
                return
        # No digest from HEAD: GET by tag, and take the digest from the body's hash.
        response = self.client.manifest("GET", self.name, tag)
        if response.status == 404:
            raise vanished
        if response.status != 200:
            raise self.client.problem(response, path, f"tag {tag}")
        named = header_digest(response)
        if response.truncated:
            if named is None:
                raise ApiProblem(path, "manifest_too_large", f"tag {tag}: the manifest is over 4 MiB")
            self.result.add("tag_links", (self.name, tag, named, None, None))
            if self.state.claim(named):
                self._too_large(named)
            return
        body = stored_form(response.body)
        digest = body_digest(body, named)
        if named is not None and named != digest:
            problem = f"tag {tag}: the registry names {named}, the body hashes to {digest}"
            self.result.errors.append(CrawlError(self.name, path, "digest_mismatch", problem))
        self.result.add("tag_links", (self.name, tag, digest, None, None))
        if self.state.claim(digest):
            self._found(digest, body)

    def _fetch(self, digest: str, gone: ApiProblem | None = None, head: Any = None) -> None:
        """GET a manifest by digest (a tag's, an index child, a referrer)."""
        path = manifest_path(self.name, digest)
        if self.previous is not None and (size := self.previous.size(digest)) is not None:
            if head is None:
                try:
                    head = self.client.manifest("HEAD", self.name, digest)
                except ApiProblem:
                    self._revision(digest)  # as an unread GET below
                    raise
                if head.status == 404:
                    raise gone or ApiProblem(path, "missing_manifest", f"{digest} is referenced here, but answers 404")
            if head.status == 200 and _confirms(head, digest, size):
                self._reuse(digest)
                return
        length = head.header("Content-Length") if head is not None else None
        if length and length.isdigit() and int(length) > MAX_MANIFEST_BYTES:
            self._too_large(digest)  # HEAD said so: no need to download it
            return
        try:
            response = self.client.manifest("GET", self.name, digest)
        except ApiProblem:
            self._revision(digest)  # it is there, only unread: keep its row (the repository is incomplete)
            raise
        if response.status == 404:
            raise gone or ApiProblem(path, "missing_manifest", f"{digest} is referenced here, but answers 404")
        if response.status != 200:
            self._revision(digest)
            raise self.client.problem(response, path)
        if response.truncated:
            self._too_large(digest)
            return
        self._found(digest, stored_form(response.body))

    def _found(self, digest: str, body: bytes) -> None:
        self._revision(digest)
        parsed = parse_or_record(body, digest)  # checks that the body hashes to the digest
        self.result.parsed.append(parsed)
        if isinstance(parsed, Manifest):
            self.children += [d.digest for d in parsed.descriptors if d.role == "manifest"]
        if self.client.referrers_api is not False:
            self.referred.append(digest)

    def _reuse(self, digest: str) -> None:
        """What _found does with a body, from the previous snapshot's facts instead."""
        assert self.previous is not None
        self._revision(digest)
        self.result.reused.append(digest)
        self.children += self.previous.children_of(digest)
        if self.client.referrers_api is not False:
            self.referred.append(digest)

    def _too_large(self, digest: str) -> None:
        self._revision(digest)
        self.result.parsed.append((digest, "too_large", "the registry serves it with over 4 MiB, the limit"))

    def _revision(self, digest: str) -> None:
        self.result.add("revisions", (self.name, digest, None, None, None, None))

    def _referrers(self, digest: str) -> None:
        """Manifests whose subject is `digest`, from the OCI 1.1 referrers API."""
        if self.client.referrers_api is False:
            return
        path = f"/v2/{quote(self.name, safe='/')}/referrers/{digest}"
        try:
            for page in self.client.pages(path, repository_scope(self.name), sized=False, accept=MediaType.OCI_INDEX):
                self.client.referrers_api = True
                entries = page.get("manifests") or []
                found = [e.get("digest") for e in entries if isinstance(e, dict)] if isinstance(entries, list) else []
                digests = [d for d in found if isinstance(d, str) and is_digest(d)]
                if not isinstance(entries, list) or len(digests) != len(entries):
                    raise ApiProblem(path, "invalid_response", "the referrers are not a list of descriptors")
                self.children += digests
        except ApiProblem as p:
            # A registry with the API never answers 404 (OCI distribution spec 1.1); one
            # without it (distribution 2.8) does: then the sha256-<hex> tags are the referrers.
            if self.client.referrers_api is not True and p.status in (404, 405, 501):
                self.client.referrers_api = False
                return
            raise


def _confirms(head: Any, digest: str, size: int) -> bool:
    """Whether a HEAD names `digest` (or no digest: it was asked by digest) and `size` bytes."""
    named = header_digest(head)
    length = head.header("Content-Length")
    return (named is None or named == digest) and length is not None and length.strip() == str(size)
