"""Azure Container Registry through its data-plane API: SOURCE `acr://NAME.azurecr.io`.

ACR lists what the OCI Distribution API hides: every manifest of a repository, tagged or not,
with its push and update times and its locks (`listing`). The manifests themselves come from
`/v2/{name}/manifests/{digest}`, each checked against its digest and parsed as every source
parses them, so index children, referrers, configs and layers are exact; blobs are never seen
(ACR frees them itself), so their sizes come from descriptors.

HTTPS, verified (`--ca-file` adds CAs); `--insecure` speaks plain HTTP instead, for stand-ins.
Requests, retries (429 with `Retry-After`, 5xx) and the token flow are the registry API
source's (`registry_api`): a 401 challenge names ACR's token service, which gets the caller's
credentials (`--username`/`--password-stdin`: the admin user, a service principal, a
repository-scoped token, or, with the user `00000000-0000-0000-0000-000000000000`, an ACR
refresh token; `--azure-credential`: an Entra ID identity, see `entra`; else what `docker
login` or `az acr login` stored) and answers with an access token per scope, cached and
renewed on 401. One scope per repository, `repository:NAME:metadata_read,pull`, serves its
listings and its manifests.

Jobs (threads): `list_acr_repositories` reads `/acr/v1/_catalog`; `crawl_acr_repository`
lists one repository and splits its manifests into `fetch_acr_manifests` jobs of
`MANIFESTS_PER_JOB`, which read the manifests and return their rows with their tags.

An incremental crawl (`previous`) GETs no manifest the previous snapshot parsed that this
crawl's `_manifests` (or `_tags`) lists: ACR names a manifest by the digest of the body it
stores, so the listing confirms it, and its facts are reused. Times and locks always come
from the fresh listing.
"""

from __future__ import annotations

from dataclasses import replace
from urllib.parse import urlsplit

from ...errors import ApiProblem, CrawlError, SourceError
from ...model import MAX_MANIFEST_BYTES
from ...snapshot.info import Capabilities, SourceInfo
from ...shards import Selection
from ...snapshot.previous import PreviousManifests
from ..base import CrawlOptions, Job, JobResult, index_children, record_missing_children
from ..registry_api.auth import Authenticator
from ..registry_api.client import RegistryClient, manifest_path, stored_form
from ..registry_api.http import HttpClient
from ..registry_api.source import explicit_credentials, page_size, realm_hosts, select_repositories, tls_from
from ..storage_tree.jobs import parse_or_record
from .entra import REFRESH_TOKEN_USER, EntraExchange
from .listing import ListedManifest, ListedTag, Listing, acr_path, metadata_scope, read_listing

CAPABILITIES = Capabilities(
    untagged_manifests=True,  # _manifests lists every manifest
    unreferenced_blobs=False,
    stored_blob_sizes=False,  # sizes come from descriptors
    push_times="exact",  # createdTime
    pull_times=None,
    locks="exact",  # changeableAttributes of manifests, tags and repositories
)
DEFAULT_CONCURRENCY = 16  # ACR limits reads per second by SKU: --concurrency lowers it
MANIFESTS_PER_JOB = 64
LOGIN_HINT = "give --username and --password-stdin, or --azure-credential, or run az acr login"
REFUSAL_HINT = "; check the credentials, or use --azure-credential or az acr login"


def open_acr(source: str, options: CrawlOptions) -> AcrSource:
    """Open `acr://HOST[:PORT]` and check that it answers `/v2/` to our credentials."""
    base = parse_acr(source, options.insecure)
    explicit = explicit_credentials(options)
    if explicit is not None and options.azure_credential:
        raise SourceError("give --username and --password-stdin, or --azure-credential, not both")
    if explicit is not None and explicit.username == REFRESH_TOKEN_USER:  # az acr login --expose-token's form
        explicit = replace(explicit, identity_token=True)
    http = HttpClient(tls_from(options))
    lookup = None
    if options.azure_credential:
        lookup = EntraExchange(http, base, options.azure_credential, options.azure_authority_host)
    authenticator = Authenticator(
        http, base, explicit, realm_hosts(),
        lookup=lookup, login_hint=LOGIN_HINT, own_scopes=True, refusal_hint=REFUSAL_HINT, renews=lookup is not None,
    )
    client = RegistryClient(base, http, authenticator, page_size())
    client.probe()
    return AcrSource(client, Selection(options.repositories, options.shard))


def parse_acr(source: str, insecure: bool) -> str:
    """`https://HOST[:PORT]` (`http://` with `insecure`) from `acr://HOST[:PORT]`."""
    parts = urlsplit(source)
    if "@" in parts.netloc:  # never echo it: it holds a password
        raise SourceError("credentials do not belong in SOURCE: use --username and --password-stdin")
    try:
        _ = parts.port  # read for its check
    except ValueError:
        raise SourceError(f"not a registry address: {source!r}") from None
    if parts.scheme != "acr" or not parts.hostname or parts.path.strip("/") or parts.query or parts.fragment:
        raise SourceError(f"use acr://NAME.azurecr.io (or acr://HOST[:PORT]), without a path: {source!r}")
    return f"{'http' if insecure else 'https'}://{parts.netloc.lower()}"


