"""A registry's storage tree (distribution's layout under docker/registry/v2), on disk or in S3,
and the crawl's jobs over it. `open_storage` picks the backend by SOURCE's form."""

from __future__ import annotations

from .storage import FilesystemStorage, Storage


def open_storage(source: str, *, endpoint_url: str | None = None, concurrency: int | None = None) -> Storage:
    """Open SOURCE: a directory, `file://PATH` or `s3://bucket[/prefix]`."""
    if source.startswith("s3://"):
        from .s3 import S3Storage  # here: boto3 loads only for s3://

        return S3Storage(source, endpoint_url=endpoint_url, max_connections=concurrency)
    if source.startswith("file://"):
        source = source[len("file://") :]
    return FilesystemStorage(source)
