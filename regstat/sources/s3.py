"""A storage tree in an S3 bucket, as the registry's `s3` storage driver writes it.

Credentials come from boto3's standard chain (environment, profiles, instance roles); the
endpoint from `--endpoint-url`, else `AWS_ENDPOINT_URL`, which boto3 reads itself. Listing is
always by prefix (sharded by the caller): whole-bucket listings are slow on large buckets.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from typing import Callable, Iterator
from urllib.parse import urlsplit

import boto3
import botocore.config
import botocore.exceptions

from ..errors import SourceError
from .storage import LAYOUT_ROOT, Entry

_NOT_FOUND = {"NoSuchKey", "404", "NotFound"}


class S3Storage:
    driver = "s3"
    processes = False  # every request waits on the network: threads, many in flight
    default_concurrency = 32

    def __init__(self, source: str, *, endpoint_url: str | None = None, max_connections: int | None = None) -> None:
        parts = urlsplit(source)
        if not parts.netloc:
            raise SourceError(f"{source}: no bucket; use s3://BUCKET[/PREFIX]")
        self.bucket = parts.netloc
        self.prefix = parts.path.strip("/")
        self.location = f"s3://{self.bucket}" + (f"/{self.prefix}" if self.prefix else "")
        # boto3 reads these itself, but the snapshot should record the endpoint and custom
        # endpoints want path-style addressing, so resolve them here.
        self.endpoint_url = endpoint_url or os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        self._base = "/".join(p for p in (self.prefix, LAYOUT_ROOT) if p) + "/"
        config = botocore.config.Config(
            max_pool_connections=max(10, max_connections or self.default_concurrency),
            retries={"mode": "standard", "max_attempts": 8},
            # Custom endpoints (MinIO, Ceph, moto) rarely serve virtual-hosted buckets.
            s3={"addressing_style": "path"} if self.endpoint_url else None,
        )
        self._client = boto3.session.Session().client("s3", endpoint_url=self.endpoint_url, config=config)
        self._readers = ThreadPoolExecutor(max_connections or self.default_concurrency, thread_name_prefix="s3-read")
        self._check()

    def describe(self) -> dict[str, str]:
        description = {"kind": "storage-layout", "driver": self.driver, "location": self.location}
        if self.endpoint_url:
            description["endpoint_url"] = self.endpoint_url
        return description

    def _check(self) -> None:
        try:
            response = self._client.list_objects_v2(Bucket=self.bucket, Prefix=self._base, MaxKeys=1)
        except botocore.exceptions.NoCredentialsError:
            raise SourceError(f"{self.location}: no AWS credentials found") from None
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            raise SourceError(f"{self.location}: {code or 'error'}: {_message(e)}") from None
        except botocore.exceptions.BotoCoreError as e:
            raise SourceError(f"{self.location}: {e}") from None
        if response.get("KeyCount", 0) == 0:
            raise SourceError(
                f"{self.location}: no {LAYOUT_ROOT} under it; give the bucket and the "
                "registry's `rootdirectory` as the prefix"
            )

    def listdir(self, prefix: str) -> tuple[list[str], list[Entry]]:
        key_prefix = self._base + prefix.strip("/") + "/"
        directories, files = [], []
        for page in self._pages(Prefix=key_prefix, Delimiter="/"):
            for common in page.get("CommonPrefixes", []):
                directories.append(common["Prefix"][len(key_prefix) :].rstrip("/"))
            files.extend(self._entry(obj) for obj in page.get("Contents", []))
        return sorted(directories), files

    def walk(self, prefix: str, skip: Callable[[str], bool] | None = None) -> Iterator[Entry]:
        key_prefix = self._base + prefix.strip("/") + "/"
        for page in self._pages(Prefix=key_prefix):
            for obj in page.get("Contents", []):
                yield self._entry(obj)

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

        return dict(zip(paths, self._readers.map(read, paths)))

    def _read(self, path: str, limit: int) -> bytes:
        key = self._base + path
        try:
            response = self._client.get_object(Bucket=self.bucket, Key=key, Range=f"bytes=0-{limit - 1}")
            return response["Body"].read()
        except botocore.exceptions.ClientError as e:
            code = e.response.get("Error", {}).get("Code", "")
            if code in _NOT_FOUND:
                raise FileNotFoundError(path) from None
            if code == "InvalidRange":  # zero-length object
                return b""
            raise OSError(f"{code}: {_message(e)}") from None
        except botocore.exceptions.BotoCoreError as e:
            raise OSError(str(e)) from None

    def _pages(self, **kwargs: str) -> Iterator[dict]:
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            yield from paginator.paginate(Bucket=self.bucket, **kwargs)
        except botocore.exceptions.ClientError as e:
            raise OSError(f"listing {kwargs.get('Prefix')}: {_message(e)}") from None
        except botocore.exceptions.BotoCoreError as e:
            raise OSError(f"listing {kwargs.get('Prefix')}: {e}") from None


def _message(error: botocore.exceptions.ClientError) -> str:
    return str(error.response.get("Error", {}).get("Message", "")) or str(error)
