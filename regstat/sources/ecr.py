"""AWS ECR as a source, through the ECR API (boto3): SOURCE `ecr://REGION`.

ECR keeps every image of a repository, tagged or not, as an image record: DescribeImages lists
them all (digest, tags, push time, last recorded pull time) and BatchGetImage returns their
manifests, so this source sees untagged manifests, index children and referrers, and every
descriptor; it never sees blobs themselves (ECR frees them on its own).

Credentials come from boto3's standard chain (environment, `AWS_PROFILE` and the config files,
SSO, instance and container roles); the registry is the credentials' account unless
`--registry-id` names another. The endpoint is `--endpoint-url`, else `AWS_ENDPOINT_URL_ECR`,
else `AWS_ENDPOINT_URL`, resolved here so that the snapshot records it. Throttling and
transient failures are retried by botocore (standard mode unless `AWS_RETRY_MODE` or the
profile says otherwise, `DEFAULT_MAX_ATTEMPTS` attempts unless `AWS_MAX_ATTEMPTS` or the
profile's `max_attempts` does); what still fails is recorded against its repository.

Jobs: `plan_ecr` lists repositories; `list_repository` lists one repository's images;
`fetch_images` reads up to 100 of them with one BatchGetImage and returns their rows, so a
large repository is read by several threads and memory stays bounded by the batch.

An incremental crawl (`previous`) asks BatchGetImage for no manifest the previous snapshot
parsed that this crawl's DescribeImages lists as served: ECR names each image by the digest
of the manifest it stores, so the listing confirms the body, and its facts are reused. Tags,
times and statuses always come from the fresh listing.
"""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import botocore.session

from .. import __version__
from ..errors import CrawlError, ManifestError, SourceError
from ..model import MediaType, digest_of, is_digest, parse_manifest
from ..shards import Selection
from ..snapshot.info import Capabilities, SourceInfo
from ..snapshot.previous import PreviousManifests
from .base import (
    CrawlOptions, Job, JobResult, ManifestResult, add_unselected, index_children, record_missing_children,
)

DEFAULT_CONCURRENCY = 8
# Total attempts per call, the first included. Throttled calls back off rand × 2^i s (at most
# 20 s), so 8 ride out about half a minute of throttling, and a repository that keeps failing
# is given up on (and recorded) within about a minute.
DEFAULT_MAX_ATTEMPTS = 8
PAGE_SIZE = 1000  # the most DescribeRepositories and DescribeImages return per call
BATCH_SIZE = 100  # the most image ids BatchGetImage takes

# Every manifest type, so that ECR returns each manifest as it was pushed: it converts a
# manifest to an accepted type otherwise (schema 2 to schema 1), which would change its digest.
ACCEPTED_MEDIA_TYPES = (
    MediaType.DOCKER_MANIFEST,
    MediaType.DOCKER_MANIFEST_LIST,
    MediaType.OCI_MANIFEST,
    MediaType.OCI_INDEX,
    MediaType.DOCKER_SCHEMA1_SIGNED,
    MediaType.DOCKER_SCHEMA1,
)

CAPABILITIES = Capabilities(
    untagged_manifests=True,
    unreferenced_blobs=False,
    stored_blob_sizes=False,
    push_times="exact",  # imagePushedAt
    pull_times="exact",  # lastRecordedPullTime, which ECR refreshes at least once a day
    locks=None,  # tag immutability is per repository, and does not stop deletion
)

_REGISTRY_ID = re.compile(r"[0-9]{12}")  # an AWS account id
_REGION = re.compile(r"[a-z0-9]+(-[a-z0-9]+)*")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
ECR_ERRORS = (botocore.exceptions.ClientError, botocore.exceptions.BotoCoreError)
_EVERY_IMAGE = {"tagStatus": "ANY", "imageStatus": "ANY"}
_SERVED = (None, "ACTIVE")  # image statuses whose manifest BatchGetImage returns
_NOT_FOUND = "ImageNotFound"


@dataclass(frozen=True)
class EcrApi:
    """A boto3 ECR client and the registry it reads; every job shares it (boto3 clients are
    thread-safe, and one client keeps one connection pool)."""

    client: Any
    location: str  # ecr://REGION
    registry_id: str | None  # --registry-id; None: the credentials' account

    @property
    def registry(self) -> dict[str, str]:
        """The `registryId` argument of every call: only when one was chosen."""
        return {"registryId": self.registry_id} if self.registry_id else {}

    def pages(self, operation: str, key: str, result: JobResult, **kwargs: Any) -> Iterator[dict]:
        """The items under `key` of every page of a paginated call; one item per call in
        `result.items`."""
        paginator = self.client.get_paginator(operation)
        for page in paginator.paginate(**self.registry, **kwargs, PaginationConfig={"PageSize": PAGE_SIZE}):
            result.items += 1
            yield from page.get(key) or []


