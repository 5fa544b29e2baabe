"""Which Target a plan's snapshot source opens: OPENERS, keyed by the source's kind (`source.kind`
in snapshot.json), and the SOURCE argument a fresh crawl of it takes."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..crawl import CrawlOptions
from ..errors import SourceError
from ..snapshot.info import SourceInfo
from .storage_tree import open_storage_tree
from .target import Target

OPENERS: dict[str, Callable[[SourceInfo, CrawlOptions], Target]] = {
    "storage-layout": open_storage_tree,
}


def open_target(source: SourceInfo, options: CrawlOptions) -> Target:
    opener = OPENERS.get(source.kind)
    if opener is None:
        raise SourceError(f"apply-gc cannot yet delete from a {source.kind} source ({source.location})")
    return opener(source, options)


def source_argument(source: SourceInfo) -> str:
    """SOURCE as `regstat crawl` takes it, for the fresh crawls that re-verify the plan."""
    location = source.location or ""
    return f"oci:{location}" if source.kind == "oci-layout" else location


def crawl_options(source: SourceInfo, options: CrawlOptions) -> CrawlOptions:
    """`options` with what the plan's source recorded filling what they leave unset (the S3 or
    ECR endpoint, the ECR registry, the OCI layout's repository name)."""
    return replace(options, endpoint_url=options.endpoint_url or source.endpoint_url,
                   registry_id=options.registry_id or source.registry_id, name=options.name or source.repository)
