"""A storage tree in an S3 bucket, as the registry's `s3` storage driver writes it.

Credentials come from boto3's standard chain (environment, profiles, instance roles); the
endpoint from `--endpoint-url`, else `AWS_ENDPOINT_URL`, which boto3 reads itself. Listing is
always by prefix, and the caller splits large ones (`StartAfter` ranges, one prefix per
directory): a listing is one sequential chain of pages.

Faults: botocore retries errors and throttling (standard mode, `DEFAULT_MAX_ATTEMPTS` attempts
unless `AWS_MAX_ATTEMPTS` or the profile says otherwise). It does not retry what goes wrong
after a response has started: a body cut short or reset while it is read, or a listing page
that parses but does not add up (`KeyCount` against its entries, keys out of order or outside
the prefix, a truncated page without a continuation token). Those are retried here,
`ATTEMPTS` times; what still fails becomes an `OSError`, which the crawl records. A listing
is never returned shorter than the bucket's.

Object reads and listings are signed and sent by s3_get.py on the client's HTTP session (a
third of botocore's CPU per request); what is not a success there goes through the client,
so the retries above apply to it as they always did.
"""

from __future__ import annotations

import http.client
import os
import random
import time
from collections.abc import Callable, Generator, Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from functools import partial
from itertools import pairwise
from typing import Any
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions
import botocore.parsers
import botocore.session
import botocore.utils
import urllib3.exceptions

from ...errors import BadAnswer, SourceError
from ...snapshot.info import SourceInfo
from .s3_get import SignedRequests, check_range
from .storage import LAYOUT_ROOT, Entry

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}
DEFAULT_MAX_ATTEMPTS = 8  # botocore's, per request
ATTEMPTS = 4  # ours, for what botocore does not retry
_BACKOFF_BASE = 0.1  # seconds; doubled per attempt, with full jitter
_BACKOFF_MAX = 2.0
DELETE_BATCH = 1000  # keys per DeleteObjects request: S3's limit


# What a retry here may cure: what goes wrong after a response has started (botocore retries
# what goes wrong before), unparseable answers, and answers that do not add up. Not
# ClientError (S3 answered, and botocore has retried what its policy allows), nor connection
# failures botocore has already retried.
_RETRY = (
    BadAnswer,
    botocore.exceptions.IncompleteReadError,
    botocore.exceptions.ResponseStreamingError,
    botocore.exceptions.ReadTimeoutError,
    botocore.parsers.ResponseParserError,
    urllib3.exceptions.HTTPError,
    http.client.HTTPException,
    ConnectionError,
    TimeoutError,
)
# Everything a request can fail with besides ClientError and our own OSErrors.
_FAILURES = (*_RETRY, botocore.exceptions.BotoCoreError)


