"""The Target of each source kind (`SourceInfo.kind`): `OPENERS[kind](source, options)` opens
the registry a plan's snapshot was crawled from, as `crawl` opens it (the same options and
credentials), and checks that it answers."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

from ..errors import SourceError
from ..sources.base import CrawlOptions
from ..sources.ecr import open_ecr
from ..sources.oci_layout import PREFIX, open_oci_layout
from ..sources.registry_api.source import open_distribution_api
from ..snapshot.info import SourceInfo
from .ecr import EcrTarget
from .oci_layout import OciLayoutTarget
from .registry_api import RegistryApiTarget
from .target import Target

Opener = Callable[[SourceInfo, CrawlOptions], Target]


def _location(source: SourceInfo) -> str:
    if not source.location:
        raise SourceError(f"the plan's snapshot names no location for its {source.kind} source")
    return source.location


def open_registry_api(source: SourceInfo, options: CrawlOptions) -> Target:
    return RegistryApiTarget(open_distribution_api(_location(source), options).client)


def open_ecr_target(source: SourceInfo, options: CrawlOptions) -> Target:
    # The registry and endpoint the snapshot read, unless the options name them (the same ones:
    # apply-gc refuses others before opening).
    options = replace(options, registry_id=options.registry_id or source.registry_id,
                      endpoint_url=options.endpoint_url or source.endpoint_url)
    return EcrTarget(open_ecr(_location(source), options).api)


def open_oci_layout_target(source: SourceInfo, options: CrawlOptions) -> Target:
    layout = open_oci_layout(PREFIX + _location(source), options)  # checks it is still a layout
    return OciLayoutTarget(layout.location)


OPENERS: dict[str, Opener] = {
    "distribution-api": open_registry_api,
    "ecr": open_ecr_target,
    "oci-layout": open_oci_layout_target,
}
