"""Which Target a plan's snapshot source opens: OPENERS, keyed by the source's kind (`source.kind`
in snapshot.json), and the SOURCE argument a fresh crawl of it takes.

Each opener opens the registry as `crawl` opens it (the same options and credentials, through
the source's own client) and checks that it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..crawl import CrawlOptions
from ..errors import SourceError
from ..snapshot.info import SourceInfo
from ..sources.acr.source import open_acr
from ..sources.ecr import open_ecr
from ..sources.oci_layout import PREFIX, open_oci_layout
from ..sources.registry_api.source import open_distribution_api
from .acr import AcrTarget
from .ecr import EcrTarget
from .oci_layout import OciLayoutTarget
from .registry_api import RegistryApiTarget
from .storage_tree import open_storage_tree
from .target import Target


def open_registry_api(source: SourceInfo, options: CrawlOptions) -> Target:
    return RegistryApiTarget(open_distribution_api(source_argument(source), options).client)


def open_acr_target(source: SourceInfo, options: CrawlOptions) -> Target:
    return AcrTarget(open_acr(source_argument(source), options).client)


def open_ecr_target(source: SourceInfo, options: CrawlOptions) -> Target:
    return EcrTarget(open_ecr(source_argument(source), crawl_options(source, options)).api)


def open_oci_layout_target(source: SourceInfo, options: CrawlOptions) -> Target:
    layout = open_oci_layout(source_argument(source), options)  # checks it is still a layout
    return OciLayoutTarget(layout.location)


# Sources whose SOURCE argument is their location with a scheme (snapshot.json keeps it without).
_PREFIXES = {"oci-layout": PREFIX, "acr": "acr://"}

OPENERS: dict[str, Callable[[SourceInfo, CrawlOptions], Target]] = {
    "storage-layout": open_storage_tree,
    "distribution-api": open_registry_api,
    "ecr": open_ecr_target,
    "acr": open_acr_target,
    "oci-layout": open_oci_layout_target,
}


def open_target(source: SourceInfo, options: CrawlOptions) -> Target:
    opener = OPENERS.get(source.kind)
    if opener is None:
        raise SourceError(f"apply-gc cannot yet delete from a {source.kind} source ({source.location})")
    return opener(source, options)


def source_argument(source: SourceInfo) -> str:
    """SOURCE as `regstat crawl` takes it, for the fresh crawls that re-verify the plan."""
    if not source.location:
        raise SourceError(f"the plan's snapshot names no location for its {source.kind} source")
    return _PREFIXES.get(source.kind, "") + source.location


def crawl_options(source: SourceInfo, options: CrawlOptions) -> CrawlOptions:
    """`options` with what the plan's source recorded filling what they leave unset (the S3 or
    ECR endpoint, the ECR registry, the OCI layout's repository name)."""
    return replace(options, endpoint_url=options.endpoint_url or source.endpoint_url,
                   registry_id=options.registry_id or source.registry_id, name=options.name or source.repository)