class S3Storage:
    driver = "s3"
    processes = False  # every request waits on the network: threads, many in flight
    default_concurrency = 32

    def __init__(self, source: str, *, endpoint_url: str | None = None, max_connections: int | None = None) -> None:
        parts = urlsplit(source)
        if "@" in parts.netloc:
            # Never echo what looks like a key pair back into logs.
            raise SourceError("credentials do not belong in SOURCE: use the AWS environment or profile")
        if not parts.netloc:
            raise SourceError(f"{source}: no bucket; use s3://BUCKET[/PREFIX]")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.location = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        # boto3 reads these itself, but the snapshot should record the endpoint and custom
        # endpoints want path-style addressing, so resolve them here.
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._base = "/".join(p for p in (self.prefix, LAYOUT_ROOT) if p) + "/"
        # A botocore session of our own: its config store says whether the environment or the
        # profile sets max_attempts (or the retry mode), which must then win over our default.
        core = botocore.session.Session()
        # A listing page's 1,000 LastModified times, parsed by dateutil, cost more than the
        # request: S3 writes ISO 8601, which datetime reads for a fraction of that.
        core.get_component("response_parser_factory").set_parser_defaults(timestamp_parser=_timestamp)
        attempts = core.get_config_variable("max_attempts") or DEFAULT_MAX_ATTEMPTS
        config = botocore.config.Config(
            max_pool_connections=max(10, max_connections or self.default_concurrency),
            retries={"total_max_attempts": int(attempts)},  # mode: AWS_RETRY_MODE, else standard
            # Custom endpoints (MinIO, Ceph, moto) rarely serve virtual-hosted buckets.
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        session = boto3.session.Session(botocore_session=core)
        self._client = session.client("s3", endpoint_url=self.endpoint_url, config=config)
        self._readers = ThreadPoolExecutor(max_connections or self.default_concurrency, thread_name_prefix="s3-read")
        # Object reads go as the check's listing went (s3_get.py): watch what botocore sends.
        sent: dict[str, Any] = {}
        self._signed: SignedRequests | None = None  # until the check has been
        events = self._client.meta.events
        events.register("before-send.s3.ListObjectsV2", partial(_remember, sent), unique_id="regstat-learn")
        try:
            self._check()
        finally:
            events.unregister("before-send.s3.ListObjectsV2", unique_id="regstat-learn")
        self._signed = SignedRequests.learn(sent, core.get_credentials(), self._client._endpoint.http_session,
                                      _timestamp)

    def describe(self) -> SourceInfo:
        return SourceInfo(kind="storage-layout", driver=self.driver, location=self.location,
                          endpoint_url=self.endpoint_url or None)

    def _check(self) -> None:
        try:
            response = _retrying(lambda: self._list_page(self._base, None, None, "", max_keys=1))
        except botocore.exceptions.NoCredentialsError:
            raise SourceError(f"{self.location}: no AWS credentials found") from None
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise SourceError(f"{self.location}: {code or 'error'}: {_message(e)}") from None
        except _FAILURES as e:
            raise SourceError(f"{self.location}: {_describe(e)}") from None
        if response.get("KeyCount", 0) == 0:
            raise SourceError(
                f"{self.location}: no {LAYOUT_ROOT} under it; give the bucket and the "
                "registry's `rootdirectory` as the prefix"
            )

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]:
        key_prefix = self._base + prefix.strip("/") + "/"
        directories: list[str] = []
        files: list[Entry] = []
        for page in self._pages(key_prefix, delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                directories.append(common["Prefix"][len(key_prefix) :].rstrip("/"))
            files.extend(self._entry(obj) for obj in page.get("Contents", []))
        return sorted(directories), files

    def walk(
        self, prefix: str, skip: Callable[[str], bool] | None = None, leaf: Callable[[str], str | None] | None = None
    ) -> Iterator[Entry]:
        for page in self.walk_pages(prefix):
            yield from page

    def walk_pages(self, prefix: str, after: str | None = None) -> Generator[list[Entry], None, None]:
        """`walk`, a listing page at a time, from the first path past `after`: what one page
        holds was listed at one moment, what two pages hold may straddle a change."""
        key_prefix = self._base + prefix.strip("/") + "/"
        start = self._base + after if after else ""
        for page in self._pages(key_prefix, start_after=start):
            yield [self._entry(obj) for obj in page.get("Contents", [])]

    def list_page(self, prefix: str, after: str = "") -> tuple[list[Entry], bool]:
        """The first page of `walk(prefix)` (past the path `after`), and whether more follow."""
        key_prefix = self._base + prefix.strip("/") + "/"
        page = next(self._pages(key_prefix, start_after=self._base + after if after else ""))
        return [self._entry(obj) for obj in page.get("Contents", [])], bool(page.get("IsTruncated"))

    def _entry(self, obj: dict) -> Entry:
        modified = obj["LastModified"]
        modified_us = int(modified.timestamp()) * 1_000_000 + modified.microsecond
        return Entry(obj["Key"][len(self._base) :], obj["Size"], modified_us)

    def read_many(self, paths: list[str], limit: int) -> dict[str, bytes | OSError]:
        def read(path: str) -> bytes | OSError:
            try:
                return self._read(path, limit)
            except OSError as e:
                return e

        return dict(zip(paths, self._readers.map(read, paths), strict=True))

    def _read(self, path: str, limit: int) -> bytes:
        try:
            return _retrying(lambda: self._read_once(path, limit))
        except _FAILURES as e:
            raise OSError(f"{_describe(e)} (after {ATTEMPTS} attempts)") from None

    def _read_once(self, path: str, limit: int) -> bytes:
        key = self._base + path
        if self._signed is not None:
            try:
                data = self._signed.get(key, limit)
            except FileNotFoundError:
                raise FileNotFoundError(path) from None
            if data is not None:
                return data
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                raise FileNotFoundError(path) from None
            if code == "InvalidRange":  # zero-length object
                return b""
            raise OSError(f"{code}: {_message(e)}") from None
        with response["Body"] as body:
            data = body.read(limit) if "ContentRange" not in response else body.read()
        check_range(response.get("ContentRange"), len(data), limit)
        return data

    def remove(self, paths: list[str], directories: list[str]) -> dict[str, OSError]:
        """Delete these files (apply-gc), DELETE_BATCH keys per DeleteObjects request; return
        the ones that could not be deleted. A key already absent counts as deleted, as S3 says.
        `directories` (the filesystem's to prune) are nothing in S3."""
        failed: dict[str, OSError] = {}
        for start in range(0, len(paths), DELETE_BATCH):
            batch = paths[start:start + DELETE_BATCH]
            objects = [{"Key": self._base + path} for path in batch]
            try:
                answer = _retrying(partial(self._client.delete_objects, Bucket=self.bucket,
                                           Delete={"Objects": objects, "Quiet": True}))
            except botocore.exceptions.ClientError as e:
                code = e.response.get("Error", {}).get("Code", "")
                failed.update({path: OSError(f"{code}: {_message(e)}") for path in batch})
                continue
            except _FAILURES as e:
                failed.update({path: OSError(f"{_describe(e)} (after {ATTEMPTS} attempts)") for path in batch})
                continue
            for error in answer.get("Errors", []):
                path = error.get("Key", "")[len(self._base):]
                failed[path] = OSError(f"{error.get('Code', 'error')}: {error.get('Message', '')}")
        return failed

    def _pages(self, prefix: str, delimiter: str | None = None, start_after: str = "") -> Iterator[dict]:
        """ListObjectsV2 pages under `prefix` (past `start_after`), each checked; a page that
        fails or does not add up after `ATTEMPTS` tries raises OSError: the caller never sees
        a shorter listing."""
        token, after = None, start_after
        while True:
            try:
                page = _retrying(partial(self._list_page, prefix, delimiter, token, after))
            except botocore.exceptions.ClientError as e:
                raise OSError(f"listing {prefix}: {_message(e)}") from None
            except _FAILURES as e:
                raise OSError(f"listing {prefix}: {_describe(e)} (after {ATTEMPTS} attempts)") from None
            yield page
            if not page.get("IsTruncated"):
                return
            token, after = page["NextContinuationToken"], _last_name(page, after)

    def _list_page(self, prefix: str, delimiter: str | None, token: str | None, after: str,
                   max_keys: int | None = None) -> dict:
        kwargs: dict[str, Any] = {"Prefix": prefix}
        if delimiter:
            kwargs["Delimiter"] = delimiter
        if token:
            kwargs["ContinuationToken"] = token
        elif after:
            kwargs["StartAfter"] = after
        if max_keys:
            kwargs["MaxKeys"] = max_keys
        page = self._signed.list_objects_v2(**kwargs) if self._signed is not None else None
        if page is None:
            kwargs["Bucket"] = self.bucket
            page = self._client.list_objects_v2(**kwargs)
        problem = page_problem(page, prefix, after)
        if problem:
            raise BadAnswer(f"inconsistent listing page: {problem}")
        return page


def page_problem(page: dict, prefix: str, after: str) -> str | None:
    """Why a ListObjectsV2 page cannot be whole and right, or None.

    `after` is the greatest name the listing returned before this page: S3 lists in UTF-8
    binary order (which is code point order), so every name on a page must come after it.
    """
    keys = [obj["Key"] for obj in page.get("Contents", [])]
    prefixes = [common["Prefix"] for common in page.get("CommonPrefixes", [])]
    count = page.get("KeyCount")
    if count is not None and count != len(keys) + len(prefixes):
        return f"KeyCount is {count} but the page holds {len(keys) + len(prefixes)} entries"
    if page.get("IsTruncated") and not page.get("NextContinuationToken"):
        return "truncated page without a continuation token"
    for names in (keys, prefixes):
        if any(b <= a for a, b in pairwise(names)):
            return "names out of order"
        if names and names[0] <= after:
            return f"{names[0]!r} does not come after the previous page's {after!r}"
        stray = next((n for n in names if not n.startswith(prefix)), None)
        if stray is not None:
            return f"{stray!r} is outside the prefix {prefix!r}"
    return None


def _last_name(page: dict, after: str) -> str:
    names = [obj["Key"] for obj in page.get("Contents", [])]
    names += [common["Prefix"] for common in page.get("CommonPrefixes", [])]
    return max([after, *names])


def _remember(sent: dict[str, Any], request: Any, **_: Any) -> None:
    sent.update(url=request.url, headers=dict(request.headers))


def _timestamp(value: str) -> datetime:
    """An S3 time (`2026-12-07T15:26:01.000Z` in listings), as botocore's parser gives it."""
    try:
        moment = datetime.fromisoformat(value)
    except (TypeError, ValueError):
        moment = None
    if moment is None or moment.tzinfo is None:
        return botocore.utils.parse_timestamp(value)
    return moment


def _retrying(call: Callable[[], Any]) -> Any:
    """`call()`, retried on transient failures with exponential backoff and full jitter."""
    for attempt in range(ATTEMPTS):
        try:
            return call()
        except _RETRY:
            if attempt == ATTEMPTS - 1:
                raise
            time.sleep(random.uniform(0, min(_BACKOFF_MAX, _BACKOFF_BASE * 2**attempt)))
    raise AssertionError("unreachable")


def _describe(error: BaseException) -> str:
    return str(error) or type(error).__name__


def _message(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)
