#!/usr/bin/env python3
"""Write a large regstat snapshot directly: no registry, no storage tree, no crawl.

The snapshot looks like a complete crawl of a distribution storage layout
(docs/snapshot.md): all seven tables, sorted by their key columns like the crawler sorts
them, and a snapshot.json with a storage layout's capabilities. It is meant for timing
what reads snapshots (`regstat report`, `regstat sql`) at sizes no test registry reaches:

    python benchmarks/make_snapshot.py benchmarks/work/snap --descriptors 10000000 --seed 1

The shape aims at a real registry, like make_tree.py's but larger:

* Public base images (`library/...`, some built on others: python on debian), each
  released in several versions for two platforms, picked Zipf-like, so a few base layers
  are referenced by most images in most repositories. Teams may have their own base image
  (`TEAM/base`) on top of a public one, shared by the team's services.
* Teams of services; each service repository gets a log-normal number of pushes (mean
  `--pushes`). A push is one image (config, base layers, 1-5 application layers, the lower
  ones often kept from the previous push) or, in multi-platform repositories, an index with
  an amd64 and an arm64 child. So most blobs belong to one repository. One image in a
  hundred lists its top layer twice (`descriptors.repeated`), as some builders do.
* Several tags per repository: `latest` and branch tags move at every push, version tags
  stay (some are re-pushed, some repositories keep only their last few), so tags that
  moved leave untagged manifests, and untagged indexes leave orphaned children.
* Referrers (OCI 1.1 `subject`): signatures of every push in some repositories, SBOMs in
  others, signatures of the SBOMs, all with the shared empty config blob.
* Release repositories (`SERVICE/release`) holding copies of promoted version-tagged
  manifests: the same manifest digest in two repositories.
* Layer sizes log-normal, median ~4 MB and p90 ~60 MB; configs and manifests small.
* `blobs` holds every stored blob: manifests, configs, layers, plus unreferenced blobs
  (layers of failed pushes, linked into their repository, and a few linked nowhere);
  `repository_blobs` the layer links a push leaves; a few uploads in progress.

Deterministic: the same `--seed` and `--descriptors` give the same tables (snapshot.json's
id and times aside); a smaller `--descriptors` gives a prefix of a larger one's
repositories. Generation stops after the first team that brings the descriptors to at
least `--descriptors`.

Rows are built as columns (Python lists per column, turned into Arrow arrays) and staged
in the readers' form (snapshot.SCHEMAS: digests as text) in parts of 500,000 rows under
`.stage/` inside the pending snapshot, so memory stays bounded by one part per table plus
one team. Then the stored form (`digests` plus ids, docs/snapshot.md) comes from
regstat's own code, as a crawl's assembly makes it: `digest_ids.create` numbers the digests
in DuckDB (every digest the generator writes is a blob it stores, so the staged `blobs` are
the source; a check after encoding finds no digest left without its id), and
`digest_ids.encode_sql` turns each staged table into its stored rows, sorted by the table's
key, written in parts with `PendingSnapshot.table`. DuckDB runs with `--memory-limit`
(default 4GB) and spills into a temporary directory beside OUTPUT; the staged tables go
before the snapshot is published. A summary (parameters, counts, shape, seconds spent
generating and encoding) is written beside the snapshot as `OUTPUT.gen.json`.
"""

from __future__ import annotations

import argparse
import bisect
import collections
import hashlib
import itertools
import json
import math
import os
import random
import shutil
import sys
import time
import uuid
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
# Last, so that a regstat on PYTHONPATH (bench_report.py --commit) wins over this checkout.
sys.path.append(REPO_ROOT)

import duckdb  # noqa: E402
import pyarrow as pa  # noqa: E402
import pyarrow.parquet as pq  # noqa: E402

from regstat import __version__  # noqa: E402
from regstat.snapshot import digest_ids  # noqa: E402
from regstat.crawl.publish import PendingSnapshot, find_interrupted  # noqa: E402
from regstat.snapshot import (  # noqa: E402
    DIGEST_COLUMNS, ROWS_PER_PART, SCHEMA_VERSION, SCHEMAS, SORT_KEYS, PartWriter, SnapshotInfo, SourceInfo,
    new_snapshot_id, utc_now,
)
from regstat.sources.storage_tree.jobs import CAPABILITIES as STORAGE_CAPABILITIES  # noqa: E402

from make_tree import (  # noqa: E402  the same media types as the storage-tree generator
    DOCKER_CONFIG, DOCKER_LAYER, DOCKER_LIST, DOCKER_MANIFEST, OCI_CONFIG, OCI_INDEX, OCI_LAYER,
    OCI_LAYER_ZSTD, OCI_MANIFEST,
)

OCI_EMPTY = "application/vnd.oci.empty.v1+json"
# The OCI empty descriptor, `{}`: the config of every artifact below, one shared blob.
EMPTY_DIGEST = "sha256:" + hashlib.sha256(b"{}").hexdigest()
EMPTY_SIZE = 2

# manifest, index, config and layer media types of a repository's format
FORMATS = {
    "docker": (DOCKER_MANIFEST, DOCKER_LIST, DOCKER_CONFIG, DOCKER_LAYER),
    "oci": (OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER),
    "oci-zstd": (OCI_MANIFEST, OCI_INDEX, OCI_CONFIG, OCI_LAYER_ZSTD),
}
# referrer kinds: artifact type, layer media type, layer size (median, log-normal sigma)
ARTIFACTS = {
    "cosign": ("application/vnd.dev.cosign.artifact.sig.v1+json",
               "application/vnd.dev.cosign.simplesigning.v1+json", (300, 0.3)),
    "notation": ("application/vnd.cncf.notary.signature", "application/jose+json", (2000, 0.3)),
    "sbom": ("application/spdx+json", "application/spdx+json", (150_000, 1.2)),
}
PLATFORMS = ("linux/amd64", "linux/arm64/v8")