@dataclass(frozen=True, slots=True)
class ListedImage:
    """One image as DescribeImages lists it: a manifest present in the repository."""

    digest: str
    tags: tuple[str, ...]
    pushed_at_us: int | None
    last_pulled_at_us: int | None
    status: str | None  # imageStatus: ACTIVE, ARCHIVED (no manifest served) or ACTIVATING


class EcrSource:
    """The repositories of one ECR registry in one region."""

    processes = False  # every job waits on the network: threads
    default_concurrency = DEFAULT_CONCURRENCY

    def __init__(
        self, api: EcrApi, registry_id: str | None, endpoint_url: str | None, selection: Selection
    ) -> None:
        self.api = api
        self.registry_id = registry_id
        self.endpoint_url = endpoint_url
        self.selection = selection
        self.previous: PreviousManifests | None = None  # set by an incremental crawl

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="ecr", location=self.api.location, registry_id=self.registry_id,
                          endpoint_url=self.endpoint_url or None)

    def capabilities(self, partial: bool) -> Capabilities:
        return CAPABILITIES

    def first_jobs(self) -> list[Job]:
        return [(plan_ecr, (self.api, self.selection, self.previous))]

    def manifest_path(self, repository: str, digest: str) -> str:
        return image_path(repository, digest)

    def fetch_job(self, digests: list[str]) -> Job:
        # ECR serves a manifest only within a repository, so the repository's own jobs read
        # them (JobResult.parsed) and never name digests for the driver to fetch.
        raise NotImplementedError("ECR jobs read their manifests themselves")


def open_ecr(source: str, options: CrawlOptions) -> EcrSource:
    """Open `ecr://REGION`: build the client and check, with one call, that the registry
    answers and the credentials are accepted; raise SourceError otherwise."""
    region = _region(source)
    location = f"ecr://{region}"
    registry_id = options.registry_id
    if registry_id is not None and not _REGISTRY_ID.fullmatch(registry_id):
        raise SourceError(f"{location}: --registry-id {registry_id!r} is not a 12-digit AWS account id")
    endpoint_url = (
        options.endpoint_url or os.environ.get("AWS_ENDPOINT_URL_ECR") or os.environ.get("AWS_ENDPOINT_URL") or None
    )
    try:
        client = _client(region, endpoint_url, options.concurrency or DEFAULT_CONCURRENCY)
    except botocore.exceptions.BotoCoreError as e:  # unknown profile, malformed config or region
        raise SourceError(f"{location}: {e}") from None
    api = EcrApi(client, location, registry_id)
    try:
        response = client.describe_repositories(maxResults=1, **api.registry)
    except botocore.exceptions.NoCredentialsError:
        raise SourceError(f"{location}: no AWS credentials found") from None
    except ECR_ERRORS as e:
        raise SourceError(f"{location}: {describe_error(e)}") from None
    if registry_id is None:
        # The credentials' account, as ECR reports it; unknown when it has no repositories.
        first = (response.get("repositories") or [{}])[0]
        registry_id = first.get("registryId")
    return EcrSource(api, registry_id, endpoint_url, Selection(options.repositories, options.shard))


def _region(source: str) -> str:
    parts = urlsplit(source)
    region = parts.netloc
    if not _REGION.fullmatch(region) or parts.path.strip("/") or parts.query or parts.fragment:
        raise SourceError(f"{source}: use ecr://REGION, e.g. ecr://us-east-1 (--repository chooses repositories)")
    return region


def _client(region: str, endpoint_url: str | None, concurrency: int) -> Any:
    # A botocore session of our own: its config store says whether the environment or the
    # profile sets max_attempts, which must then win over our default.
    core = botocore.session.Session()
    attempts = core.get_config_variable("max_attempts") or DEFAULT_MAX_ATTEMPTS
    config = botocore.config.Config(
        max_pool_connections=max(10, concurrency),
        retries={"total_max_attempts": int(attempts)},  # mode: AWS_RETRY_MODE, else standard
        user_agent_extra=f"regstat/{__version__}",
    )
    session = boto3.session.Session(botocore_session=core, region_name=region)
    return session.client("ecr", endpoint_url=endpoint_url, config=config)


# --- jobs ---------------------------------------------------------------------------------


def plan_ecr(api: EcrApi, selection: Selection, previous: PreviousManifests | None = None) -> JobResult:
    """List the registry's repositories: one `list_repository` job per selected one."""
    result = JobResult()
    names = []
    try:
        for repository in api.pages("describe_repositories", "repositories", result):
            names.append(repository["repositoryName"])
    except ECR_ERRORS as e:
        # Not against a repository: the whole snapshot is incomplete (some may be missing).
        result.errors.append(CrawlError(None, api.location, "read_error", f"DescribeRepositories: {describe_error(e)}"))
    for name in sorted(set(names)):
        if selection.selects(name):
            result.jobs.append((list_repository, (api, name, previous)))
        else:
            result.unselected = add_unselected(result.unselected, 1)
    return result


