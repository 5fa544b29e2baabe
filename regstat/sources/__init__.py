"""Registry sources: where a crawl reads from. `open_source` picks one by SOURCE's form."""

from __future__ import annotations

from .base import CrawlOptions, Source
from .forms import unrecognised


def open_source(source: str, options: CrawlOptions) -> Source:
    """Open SOURCE by its form: a registry URL, acr://HOST, ecr://REGION, oci:PATH, or a storage root (a
    path, file://PATH or s3://); refuse any other SOURCE, or a path that does not exist, with
    the forms regstat reads (regstat.sources.forms)."""
    if source.startswith(("http://", "https://")):
        from .registry_api.source import open_distribution_api

        return open_distribution_api(source, options)
    if source.startswith("acr://"):
        from .acr.source import open_acr

        return open_acr(source, options)
    if source.startswith("ecr://"):
        from .ecr import open_ecr

        return open_ecr(source, options)
    if source.startswith("oci:"):
        from .oci_layout import open_oci_layout

        return open_oci_layout(source, options)
    refusal = unrecognised(source)
    if refusal is not None:
        raise refusal
    from .storage_tree import open_storage
    from .storage_tree.jobs import StorageLayoutSource

    storage = open_storage(source, endpoint_url=options.endpoint_url, concurrency=options.concurrency)
    return StorageLayoutSource(storage, options)