# Public base images in order of popularity (Zipf rank), each after its parent.
PUBLIC_BASES = (
    ("alpine", None), ("debian", None), ("ubuntu", None), ("python", "debian"),
    ("node", "debian"), ("golang", "debian"), ("nginx", "debian"),
    ("eclipse-temurin", "ubuntu"), ("busybox", None), ("redis", "debian"),
    ("postgres", "debian"), ("ruby", "debian"), ("php", "debian"), ("rust", "debian"),
    ("amazonlinux", None), ("openjdk", "debian"), ("centos", None), ("fedora", None),
    ("dotnet/runtime", "debian"), ("mysql", "debian"), ("httpd", "debian"),
    ("elixir", "debian"), ("haskell", "debian"), ("perl", "debian"),
)
TEAMS = (
    "platform", "data", "web", "ml", "infra", "mobile", "payments", "search", "identity",
    "growth", "ads", "media", "security", "billing", "observability", "edge", "catalog",
    "checkout", "devtools", "research",
)
SERVICES = (
    "api", "worker", "frontend", "gateway", "scheduler", "indexer", "ingest", "exporter",
    "proxy", "auth", "notifier", "reporter", "crawler", "trainer", "inference", "cache",
    "console", "migrator", "operator", "sidecar", "batch", "stream", "router", "uploader",
)
COMPONENTS = ("worker", "migrations", "debug", "cli")
BRANCHES = ("main", "develop", "staging", "nightly", "canary")

# Layer sizes: log-normal with median 4 MB and p90 60 MB (z(0.9) = 1.2816).
LAYER_MU = math.log(4_000_000)
LAYER_SIGMA = math.log(60_000_000 / 4_000_000) / 1.2815516
LAYER_MIN, LAYER_MAX = 32, 8 * 1024**3
CONFIG_MU, CONFIG_SIGMA = math.log(6_000), 0.6

# The registry's history: three years up to END (fixed, so tables are reproducible).
END_US = int(datetime(2026, 11, 1, tzinfo=UTC).timestamp()) * 1_000_000
SPAN_US = 3 * 365 * 86_400 * 1_000_000
BASE_VERSIONS = 8
# Images whose manifest lists a layer twice: builders that keep an empty layer, identical
# build steps. Rare, but analysis must count such a layer once (the slow path it groups).
REPEATED_LAYER = 0.01
# DuckDB's memory while encoding (it spills the rest beside OUTPUT): 100M descriptors name
# 55M digests, more than fits; the machine has 23 GB shared with other work.
MEMORY_LIMIT = "4GB"
STAGE = ".stage"  # the readers' form, inside the pending snapshot, until encoded
# Rows per encoding query: each table is encoded in ranges of about this many rows, so that
# no join or sort holds more than a range. Unranged, 100M descriptors (55M digests) ran out
# of memory at 6GB encoding `manifests` (19M rows joined twice to the digests, then sorted).
RANGE_ROWS = 4_000_000


def at(fraction: float) -> int:
    """A moment of the registry's history (0: its start, 1: END) in microseconds."""
    return END_US - int((1.0 - min(max(fraction, 0.0), 1.0)) * SPAN_US)


class Manifest:
    """One manifest, as every repository holding it sees it.

    `layers` is a list of segments (digests, sizes, media type): the base image's layers are
    one shared segment, so an image costs a few list operations, not one per layer.
    """

    __slots__ = ("digest", "media_type", "artifact_type", "config_media_type", "size",
                 "config", "layers", "children", "subject")

    def __init__(self, digest: str, media_type: str, size: int, *, artifact_type=None,
                 config=None, layers=(), children=(), subject=None) -> None:
        self.digest = digest
        self.media_type = media_type
        self.artifact_type = artifact_type
        self.config = config  # (digest, media type, size) or None
        self.config_media_type = config[1] if config else None
        self.size = size
        self.layers = layers  # [(digests, sizes, media type)]
        self.children = children  # [(Manifest, platform)]
        self.subject = subject  # Manifest or None

    def descriptor_count(self) -> int:
        return ((self.config is not None) + sum(len(s[0]) for s in self.layers)
                + len(self.children) + (self.subject is not None))


class Repository:
    __slots__ = ("name", "manifests", "tags", "links", "uploads")

    def __init__(self, name: str) -> None:
        self.name = name
        self.manifests: dict[str, tuple[Manifest, int]] = {}  # digest -> (manifest, pushed_at)
        self.tags: dict[str, tuple[str, int]] = {}  # tag -> (digest, updated_at)
        self.links: dict[str, int] = {}  # blob digest -> linked_at (_layers)
        self.uploads: list[tuple[str, int, int, int]] = []

    def add(self, m: Manifest, t: int) -> None:
        """Push `m` (and, for an index, its children) at `t`: revisions and layer links."""
        if m.digest in self.manifests:
            return
        self.manifests[m.digest] = (m, t)
        links = self.links
        if m.config is not None and m.config[0] not in links:
            links[m.config[0]] = t
        for digests, _, _ in m.layers:
            for d in digests:
                if d not in links:
                    links[d] = t
        for child, _ in m.children:
            self.add(child, t)

    def tag(self, name: str, digest: str, t: int) -> None:
        self.tags[name] = (digest, t)


class BaseImage:
    """A base image: per version, per platform, its layers (parent's first) and manifests."""

    def __init__(self, name: str, releases: list[float]) -> None:
        self.name = name
        self.releases = releases  # release moment (fraction of history) of each version
        # versions[v][platform] = (layer digests, layer sizes)
        self.versions: list[dict[str, tuple[list[str], list[int]]]] = []

    def version_at(self, fraction: float, rng: random.Random | None = None) -> int:
        """The version current at `fraction`; with `rng`, sometimes an older one."""
        v = max(0, bisect.bisect_right(self.releases, fraction) - 1)
        if v and rng is not None and rng.random() < 0.3:  # not every build picks up the newest base at once
            v = max(0, v - rng.choice((1, 1, 2)))
        return v