def list_repository(api: EcrApi, name: str, previous: PreviousManifests | None = None) -> JobResult:
    """List one repository's images, tagged and untagged, then read them in batches."""
    result = JobResult(repositories=[name])
    images: dict[str, ListedImage] = {}
    tag_owner: dict[str, str] = {}
    complete = True
    try:
        # imageStatus ANY: archived images are still present (and may be an index whose
        # children would otherwise look orphaned); ECR lists only active ones by default.
        details = api.pages(
            "describe_images", "imageDetails", result, repositoryName=name, filter=_EVERY_IMAGE
        )
        for detail in details:
            _add_listed(name, detail, images, tag_owner, result)
    except ECR_ERRORS as e:
        complete = False
        message = f"DescribeImages: {describe_error(e)}"
        if error_code(e) == "RepositoryNotFoundException":
            message = f"the repository vanished during the crawl ({message})"
        result.errors.append(CrawlError(name, name, "read_error", message))
    # Children are checked against the whole listing, which only a complete one gives.
    listed = frozenset(images) if complete else None
    ordered = [images[digest] for digest in sorted(images)]
    for start in range(0, len(ordered), BATCH_SIZE):
        batch = tuple(ordered[start : start + BATCH_SIZE])
        result.jobs.append((fetch_images, (api, name, batch, listed, previous)))
    return result


def _add_listed(
    name: str, detail: dict, images: dict[str, ListedImage], tag_owner: dict[str, str], result: JobResult
) -> None:
    digest = detail.get("imageDigest")
    if not isinstance(digest, str) or not is_digest(digest):
        message = f"DescribeImages gave a malformed digest {digest!r}"
        result.errors.append(CrawlError(name, name, "read_error", message))
        return
    tags = []
    for tag in detail.get("imageTags") or []:
        owner = tag_owner.setdefault(tag, digest)
        if owner == digest:
            tags.append(tag)
        else:  # pages taken while the tag moved: keep the first, and say the listing is torn
            message = f"tag {tag} listed on {owner} and on {digest}; it moved during the crawl"
            result.errors.append(CrawlError(name, f"{name}:{tag}", "read_error", message))
    earlier = images.get(digest)
    if earlier is not None:  # listed twice (pages shifted): one image, all its tags
        tags = sorted(set(earlier.tags) | set(tags))
    images[digest] = ListedImage(
        digest,
        tuple(sorted(tags)),
        _micros(detail.get("imagePushedAt")),
        _micros(detail.get("lastRecordedPullTime")),
        detail.get("imageStatus"),
    )


def fetch_images(
    api: EcrApi, name: str, images: tuple[ListedImage, ...], listed: frozenset[str] | None,
    previous: PreviousManifests | None = None,
) -> JobResult:
    """Read up to 100 listed images with one BatchGetImage; return their rows and manifests.

    An image gone by now is dropped with an `image_vanished` error; one ECR fails to return
    (or archived, which it would not) is kept, as `unreadable`. `listed`: every digest of the
    repository, to check index children against (None when the listing was incomplete).
    A served image `previous` parsed is not read: its facts are reused (`result.reused`).
    """
    result = JobResult()
    # ECR serves no manifest of an archived image (nor of one being restored): present, but
    # what it references is unknown, which makes its repository incomplete.
    failures = {
        i.digest: f"the image is {i.status}: ECR serves its manifest once it is restored"
        for i in images
        if i.status not in _SERVED
    }
    reused = {
        i.digest for i in images
        if previous is not None and i.digest not in failures and previous.size(i.digest) is not None
    }
    readable = tuple(image for image in images if image.digest not in failures and image.digest not in reused)
    bodies: dict[str, str] = {}
    try:
        if readable:
            result.items += 1
            bodies, refused = _batch_get_image(api, name, readable)
            failures.update(refused)
    except ECR_ERRORS as e:
        if error_code(e) == "RepositoryNotFoundException":
            result.errors.append(CrawlError(name, name, "read_error", "the repository vanished during the crawl"))
            return result
        failures.update((image.digest, f"BatchGetImage: {describe_error(e)}") for image in readable)
    for image in images:
        where = image_path(name, image.digest)
        if previous is not None and image.digest in reused:
            _rows(name, image, result)
            result.reused.append(image.digest)
            record_missing_children(result, name, where, previous.index_children(image.digest), listed)
            continue
        body, failure = bodies.get(image.digest), failures.get(image.digest)
        if body is None and failure in (None, _NOT_FOUND):
            # Listed, then deleted before this read (or left out without a word: it is not
            # there either). Its rows go: the snapshot holds what the registry holds.
            tags = f" (tags: {', '.join(image.tags)})" if image.tags else ""
            message = f"listed, then gone before its manifest was read{tags}"
            result.errors.append(CrawlError(name, where, "image_vanished", message))
            continue
        _rows(name, image, result)
        if body is None:
            result.parsed.append((image.digest, "unreadable", failure or "BatchGetImage failed"))
            continue
        parsed = read_manifest(body.encode("utf-8"), image.digest)
        result.parsed.append(parsed)
        record_missing_children(result, name, where, index_children(parsed), listed)
    return result


