"""Registry sources: where a crawl reads from. `open_source` picks one by SOURCE's form."""

from __future__ import annotations

from .base import CrawlOptions, Source


def open_source(source: str, options: CrawlOptions) -> Source:
    """Open SOURCE: a storage root (path, file://, s3://)."""
    from .storage import open_storage
    from .storage_jobs import StorageLayoutSource

    storage = open_storage(source, endpoint_url=options.endpoint_url, concurrency=options.concurrency)
    return StorageLayoutSource(storage, options)