class Columns:
    """A table being written: one Python list per column, written as Arrow parts."""

    def __init__(self, writer: PartWriter) -> None:
        self.writer = writer
        self.schema = writer.schema
        self.names = writer.schema.names
        self.columns: dict[str, list] = {name: [] for name in self.names}
        self.rows = 0  # buffered

    def grew(self, n: int) -> None:
        self.rows += n
        if self.rows >= self.writer.rows_per_part:
            self.flush(self.writer.rows_per_part)

    def flush(self, limit: int | None = None) -> None:
        while self.rows and (limit is None or self.rows >= limit):
            n = min(self.rows, limit or self.rows)
            arrays = []
            for field in self.schema:
                values = self.columns[field.name]
                if not values:  # a column this generator does not fill (a later schema's): NULL
                    values.extend([None] * n)
                arrays.append(pa.array(values[:n], type=field.type))
                del values[:n]
            self.writer.write_batches([pa.RecordBatch.from_arrays(arrays, schema=self.schema)])
            self.rows -= n

    def close(self) -> int:
        self.flush()
        return self.writer.close()


class Generator:
    def __init__(self, args: argparse.Namespace, pending_path: str) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.seed = args.seed
        self.next_id = 0
        self.path = pending_path
        self.stage = Path(pending_path) / STAGE
        self.tables = {
            name: Columns(PartWriter(self.stage / name, SCHEMAS[name], args.rows_per_part))
            for name in SCHEMAS
        }
        self.stats = dict(
            teams=0, repositories=0, release_repositories=0, team_bases=0, pushes=0,
            untagged_pushes=0, images=0, repeated_layers=0, indexes=0, index_children=0, referrers=0,
            referrers_of_referrers=0, manifest_copies=0, layer_blobs=0, config_blobs=0,
            manifest_blobs=0, unreferenced_blobs=0, unlinked_unreferenced_blobs=0,
            physical_bytes=0,
        )
        self.layer_sizes: list[int] = []  # a sample, for the summary's median and p90
        self.zipf = list(itertools.accumulate(1.0 / (k + 1) ** 1.1 for k in range(args.base_images)))

    # -- primitives -----------------------------------------------------------------------

    def digest(self) -> str:
        self.next_id += 1
        return "sha256:" + hashlib.sha256(b"%d/%d" % (self.seed, self.next_id)).hexdigest()

    def blob(self, size: int, t: int, kind: str) -> str:
        d = self.digest()
        self.store_blob(d, size, t)
        self.stats[kind] += 1
        return d

    def store_blob(self, digest: str, size: int, t: int) -> None:
        c = self.tables["blobs"].columns
        c["digest"].append(digest)
        c["size"].append(size)
        c["stored"].append(True)
        c["modified_at"].append(t)
        self.stats["physical_bytes"] += size
        self.tables["blobs"].grew(1)

    def layer(self, t: int) -> tuple[str, int]:
        size = max(LAYER_MIN, min(LAYER_MAX, int(self.rng.lognormvariate(LAYER_MU, LAYER_SIGMA))))
        if len(self.layer_sizes) < 200_000:
            self.layer_sizes.append(size)
        return self.blob(size, t, "layer_blobs"), size

    # -- manifests ------------------------------------------------------------------------

    def image(self, fmt: str, segments: list[tuple[list[str], list[int]]], t: int) -> Manifest:
        manifest_type, _, config_type, layer_type = FORMATS[fmt]
        config_size = int(self.rng.lognormvariate(CONFIG_MU, CONFIG_SIGMA)) + 400
        config = (self.blob(config_size, t, "config_blobs"), config_type, config_size)
        layers = [(digests, sizes, layer_type) for digests, sizes in segments if digests]
        if layers and self.rng.random() < REPEATED_LAYER:  # its top layer again (descriptors.repeated)
            layers.append(([layers[-1][0][-1]], [layers[-1][1][-1]], layer_type))
            self.stats["repeated_layers"] += 1
        n = sum(len(s[0]) for s in layers)
        size = 300 + 165 * (n + 1) + self.rng.randrange(40)
        m = Manifest(self.blob(size, t, "manifest_blobs"), manifest_type, size,
                     config=config, layers=layers)
        self.stats["images"] += 1
        return m

    def index(self, fmt: str, children: list[tuple[Manifest, str]], t: int) -> Manifest:
        size = 250 + 390 * len(children) + self.rng.randrange(40)
        m = Manifest(self.blob(size, t, "manifest_blobs"), FORMATS[fmt][1], size,
                     children=children)
        self.stats["indexes"] += 1
        self.stats["index_children"] += len(children)
        return m

    def referrer(self, kind: str, subject: Manifest, t: int) -> Manifest:
        artifact_type, layer_type, (median, sigma) = ARTIFACTS[kind]
        payload = max(64, int(self.rng.lognormvariate(math.log(median), sigma)))
        layer = self.blob(payload, t, "layer_blobs")
        size = 700 + self.rng.randrange(120)
        m = Manifest(self.blob(size, t, "manifest_blobs"), OCI_MANIFEST, size,
                     artifact_type=artifact_type, config=(EMPTY_DIGEST, OCI_EMPTY, EMPTY_SIZE),
                     layers=[([layer], [payload], layer_type)], subject=subject)
        self.stats["referrers"] += 1
        if subject.subject is not None:
            self.stats["referrers_of_referrers"] += 1
        return m

    # -- base images ----------------------------------------------------------------------

    def make_bases(self) -> tuple[list[BaseImage], list[Repository]]:
        rng = self.rng
        specs = list(PUBLIC_BASES[: self.args.base_images])
        roots = [name for name, parent in specs if parent is None]
        for i in range(len(specs), self.args.base_images):
            specs.append((f"base{i:03d}", rng.choice(roots)))
        bases: dict[str, BaseImage] = {}
        repos = []
        for name, parent in specs:
            # Versions released through the history; the first before any service exists.
            releases = sorted([0.0] + [rng.uniform(0.02, 0.97) for _ in range(BASE_VERSIONS - 1)])
            base = BaseImage(name, releases)
            own = rng.choice((1, 1, 2, 2, 3)) if parent is None else rng.choice((1, 2, 2, 3, 4))
            for release in releases:
                pv = bases[parent].version_at(release) if parent else None
                per_platform = {}
                for platform in PLATFORMS:
                    digests, sizes = [], []
                    if parent:
                        pd, ps = bases[parent].versions[pv][platform]
                        digests, sizes = list(pd), list(ps)
                    for _ in range(own):
                        d, s = self.layer(at(release))
                        digests.append(d)
                        sizes.append(s)
                    per_platform[platform] = (digests, sizes)
                base.versions.append(per_platform)
            bases[name] = base
            repos.append(self.base_repository(f"library/{name}", base, "oci" if rng.random() < 0.5 else "docker",
                                              tag_prefix=f"{rng.randint(1, 20)}."))
        return list(bases.values()), repos

    def base_repository(self, name: str, base: BaseImage, fmt: str, tag_prefix: str) -> Repository:
        """A base image's own repository: one index per version, each tagged."""
        repo = Repository(name)
        for v, release in enumerate(base.releases):
            t = at(release)
            children = [(self.image(fmt, [base.versions[v][p]], t), p) for p in PLATFORMS]
            top = self.index(fmt, children, t)
            repo.add(top, t)
            repo.tag(f"{tag_prefix}{v}", top.digest, t)
            repo.tag("latest", top.digest, t)
            if v >= 1:
                repo.tag("stable", repo.tags[f"{tag_prefix}{v - 1}"][0], t)
        return repo

    def team_base(self, name: str, public: list[BaseImage]) -> tuple[BaseImage, Repository]:
        rng = self.rng
        parent = public[self.zipf_pick()]
        releases = sorted(rng.uniform(0.0, 0.9) for _ in range(rng.randint(2, 6)))
        base = BaseImage(name, releases)
        own = rng.choice((1, 1, 2))
        for release in releases:
            pv = parent.version_at(release, rng)
            per_platform = {}
            for platform in PLATFORMS:
                pd, ps = parent.versions[pv][platform]
                digests, sizes = list(pd), list(ps)
                for _ in range(own):
                    d, s = self.layer(at(release))
                    digests.append(d)
                    sizes.append(s)
                per_platform[platform] = (digests, sizes)
            base.versions.append(per_platform)
        self.stats["team_bases"] += 1
        return base, self.base_repository(name, base, rng.choice(("oci", "docker")), "v")

    def zipf_pick(self) -> int:
        return bisect.bisect_left(self.zipf, self.rng.random() * self.zipf[-1])

    # -- services -------------------------------------------------------------------------

    def service(self, name: str, team_base: BaseImage | None, public: list[BaseImage],
                release: Repository | None) -> Repository:
        rng = self.rng
        repo = Repository(name)
        fmt = rng.choices(("docker", "oci", "oci-zstd"), (0.5, 0.42, 0.08))[0]
        multi = rng.random() < 0.12
        platforms = PLATFORMS if multi else PLATFORMS[:1]
        base = team_base if team_base and rng.random() < 0.7 else public[self.zipf_pick()]
        # Log-normal pushes (sigma 1.1, mean --pushes), capped.
        mu = math.log(self.args.pushes) - 0.5 * 1.1**2
        n_pushes = max(1, min(3000, round(rng.lognormvariate(mu, 1.1))))
        start = rng.uniform(0.0, 0.9)
        moments = sorted(rng.uniform(start, 1.0) for _ in range(n_pushes))
        n_app = rng.choice((1, 2, 2, 3, 3, 4, 5))
        keep = [0.85, 0.6, 0.3, 0.15, 0.05][:n_app]  # lower layers change less often
        uses_latest = rng.random() < 0.85
        branches = list(BRANCHES[: rng.choice((0, 0, 1, 2, 3))])
        p_version = rng.choice((0.0, 0.3, 0.7, 1.0, 1.0))
        keep_versions = rng.choice((None, None, None, 5, 20))  # a tag cleanup policy
        signer = rng.choices((None, "cosign", "notation"), (0.82, 0.13, 0.05))[0]
        sbom = rng.random() < 0.06
        promote = release is not None and rng.random() < 0.8
        copy_referrers = rng.random() < 0.5
        app_layers: dict[str, list[tuple[str, int]]] = {}
        versions: list[str] = []
        version = 0
        tops: list[str] = []  # the digest each push tagged
        for f in moments:
            t = at(f)
            if rng.random() < 0.02:  # moved to another base image
                base = public[self.zipf_pick()]
            v = base.version_at(f, rng)
            children = []
            for platform in platforms:
                previous = app_layers.get(platform)
                current = []
                for i in range(n_app):
                    if previous and rng.random() < keep[i]:
                        current.append(previous[i])
                    else:
                        current.append(self.layer(t))
                app_layers[platform] = current
                segment = ([d for d, _ in current], [s for _, s in current])
                children.append((self.image(fmt, [base.versions[v][platform], segment], t), platform))
            top = children[0][0] if not multi else self.index(fmt, children, t)
            repo.add(top, t)
            tops.append(top.digest)
            referrers = []
            if signer:
                referrers.append(self.referrer(signer, top, t + 30_000_000))
            if sbom:
                s = self.referrer("sbom", top, t + 60_000_000)
                referrers.append(s)
                if signer:
                    referrers.append(self.referrer(signer, s, t + 90_000_000))
            for r in referrers:
                repo.add(r, t + 90_000_000)
            self.stats["pushes"] += 1

            tags = []
            if uses_latest:
                tags.append("latest")
            if branches:
                tags.append(rng.choice(branches))
            version_tag = None
            if rng.random() < p_version:
                if not versions or rng.random() >= 0.03:  # 3 %: the last version re-pushed
                    version += 1
                version_tag = f"{version // 50 + 1}.{version // 10 % 5}.{version % 10}"
                tags.append(version_tag)
                if not versions or versions[-1] != version_tag:
                    versions.append(version_tag)
                if keep_versions and len(versions) > keep_versions:
                    old = versions.pop(0)
                    repo.tags.pop(old, None)
            if not tags:
                tags.append("latest")
            for tag in tags:
                repo.tag(tag, top.digest, t)

            if promote and version_tag and rng.random() < 0.5:
                later = t + rng.randint(3_600, 14 * 86_400) * 1_000_000
                release.add(top, later)
                self.stats["manifest_copies"] += 1 + len(top.children)
                release.tag(version_tag, top.digest, later)
                release.tag("latest", top.digest, later)
                if copy_referrers:
                    for r in referrers:
                        release.add(r, later)
                        self.stats["manifest_copies"] += 1

        if rng.random() < 0.05:  # a failed push: layers uploaded and linked, no manifest
            t = at(rng.uniform(start, 1.0))
            for _ in range(rng.randint(1, 3)):
                d, _ = self.layer(t)
                self.stats["layer_blobs"] -= 1
                self.stats["unreferenced_blobs"] += 1
                repo.links[d] = t
        if rng.random() < 0.003:  # an upload in progress
            t = at(rng.uniform(0.99, 1.0))
            size = int(rng.lognormvariate(LAYER_MU, LAYER_SIGMA) * rng.random())
            repo.uploads.append((str(uuid.UUID(int=rng.getrandbits(128), version=4)), t, size,
                                 t + rng.randint(1, 600) * 1_000_000))
        tagged = {d for d, _ in repo.tags.values()}
        self.stats["untagged_pushes"] += sum(1 for d in tops if d not in tagged)
        return repo

    def team(self, index: int, public: list[BaseImage]) -> list[Repository]:
        rng = self.rng
        team = f"t{index:05d}-{TEAMS[rng.randrange(len(TEAMS))]}"
        repos: list[Repository] = []
        base = None
        if rng.random() < 0.4:
            base, base_repo = self.team_base(f"{team}/base", public)
            repos.append(base_repo)
        n_services = min(40, 1 + int(rng.expovariate(1 / 3.5)))
        names = set()
        for _ in range(n_services):
            name = f"{team}/{SERVICES[rng.randrange(len(SERVICES))]}"
            while name in names or name == f"{team}/base":
                name += f"-{rng.randint(2, 9)}"
            if rng.random() < 0.1:
                name += f"/{COMPONENTS[rng.randrange(len(COMPONENTS))]}"
                if name in names:
                    continue
            names.add(name)
            release = None
            if rng.random() < 0.08 and f"{name}/release" not in names:
                release = Repository(f"{name}/release")
                names.add(release.name)
            repos.append(self.service(name, base, public, release))
            if release is not None:
                if release.manifests:
                    repos.append(release)
                    self.stats["release_repositories"] += 1
                else:
                    names.discard(release.name)
        if rng.random() < 0.02:  # blobs of a deleted repository: stored, linked nowhere
            for _ in range(rng.randint(1, 5)):
                self.layer(at(rng.random()))
                self.stats["layer_blobs"] -= 1
                self.stats["unreferenced_blobs"] += 1
                self.stats["unlinked_unreferenced_blobs"] += 1
        self.stats["teams"] += 1
        return repos

    # -- writing --------------------------------------------------------------------------

    def emit(self, repos: list[Repository]) -> None:
        """Write repositories in name order, each table sorted by its key (as crawls do)."""
        t = self.tables
        for repo in sorted(repos, key=lambda r: r.name):
            name = repo.name
            self.stats["repositories"] += 1
            c = t["repositories"].columns
            c["repository"].append(name)
            c["complete"].append(True)
            c["error_count"].append(0)
            t["repositories"].grew(1)

            c = t["tags"].columns
            for tag in sorted(repo.tags):
                digest, updated = repo.tags[tag]
                c["repository"].append(name)
                c["tag"].append(tag)
                c["digest"].append(digest)
                c["updated_at"].append(updated)
            t["tags"].grew(len(repo.tags))

            self.emit_manifests(repo)

            c = t["repository_blobs"].columns
            links = repo.links
            ordered = sorted(links)
            c["repository"].extend(itertools.repeat(name, len(ordered)))
            c["digest"].extend(ordered)
            c["linked_at"].extend(links[d] for d in ordered)
            t["repository_blobs"].grew(len(ordered))

            c = t["uploads"].columns
            for upload_id, started, size, modified in sorted(repo.uploads):
                c["repository"].append(name)
                c["uuid"].append(upload_id)
                c["started_at"].append(started)
                c["size"].append(size)
                c["modified_at"].append(modified)
            t["uploads"].grew(len(repo.uploads))

    def emit_manifests(self, repo: Repository) -> None:
        name = repo.name
        mt = self.tables["manifests"]
        dt = self.tables["descriptors"]
        mc = mt.columns
        c = dt.columns
        c_repo, c_manifest, c_role, c_pos = c["repository"], c["manifest_digest"], c["role"], c["position"]
        c_digest, c_media, c_size = c["digest"], c["media_type"], c["size"]
        c_platform, c_artifact, c_repeated = c["platform"], c["artifact_type"], c["repeated"]
        repeat = itertools.repeat
        rows = 0
        for digest in sorted(repo.manifests):
            m, pushed = repo.manifests[digest]
            mc["repository"].append(name)
            mc["digest"].append(digest)
            mc["media_type"].append(m.media_type)
            mc["artifact_type"].append(m.artifact_type)
            mc["config_media_type"].append(m.config_media_type)
            mc["size"].append(m.size)
            mc["subject_digest"].append(m.subject.digest if m.subject is not None else None)
            mc["status"].append("ok")
            mc["pushed_at"].append(pushed)
            mc["last_pulled_at"].append(None)
            mc["locked"].append(None)
            mc["root"].append(False)  # a storage layout has no roots
            # role order as the crawler sorts: config, layer, manifest, subject
            n = m.descriptor_count()
            c_repo.extend(repeat(name, n))
            c_manifest.extend(repeat(digest, n))
            if m.config is not None:
                c_role.append("config")
                c_pos.append(0)
                c_digest.append(m.config[0])
                c_media.append(m.config[1])
                c_size.append(m.config[2])
            position = 0
            for digests, sizes, media_type in m.layers:
                k = len(digests)
                c_role.extend(repeat("layer", k))
                c_pos.extend(range(position, position + k))
                c_digest.extend(digests)
                c_media.extend(repeat(media_type, k))
                c_size.extend(sizes)
                position += k
            for i, (child, _platform) in enumerate(m.children):
                c_role.append("manifest")
                c_pos.append(i)
                c_digest.append(child.digest)
                c_media.append(child.media_type)
                c_size.append(child.size)
            if m.subject is not None:
                c_role.append("subject")
                c_pos.append(0)
                c_digest.append(m.subject.digest)
                c_media.append(m.subject.media_type)
                c_size.append(m.subject.size)
            if m.children:
                c_platform.extend(repeat(None, n - len(m.children)))
                c_platform.extend(p for _, p in m.children)
            else:
                c_platform.extend(repeat(None, n))
            c_artifact.extend(repeat(None, n))
            # rows in the order above: config, layers, children, then the subject (never repeated)
            references = [m.config[0]] if m.config is not None else []
            for digests, _, _ in m.layers:
                references.extend(digests)
            references.extend(child.digest for child, _ in m.children)
            if len(set(references)) == len(references):
                c_repeated.extend(repeat(False, n))
            else:
                counts = collections.Counter(references)
                c_repeated.extend(counts[d] > 1 for d in references)
                c_repeated.extend(repeat(False, n - len(references)))
            rows += n
        mt.grew(len(repo.manifests))
        dt.grew(rows)

    def run(self) -> dict[str, int]:
        target = self.args.descriptors
        self.store_blob(EMPTY_DIGEST, EMPTY_SIZE, at(0.0))
        public, base_repos = self.make_bases()
        self.emit(base_repos)
        index = 0
        last = time.perf_counter()
        while self.tables["descriptors"].writer.rows + self.tables["descriptors"].rows < target:
            self.emit(self.team(index, public))
            index += 1
            if time.perf_counter() - last > 10:
                last = time.perf_counter()
                done = self.tables["descriptors"].writer.rows + self.tables["descriptors"].rows
                print(f"  {done:,} descriptors, {self.stats['repositories']:,} repositories, "
                      f"{index:,} teams", flush=True)
        return {name: cols.close() for name, cols in self.tables.items()}


