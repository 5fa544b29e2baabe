"""Snapshots in an object store: `-o s3://BUCKET/PREFIX` (crawl, merge), and every command
reading `s3://BUCKET/PREFIX` as SNAPSHOT.

S3 has no rename, so a snapshot cannot appear at once the way a directory is renamed into
place (regstat.crawl.publish). Instead it is written on local disk first, then uploaded with
`snapshot.json` last: a prefix without `snapshot.json` is a snapshot still being uploaded (or
one whose upload died), and readers refuse it. Replacing one (`--force`) deletes its
`snapshot.json` first, so no reader takes the old tables for the new.

A reader downloads the snapshot into a temporary directory, removed when the process exits.
The endpoint is `--endpoint-url` where the command has it, else AWS_ENDPOINT_URL (boto3's
own), and credentials boto3's chain, as for an S3 source.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import re
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import OutputExistsError, OutputRefusedError, SnapshotError

SCHEME = "s3://"
_URL = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://")
METADATA = "snapshot.json"
DELETE_BATCH = 1000  # keys per DeleteObjects request: S3's limit


def is_object_url(text: str) -> bool:
    return text.startswith(SCHEME)


def is_url(text: str) -> bool:
    """Whether `text` is a URL (SCHEME://...), not a path: s3:// or one only Spark reads."""
    return bool(_URL.match(text))


@dataclass(frozen=True)
class ObjectPrefix:
    """s3://BUCKET/PREFIX: a snapshot's keys are PREFIX/snapshot.json, PREFIX/TABLE/part-*.parquet."""

    bucket: str
    prefix: str

    @classmethod
    def parse(cls, url: str) -> ObjectPrefix:
        bucket, _, prefix = url[len(SCHEME):].partition("/")
        prefix = prefix.strip("/")
        if not bucket or not prefix or "@" in bucket:
            raise OutputRefusedError(f"{url}: use s3://BUCKET/PREFIX (credentials from the AWS environment)")
        return cls(bucket, prefix)

    def __str__(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}"

    def key(self, relative: str) -> str:
        return f"{self.prefix}/{relative}"


def _client(endpoint_url: str | None) -> Any:
    import boto3  # imported here: commands that never meet s3:// need not load boto3
    import botocore.config

    endpoint = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
    # Custom endpoints (MinIO, Ceph, moto) rarely serve virtual-hosted buckets.
    config = botocore.config.Config(s3={"addressing_style": "path"}) if endpoint else None
    return boto3.session.Session().client("s3", endpoint_url=endpoint, config=config)


def _keys(client: Any, where: ObjectPrefix) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=where.bucket, Prefix=where.prefix + "/"):
        keys += [obj["Key"] for obj in page.get("Contents", [])]
    return keys


def _failure(where: ObjectPrefix, error: Exception) -> str:
    response = getattr(error, "response", None) or {}
    code = response.get("Error", {}).get("Code")
    return f"{where}: {code or type(error).__name__}: {response.get('Error', {}).get('Message') or error}"


def check_upload_target(url: str, *, endpoint_url: str | None = None, force: bool = False) -> None:
    """Refuse, before any work, a prefix that holds anything (unless `force`) or cannot be listed."""
    where = ObjectPrefix.parse(url)
    try:
        keys = _keys(_client(endpoint_url), where)
    except Exception as e:  # botocore's errors: no bucket, denied, unreachable
        raise OutputRefusedError(f"cannot write {_failure(where, e)}") from None
    if keys and not force:
        what = "a snapshot" if where.key(METADATA) in keys else f"{len(keys)} objects (no snapshot.json)"
        raise OutputExistsError(f"{where} holds {what}; --force replaces it")


def upload_snapshot(directory: Path, url: str, *, endpoint_url: str | None = None, force: bool = False) -> None:
    """Upload the finished snapshot `directory` to `url`, `snapshot.json` last."""
    where = ObjectPrefix.parse(url)
    check_upload_target(url, endpoint_url=endpoint_url, force=force)
    client = _client(endpoint_url)
    try:
        old = _keys(client, where)
        metadata = where.key(METADATA)
        if metadata in old:  # first: from here on no reader takes the prefix for a snapshot
            client.delete_object(Bucket=where.bucket, Key=metadata)
        stale = [k for k in old if k != metadata]
        for i in range(0, len(stale), DELETE_BATCH):
            batch = [{"Key": k} for k in stale[i:i + DELETE_BATCH]]
            client.delete_objects(Bucket=where.bucket, Delete={"Objects": batch, "Quiet": True})
        files = sorted(p for p in directory.rglob("*") if p.is_file() and p.name != METADATA)
        for path in [*files, directory / METADATA]:
            client.upload_file(str(path), where.bucket, where.key(path.relative_to(directory).as_posix()))
    except Exception as e:
        raise OutputRefusedError(f"upload failed, no snapshot at {_failure(where, e)}") from None


def download_snapshot(url: str, *, endpoint_url: str | None = None) -> Path:
    """A local copy of the snapshot at `url`, in a directory removed when this process exits."""
    where = ObjectPrefix.parse(url)
    client = _client(endpoint_url)
    try:
        keys = _keys(client, where)
    except Exception as e:
        raise SnapshotError(f"cannot read {_failure(where, e)}") from None
    if where.key(METADATA) not in keys:
        raise SnapshotError(f"{where}: no snapshot.json there: not a snapshot, or one still being uploaded")
    directory = _scratch() / where.prefix.rsplit("/", 1)[-1]
    try:
        for key in keys:
            relative = key[len(where.prefix) + 1:]
            if not relative or relative.startswith("/") or ".." in relative.split("/"):
                continue  # not a snapshot's file: never written outside the copy
            target = directory / relative
            target.parent.mkdir(parents=True, exist_ok=True)
            client.download_file(where.bucket, key, str(target))
    except Exception as e:
        raise SnapshotError(f"cannot read {_failure(where, e)}") from None
    return directory


def _scratch() -> Path:
    directory = Path(tempfile.mkdtemp(prefix="regstat-s3-"))
    atexit.register(shutil.rmtree, directory, True)
    return directory


def remove_staging(directory: Path) -> None:
    """Remove what local_staging gave, once uploaded (or failed to be)."""
    shutil.rmtree(directory, ignore_errors=True)
    try:
        directory.parent.rmdir()
    except OSError:
        pass  # another crawl to the same URL is writing there


def local_staging(url: str) -> Path:
    """Where a crawl or merge to `url` writes before uploading: the same path for the same
    URL, so that `crawl --resume` finds the interrupted crawl's directory again."""
    name = hashlib.sha256(url.encode()).hexdigest()[:16]
    parent = Path(tempfile.gettempdir()) / f"regstat-upload-{name}"
    parent.mkdir(mode=0o700, exist_ok=True)
    return parent / ObjectPrefix.parse(url).prefix.rsplit("/", 1)[-1]