class AcrSource:
    """A registry read through ACR's data-plane API."""

    processes = False  # every job waits on the network: threads
    default_concurrency = DEFAULT_CONCURRENCY

    def __init__(self, client: RegistryClient, selection: Selection) -> None:
        self.client = client
        self.selection = selection
        self.previous: PreviousManifests | None = None  # set by an incremental crawl

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="acr", location=urlsplit(self.client.base).netloc)

    def capabilities(self, partial: bool) -> Capabilities:
        return CAPABILITIES

    def first_jobs(self) -> list[Job]:
        return [(list_acr_repositories, (self.client, self.selection, self.previous))]

    def fetch_job(self, digests: list[str]) -> Job:
        # ACR serves a manifest within a repository only: the repository's jobs read them.
        raise NotImplementedError("ACR jobs read their manifests themselves")

    def manifest_path(self, repository: str, digest: str) -> str:
        return manifest_path(repository, digest)


def list_acr_repositories(
    client: RegistryClient, selection: Selection, previous: PreviousManifests | None = None
) -> JobResult:
    """The catalog's pages; one `crawl_acr_repository` job per selected repository."""
    result = JobResult()
    for name, _listed in select_repositories(client, acr_path("_catalog"), selection, result):
        result.jobs.append((crawl_acr_repository, (client, name, previous)))
    result.items = client.take_requests()
    return result


def crawl_acr_repository(client: RegistryClient, name: str, previous: PreviousManifests | None = None) -> JobResult:
    """List one repository; its manifests, with their tags, are read by further jobs."""
    result = JobResult(repositories=[name])
    listing = read_listing(client, name, result)
    manifests = _with_tags(name, listing, result)
    # Children are checked against the whole listing, which only a complete one gives.
    listed = frozenset(manifests) if listing.complete else None
    ordered = [manifests[digest] for digest in sorted(manifests)]
    for start in range(0, len(ordered), MANIFESTS_PER_JOB):
        batch = tuple(ordered[start : start + MANIFESTS_PER_JOB])
        result.jobs.append((fetch_acr_manifests, (client, name, batch, listed, previous)))
    result.items = client.take_requests()
    return result


def _with_tags(name: str, listing: Listing, result: JobResult) -> dict[str, ListedManifest]:
    """The listed manifests, each holding its tags. A tag naming a manifest `_manifests` did
    not list (pushed between the two listings) makes the listing torn: its manifest is read
    all the same, without times, and the repository is incomplete."""
    tags: dict[str, list[ListedTag]] = {}
    for tag in listing.tags.values():
        tags.setdefault(tag.digest, []).append(tag)
    manifests = dict(listing.manifests)
    for digest in sorted(set(tags) - set(manifests)):
        names = ", ".join(t.name for t in tags[digest])
        message = f"tags {names} name {digest}, which _manifests did not list; it changed during the crawl"
        result.errors.append(CrawlError(name, acr_path(name, "_tags"), "read_error", message))
        manifests[digest] = ListedManifest(digest, None, None, listing.repository_locked)
    return {d: replace(m, tags=tuple(sorted(tags.get(d, ()), key=lambda t: t.name))) for d, m in manifests.items()}


def fetch_acr_manifests(
    client: RegistryClient, name: str, manifests: tuple[ListedManifest, ...], listed: frozenset[str] | None,
    previous: PreviousManifests | None = None,
) -> JobResult:
    """GET each listed manifest by digest; return its rows, its tags' and what it parses to.

    A manifest gone by now (404) is dropped with an `image_vanished` error; one that cannot be
    read is kept without its body (the repository is incomplete). `listed`: every digest of
    the repository, to check index children against (None when the listing was incomplete).
    A manifest `previous` parsed is not read: its facts are reused (`result.reused`).
    """
    result = JobResult()
    scope = metadata_scope(name)
    for manifest in manifests:
        path = manifest_path(name, manifest.digest)
        if previous is not None and previous.size(manifest.digest) is not None:
            _rows(name, manifest, result)
            result.reused.append(manifest.digest)
            record_missing_children(result, name, path, previous.index_children(manifest.digest), listed)
            continue
        try:
            response = client.manifest("GET", name, manifest.digest, scope)
            if response.status == 404:
                tags = f" (tags: {', '.join(t.name for t in manifest.tags)})" if manifest.tags else ""
                message = f"listed, then gone before its manifest was read{tags}"
                result.errors.append(CrawlError(name, path, "image_vanished", message))
                continue
            if response.status != 200:
                raise client.problem(response, path)
        except ApiProblem as p:
            _rows(name, manifest, result)  # present, only unread: its rows stay, the repository is incomplete
            result.errors.append(CrawlError(name, p.path, p.kind, client.scrub(p.message)))
            continue
        _rows(name, manifest, result)
        if response.truncated:
            message = f"the registry serves it with over {MAX_MANIFEST_BYTES} bytes, the limit"
            result.parsed.append((manifest.digest, "too_large", message))
            continue
        parsed = parse_or_record(stored_form(response.body), manifest.digest)  # checks the digest
        result.parsed.append(parsed)
        record_missing_children(result, name, path, index_children(parsed), listed)
    result.items = client.take_requests()
    return result


def _rows(name: str, manifest: ListedManifest, result: JobResult) -> None:
    result.add("revisions", (name, manifest.digest, manifest.pushed_at_us, None, manifest.locked,
                             manifest.updated_at_us))
    for tag in manifest.tags:
        result.add("tag_links", (name, tag.name, manifest.digest, tag.updated_at_us, tag.locked))