def encode(stage: Path, pending: PendingSnapshot, staged: dict[str, int], *, rows_per_part: int,
           memory_limit: str, temp_directory: Path) -> dict[str, int]:
    """The staged tables (readers' form) as the snapshot's stored tables, by regstat.snapshot.digest_ids.

    The staged tables stay until the caller removes them: an encoding that stops can be
    resumed (the disk holds both forms meanwhile). Returns the stored tables' row counts."""
    con = duckdb.connect(config={"memory_limit": memory_limit, "temp_directory": str(temp_directory),
                                 "preserve_insertion_order": False})
    try:
        con.execute("SET enable_progress_bar = false")

        def staged_sql(name: str) -> str:
            glob = quote(str(stage / name / "*.parquet"))
            return f"SELECT * FROM read_parquet('{glob}')"

        t0 = time.perf_counter()
        n = digest_ids.create(con, "gen_digests", [f"SELECT digest FROM ({staged_sql('blobs')})"])
        writer = pending.table(digest_ids.TABLE, rows_per_part)
        write_parts(writer, con.sql(digest_ids.digests_sql("gen_digests")).to_arrow_reader(100_000))
        counts = {digest_ids.TABLE: writer.close()}
        print(f"  encoding: {n:,} digests numbered in {time.perf_counter() - t0:.1f} s", flush=True)
        for name in SCHEMAS:
            t0 = time.perf_counter()
            writer = pending.table(name, rows_per_part)
            write_parts(writer, encoded_ranges(con, stage, name, n))
            counts[name] = writer.close()
            missing = unencoded(con, stage, pending.path, name)
            if counts[name] != staged[name] or missing:
                raise AssertionError(f"{name}: {staged[name]:,} rows staged, {counts[name]:,} stored, "
                                     f"digests without an id: {missing}")
            print(f"  encoding: {name} ({counts[name]:,} rows) in {time.perf_counter() - t0:.1f} s",
                  flush=True)
    finally:
        con.close()
    return counts