def _rows(name: str, image: ListedImage, result: JobResult) -> None:
    """An image's revision and its tags, as the listing gives them."""
    result.add("revisions", (name, image.digest, image.pushed_at_us, image.last_pulled_at_us, None, None))
    for tag in image.tags:
        result.add("tag_links", (name, tag, image.digest, None, None))


def _batch_get_image(
    api: EcrApi, name: str, images: tuple[ListedImage, ...]
) -> tuple[dict[str, str], dict[str, str]]:
    """One BatchGetImage by digest: (digest -> manifest, digest -> failure). A failure is
    `_NOT_FOUND` for an image that is gone, else a message."""
    response = api.client.batch_get_image(
        repositoryName=name,
        imageIds=[{"imageDigest": image.digest} for image in images],
        acceptedMediaTypes=list(ACCEPTED_MEDIA_TYPES),
        **api.registry,
    )
    bodies = {}
    for image in response.get("images") or []:
        digest = (image.get("imageId") or {}).get("imageDigest")
        if digest and image.get("imageManifest") is not None:
            bodies[digest] = image["imageManifest"]
    failures = {}
    for failure in response.get("failures") or []:
        digest = (failure.get("imageId") or {}).get("imageDigest")
        code, reason = failure.get("failureCode") or "", failure.get("failureReason") or ""
        if digest:
            failures[digest] = _NOT_FOUND if code == _NOT_FOUND else f"BatchGetImage: {code}: {reason}"
    return bodies, failures


# --- manifests, times, errors ---------------------------------------------------------------


def image_path(repository: str, digest: str) -> str:
    """The `path` of errors about an image: `repository@digest`, as ECR names it."""
    return f"{repository}@{digest}"


def read_manifest(body: bytes, digest: str) -> ManifestResult:
    """Parse a manifest ECR returned for `digest`; failures come back as (digest, status, message)."""
    try:
        return parse_manifest(_digested_form(body, digest), digest)
    except ManifestError as e:
        return digest, e.status, str(e)


def _digested_form(body: bytes, digest: str) -> bytes:
    """The bytes `digest` covers: the body, except for a signed schema 1 manifest, whose
    digest (in ECR as in the registry) is its JWS payload's, without the signatures."""
    if digest_of(body, digest.partition(":")[0]) == digest:
        return body
    payload = _schema1_payload(body)
    if payload is not None and digest_of(payload, digest.partition(":")[0]) == digest:
        return payload
    return body  # parse_manifest reports the mismatch


def _schema1_payload(body: bytes) -> bytes | None:
    """libtrust's "pretty JWS": the body up to `formatLength`, then the decoded `formatTail`
    of the first signature's protected header. None when the body is not of that form."""
    try:
        protected = json.loads(body)["signatures"][0]["protected"]
        header = json.loads(_unbase64url(protected))
        length, tail = header["formatLength"], _unbase64url(header["formatTail"])
    except (ValueError, TypeError, KeyError, IndexError):
        return None
    if not isinstance(length, int) or not 0 < length <= len(body):
        return None
    return body[:length] + tail


def _unbase64url(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def _micros(moment: datetime | None) -> int | None:
    """Microseconds since the epoch, UTC (the staging tables' time form)."""
    if not isinstance(moment, datetime):
        return None
    if moment.tzinfo is None:  # botocore gives aware times; a naive one would be UTC
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) // timedelta(microseconds=1)


def error_code(error: Exception) -> str:
    if isinstance(error, botocore.exceptions.ClientError):
        return str(error.response.get("Error", {}).get("Code", ""))
    return ""


def describe_error(error: Exception) -> str:
    """One line: the error code and message, and how many retries were spent. botocore's
    messages carry no credentials (nor does anything else regstat records)."""
    if not isinstance(error, botocore.exceptions.ClientError):
        return str(error) or type(error).__name__
    message = str(error.response.get("Error", {}).get("Message", "")) or str(error)
    retries = error.response.get("ResponseMetadata", {}).get("RetryAttempts")
    after = f" (after {retries} {'retry' if retries == 1 else 'retries'})" if retries else ""
    return f"{error_code(error) or 'error'}: {message}{after}"