def quote(text: str) -> str:
    """`text` inside an SQL string literal."""
    return text.replace("'", "''")


def encoded_ranges(con: duckdb.DuckDBPyConnection, stage: Path, name: str,
                   digests: int) -> Iterator[pa.RecordBatch]:
    """The stored rows of the staged table `name`, in its sort order, one range of about
    RANGE_ROWS rows at a time (digest_ids.encode_sql on each range).

    `blobs` (staged in generation order) is ranged by digest: ids [lo, hi) of `gen_digests`,
    which are the digests in order, and the staged blobs between those digests. The other
    tables lead with the repository: they are ranged by repository name, bounds taken from
    the staged `repositories`. Not by consecutive parts: teams are staged in number order, and
    from team 100000 on (beyond ~87M descriptors) `t100000-...` sorts among `t10000-...`.
    Each range's last row must sort before the next one's first, or this stops."""
    glob = quote(str(stage / name / "*.parquet"))
    if name == "blobs":
        bounds = list(range(0, digests, RANGE_ROWS)) or [0]
        for i, lo in enumerate(bounds):
            hi = bounds[i + 1] if i + 1 < len(bounds) else None
            where = []
            if i > 0:
                where.append(f"digest >= (SELECT digest FROM gen_digests WHERE digest_id = {lo})")
            if hi is not None:
                where.append(f"digest < (SELECT digest FROM gen_digests WHERE digest_id = {hi})")
            logical = f"SELECT * FROM read_parquet('{glob}') WHERE {' AND '.join(where) or 'TRUE'}"
            known = f"(SELECT * FROM gen_digests WHERE digest_id >= {lo}" + \
                    (f" AND digest_id < {hi})" if hi is not None else ")")
            yield from con.sql(digest_ids.encode_sql(name, logical, known)).to_arrow_reader(100_000)
        return
    keys = DIGEST_COLUMNS.get(name, {})
    sort_key = [keys.get(c, c) for c in SORT_KEYS[name]]
    (rows,) = con.execute(f"SELECT count(*) FROM read_parquet('{glob}')").fetchone()
    names = [row[0] for row in con.execute(
        f"SELECT repository FROM read_parquet('{quote(str(stage / 'repositories' / '*.parquet'))}') ORDER BY 1"
    ).fetchall()]
    step = max(1, len(names) * RANGE_ROWS // max(1, rows))
    bounds = [None, *names[step::step], None]
    previous = None
    for lo, hi in itertools.pairwise(bounds):
        where = " AND ".join(f"repository {op} '{quote(bound)}'" for op, bound in ((">=", lo), ("<", hi))
                             if bound is not None) or "TRUE"
        sql = digest_ids.encode_sql(name, f"SELECT * FROM read_parquet('{glob}') WHERE {where}", "gen_digests")
        first = True
        for batch in con.sql(sql).to_arrow_reader(100_000):
            if not batch.num_rows:
                continue
            if first:
                head = tuple(batch.column(k)[0].as_py() for k in sort_key)
                if previous is not None and not previous < head:
                    raise AssertionError(f"{name}: ranges out of order: {previous} then {head}")
                first = False
            previous = tuple(batch.column(k)[batch.num_rows - 1].as_py() for k in sort_key)
            yield batch


def unencoded(con: duckdb.DuckDBPyConnection, stage: Path, pending: Path, name: str) -> dict[str, int]:
    """Digest columns of `name` whose stored ids are fewer than the staged digests (a digest
    `digest_ids.create` was not given would be stored as NULL)."""
    out = {}
    for column, key in DIGEST_COLUMNS.get(name, {}).items():
        staged_glob = quote(str(stage / name / "*.parquet"))
        stored_glob = quote(str(pending / name / "*.parquet"))
        (a,), (b,) = (con.execute(f"SELECT COUNT({c}) FROM read_parquet('{g}')").fetchall()
                      for c, g in ((column, staged_glob), (key, stored_glob)))
        if a != b:
            out[column] = a - b
    return out


def write_parts(writer: PartWriter, reader: Iterable[pa.RecordBatch]) -> None:
    """Write DuckDB's batches as parts of `writer.rows_per_part` rows (its batches are smaller:
    regroup them, so parts are as large as a crawl's)."""
    size = writer.rows_per_part
    pending: list[pa.RecordBatch] = []
    buffered = 0
    for batch in reader:
        pending.append(batch)
        buffered += batch.num_rows
        if buffered >= size:
            table = pa.Table.from_batches(pending)
            writer.write_batches(table.slice(0, size).combine_chunks().to_batches())
            rest = table.slice(size)
            pending = rest.combine_chunks().to_batches() if rest.num_rows else []
            buffered = rest.num_rows
    if buffered:
        writer.write_batches(pa.Table.from_batches(pending).combine_chunks().to_batches())


def summary_path(output: str) -> str:
    return os.path.abspath(output).rstrip(os.sep) + ".gen.json"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB", "EB"):
        if n < 1000 or unit == "EB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError


def directory_bytes(path: str) -> int:
    total = 0
    for dirpath, _, filenames in os.walk(path):
        for name in filenames:
            total += os.path.getsize(os.path.join(dirpath, name))
    return total


GENERATED = "generated.json"  # in STAGE: what the summary needs when encoding is resumed


def make_snapshot(output: str, *, descriptors: int, seed: int = 1, pushes: float = 12.0,
                  base_images: int = len(PUBLIC_BASES), rows_per_part: int = ROWS_PER_PART,
                  force: bool = False, memory_limit: str = MEMORY_LIMIT,
                  resume: bool = False) -> dict[str, object]:
    """Generate a snapshot at OUTPUT; returns its summary (also written to OUTPUT.gen.json).

    If encoding stops (at 100M it takes longer than generating), the generated tables stay
    in the hidden directory beside OUTPUT, and `resume` encodes them without generating again."""
    started_clock = time.perf_counter()
    started = utc_now()
    parameters = {"descriptors": descriptors, "seed": seed, "pushes": pushes, "base_images": base_images}
    if resume:
        pending = PendingSnapshot.take_over(output, find_interrupted(output), force=force)
        stage = pending.path / STAGE
        generated = staged_summary(stage, parameters)
        pending.clear_tables()  # what the stopped encoding wrote
        print(f"  resuming: encoding the {generated['staged']['descriptors']:,} descriptors generated before",
              flush=True)
    else:
        args = argparse.Namespace(descriptors=descriptors, seed=seed, pushes=pushes,
                                  base_images=base_images, rows_per_part=rows_per_part)
        pending = PendingSnapshot(output, force=force)
        try:
            gen = Generator(args, str(pending.path))
            staged = gen.run()
        except BaseException:
            pending.discard()
            raise
        stage = gen.stage
        sizes = sorted(gen.layer_sizes)
        generated = {
            "parameters": parameters,
            "staged": staged,
            "seconds_generating": round(time.perf_counter() - started_clock, 1),
            "shape": gen.stats,
            "layer_size_median": sizes[len(sizes) // 2] if sizes else 0,
            "layer_size_p90": sizes[int(len(sizes) * 0.9)] if sizes else 0,
        }
        (stage / GENERATED).write_text(json.dumps(generated, indent=2) + "\n")
        print(f"  generated {staged['descriptors']:,} descriptors in {generated['seconds_generating']} s; "
              "encoding", flush=True)
    # DuckDB's spill files: beside OUTPUT (the same disk), never inside the snapshot.
    spill = pending.path.parent / f".{pending.output.name}.encode-tmp-{os.getpid()}"
    try:
        counts = encode(stage, pending, generated["staged"], rows_per_part=rows_per_part,
                        memory_limit=memory_limit, temp_directory=spill)
        shutil.rmtree(stage)
        shutil.rmtree(spill, ignore_errors=True)
        info = SnapshotInfo(
            schema_version=SCHEMA_VERSION,
            regstat_version=__version__,
            id=new_snapshot_id(started),
            source=SourceInfo(
                kind="storage-layout",
                driver="filesystem",
                location="synthetic:make_snapshot.py?" + "&".join(f"{k}={v}" for k, v in parameters.items()),
            ),
            capabilities=STORAGE_CAPABILITIES,  # what a crawl of a storage tree records
            started_at=started,
            finished_at=utc_now(),
            complete=True,
            counts=counts,
        )
        path = pending.publish(info)
    except BaseException:
        shutil.rmtree(spill, ignore_errors=True)
        print(f"make_snapshot: encoding stopped; the generated tables are kept in {pending.path}: "
              "encode them with the same command and --resume", file=sys.stderr)
        raise
    seconds = time.perf_counter() - started_clock  # generating and encoding
    if resume:  # this run only encoded: add the generating before, where it was recorded
        seconds += generated["seconds_generating"] or 0
    summary = {
        "snapshot": str(path),
        "generator": "benchmarks/make_snapshot.py",
        "parameters": parameters,
        "seconds": round(seconds, 1),
        "seconds_generating": generated["seconds_generating"],  # the rest: encoding (digest_ids)
        "schema_version": SCHEMA_VERSION,
        "counts": dict(sorted(counts.items())),
        "shape": generated["shape"],
        "layer_size_median": generated["layer_size_median"],
        "layer_size_p90": generated["layer_size_p90"],
        "parquet_bytes": directory_bytes(str(path)),
    }
    if resume:
        summary["resumed"] = True
    with open(summary_path(str(path)), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    return summary


def staged_summary(stage: Path, parameters: dict) -> dict:
    """What generation left for the encoding (GENERATED), checked against the staged parts'
    row counts and the command's parameters. A stage from before GENERATED existed has no
    record: its parameters are taken to be the command's, its shape is unknown (None)."""
    staged = {name: sum(pq.ParquetFile(part).metadata.num_rows for part in (stage / name).glob("*.parquet"))
              for name in SCHEMAS}
    path = stage / GENERATED
    if path.exists():
        generated = json.loads(path.read_text())
        if generated["staged"] != staged or generated["parameters"] != parameters:
            raise SystemExit(f"{stage}: generated with {generated['parameters']} ({generated['staged']} rows), "
                             f"not {parameters} ({staged} rows): generate again without --resume")
        return generated
    return {"parameters": parameters, "staged": staged, "seconds_generating": None, "shape": None,
            "layer_size_median": None, "layer_size_p90": None}


def describe(summary: dict) -> str:
    """One line for RESULTS.md and the terminal."""
    c, s = summary["counts"], summary["shape"]
    if s is None:  # encoded by --resume from a stage that did not record its shape
        return (f"{c['descriptors']:,} descriptors, {c['manifests']:,} manifests, {c['repositories']:,} "
                f"repositories, {c['tags']:,} tags, {c['blobs']:,} blobs, {c['repository_blobs']:,} layer "
                f"links, {c['digests']:,} distinct digests; {human_bytes(summary['parquet_bytes'])} of Parquet")
    return (f"{c['descriptors']:,} descriptors, {c['manifests']:,} manifests "
            f"({s['pushes']:,} pushes, {s['untagged_pushes']:,} untagged; {s['indexes']:,} indexes, "
            f"{s['referrers']:,} referrers), {c['repositories']:,} repositories, {c['tags']:,} tags, "
            f"{c['blobs']:,} blobs ({s['unreferenced_blobs']:,} unreferenced), "
            f"{c['repository_blobs']:,} layer links, {c['digests']:,} distinct digests, "
            f"{human_bytes(s['physical_bytes'])} stored; "
            f"{human_bytes(summary['parquet_bytes'])} of Parquet")


def print_summary(summary: dict) -> None:
    print(f"snapshot:   {summary['snapshot']}  ({summary['seconds']} s)")
    for name, n in summary["counts"].items():
        print(f"  {name:<17} {n:>12,}")
    s = summary["shape"]
    if s is None:
        print("  shape: not recorded (encoded by --resume from an older stage)")
        return
    for key in ("teams", "team_bases", "release_repositories", "pushes", "untagged_pushes", "images",
                "repeated_layers", "indexes", "index_children", "referrers", "referrers_of_referrers",
                "manifest_copies", "manifest_blobs", "config_blobs", "layer_blobs",
                "unreferenced_blobs", "unlinked_unreferenced_blobs"):
        if key in s:  # a summary from before a key was added lacks it
            print(f"  {key:<28} {s[key]:>12,}")
    print(f"  layer sizes: median {human_bytes(summary['layer_size_median'])}, "
          f"p90 {human_bytes(summary['layer_size_p90'])}")
    print(f"  stored bytes {human_bytes(s['physical_bytes'])}; Parquet "
          f"{human_bytes(summary['parquet_bytes'])}")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("output", help="snapshot directory to create (must not exist, "
                                       "unless --force)")
    parser.add_argument("--descriptors", type=int, default=10_000_000,
                        help="stop after the team that brings the descriptors to at least "
                             "this many (default 10,000,000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--pushes", type=float, default=12.0,
                        help="mean pushes per service repository (default 12)")
    parser.add_argument("--base-images", type=int, default=len(PUBLIC_BASES),
                        help=f"public base images (default {len(PUBLIC_BASES)})")
    parser.add_argument("--rows-per-part", type=int, default=ROWS_PER_PART,
                        help=f"rows per Parquet part (default {ROWS_PER_PART:,}, as crawls)")
    parser.add_argument("--force", action="store_true", help="replace an existing OUTPUT")
    parser.add_argument("--memory-limit", default=MEMORY_LIMIT,
                        help=f"DuckDB's memory while encoding (default {MEMORY_LIMIT}; it spills "
                             "the rest into a directory beside OUTPUT)")
    parser.add_argument("--resume", action="store_true",
                        help="encode the tables an interrupted run to OUTPUT generated (kept in "
                             "its hidden directory) instead of generating again")
    args = parser.parse_args(argv)
    summary = make_snapshot(args.output, descriptors=args.descriptors, seed=args.seed,
                            pushes=args.pushes, base_images=args.base_images,
                            rows_per_part=args.rows_per_part, force=args.force,
                            memory_limit=args.memory_limit, resume=args.resume)
    print_summary(summary)
    print(f"summary:    {summary_path(args.output)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
