#!/usr/bin/env python3
"""Write a large, valid distribution storage tree straight to disk, or into an S3 bucket.

The tree has exactly the layout Docker's distribution (2.x) writes under
``ROOT/docker/registry/v2`` and is readable by ``docker-registry garbage-collect`` and by
``regstat crawl``. No registry process is needed and nothing is pushed: every file is
written directly, so hundreds of thousands of files take a minute or two.

    python benchmarks/make_tree.py benchmarks/work/tree --repositories 2000 --seed 1
    python benchmarks/make_tree.py s3://bucket/prefix --endpoint-url http://127.0.0.1:5000 \
        --repositories 80 --seed 1

The second writes the same tree (same seed and sizes: the same files) as objects under
``prefix/docker/registry/v2/`` in an existing bucket, as the registry's ``s3`` driver with
``rootdirectory: /prefix`` lays it out, through boto3 with many threads.

What is real and what is not:

* Manifests (Docker schema 2, OCI, Docker manifest lists, OCI indexes) and image configs
  are real JSON whose sha256 is their digest: both tools read and parse them.
* Layer blobs are *sparse* files of their declared size (``ftruncate``). Their content does
  not hash to their digest, which is fine because neither tool hashes layers; the tree
  declares terabytes and uses a few hundred megabytes of disk (inodes and directories).
  In a bucket objects cannot be sparse: layer (and upload) data is a placeholder body of a
  few dozen bytes, so stored sizes there differ from the declared ones; manifests, configs
  and links are byte for byte the same as on disk.

The shape aims at a real registry: a few popular base images shared by most images
(Zipf-like), one to five application layers per image (often kept from the repository's
previous push), log-normal layer sizes (median ~4 MB, p90 ~60 MB), several tags per
repository with moving tags (``latest``, branch names) and re-pushed version tags that leave
untagged manifests behind, multi-platform Docker manifest lists and OCI indexes with two
children, repository names with ``/`` (some nested inside another repository), blobs
uploaded by failed pushes that no manifest references, and a few uploads in progress.

The same ``--seed`` and sizes give the same tree, byte for byte (file modification times
aside). A summary (counts, declared bytes, and what ``garbage-collect --dry-run`` should
report) is printed and written next to ROOT as ``ROOT.tree.json`` (for a bucket, to
``--summary FILE`` if given).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import math
import os
import random
import shutil
import sys
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER = "application/vnd.docker.image.rootfs.diff.tar.gzip"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_LAYER_ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"

PLATFORMS = (
    {"architecture": "amd64", "os": "linux"},
    {"architecture": "arm64", "os": "linux", "variant": "v8"},
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
BRANCHES = ("main", "develop", "staging", "release", "nightly")

# Layer sizes: log-normal with median 4 MB and p90 60 MB (z(0.9) = 1.2816).
LAYER_MEDIAN = 4_000_000
LAYER_P90 = 60_000_000
LAYER_MU = math.log(LAYER_MEDIAN)
LAYER_SIGMA = math.log(LAYER_P90 / LAYER_MEDIAN) / 1.2815516
LAYER_MIN = 32
LAYER_MAX = 8 * 1024**3


@dataclass
class Blob:
    """A blob to store: ``content`` for manifests and configs, else a sparse ``size``."""

    size: int
    content: bytes | None = None


@dataclass
class Repository:
    name: str
    revisions: list[str] = field(default_factory=list)  # manifest digests (hex), in order
    tag_history: dict[str, list[str]] = field(default_factory=dict)  # tag -> digests held
    layers: dict[str, None] = field(default_factory=dict)  # linked blobs (ordered set)
    uploads: list[tuple[str, int, str]] = field(default_factory=list)  # uuid, size, startedat


@dataclass
class Manifest:
    media_type: str
    references: list[str]  # digests (hex) of config, layers or index children
    blob_refs: list[str]  # config and layers only (what `_layers` must link)


class TreeModel:
    """The whole tree in memory, generated deterministically from a seed."""

    def __init__(self, *, seed: int, repositories: int, pushes: float, base_images: int) -> None:
        self.rng = random.Random(seed)
        self.n_repositories = repositories
        self.mean_pushes = pushes
        self.n_base_images = base_images
        self.blobs: dict[str, Blob] = {}
        self.manifests: dict[str, Manifest] = {}
        self.repos: list[Repository] = []
        self.clock = 1_700_000_000  # seconds; advances with every push, for `created`

    # -- primitives -------------------------------------------------------------------

    def random_hex(self) -> str:
        return f"{self.rng.getrandbits(256):064x}"

    def layer_size(self) -> int:
        size = int(self.rng.lognormvariate(LAYER_MU, LAYER_SIGMA))
        return max(LAYER_MIN, min(size, LAYER_MAX))

    def new_layer(self) -> tuple[str, int]:
        digest = self.random_hex()
        size = self.layer_size()
        self.blobs[digest] = Blob(size)
        return digest, size

    def put_json(self, obj: object, *, indent: int | None) -> tuple[str, int]:
        if indent is None:
            data = json.dumps(obj, separators=(",", ":")).encode()
        else:
            data = json.dumps(obj, indent=indent).encode()
        digest = hashlib.sha256(data).hexdigest()
        self.blobs[digest] = Blob(len(data), data)
        return digest, len(data)

    def timestamp(self) -> str:
        self.clock += self.rng.randint(60, 7200)
        return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.clock))

    # -- images -------------------------------------------------------------------------

    def make_base_images(self) -> None:
        """Popular base images per platform: chains of 1-3 layers, picked Zipf-like."""
        self.bases: dict[str, list[list[tuple[str, int]]]] = {}
        for platform in PLATFORMS:
            chains = []
            for _ in range(self.n_base_images):
                chain = [self.new_layer() for _ in range(self.rng.choice((1, 1, 2, 2, 3)))]
                chains.append(chain)
            self.bases[platform["architecture"]] = chains
        self.base_weights = [1.0 / (k + 1) ** 1.2 for k in range(self.n_base_images)]

    def make_image(
        self,
        repo: Repository,
        *,
        oci: bool,
        platform: dict[str, str],
        app_layers: list[tuple[str, int]],
        base: int,
    ) -> tuple[str, int]:
        """Config blob and image manifest; returns the manifest (digest, size)."""
        chain = self.bases[platform["architecture"]][base]
        layers = chain + app_layers
        created = self.timestamp()
        config = {
            "architecture": platform["architecture"],
            "os": platform["os"],
            **({"variant": platform["variant"]} if "variant" in platform else {}),
            "created": created,
            "config": {
                "Env": ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"],
                "Entrypoint": [f"/app/{repo.name.rsplit('/', 1)[-1]}"],
                "WorkingDir": "/app",
                "Labels": {
                    "org.opencontainers.image.source": f"https://git.example.com/{repo.name}",
                    "org.opencontainers.image.revision": self.random_hex()[:40],
                },
            },
            "rootfs": {
                "type": "layers",
                "diff_ids": [
                    "sha256:" + hashlib.sha256(d.encode()).hexdigest() for d, _ in layers
                ],
            },
            "history": [
                {"created": created, "created_by": f"/bin/sh -c #(nop) layer {i}"}
                for i in range(len(layers))
            ],
        }
        config_digest, config_size = self.put_json(config, indent=None)
        if oci:
            zstd = self.rng.random() < 0.1
            layer_type = OCI_LAYER_ZSTD if zstd else OCI_LAYER
            manifest: dict[str, object] = {"schemaVersion": 2}
            # Some OCI manifests omit mediaType (allowed by the spec; the registry infers it).
            if self.rng.random() >= 0.05:
                manifest["mediaType"] = OCI_MANIFEST
            manifest["config"] = {
                "mediaType": OCI_CONFIG, "digest": "sha256:" + config_digest, "size": config_size,
            }
            manifest["layers"] = [
                {"mediaType": layer_type, "digest": "sha256:" + d, "size": s} for d, s in layers
            ]
            if self.rng.random() < 0.3:
                manifest["annotations"] = {"org.opencontainers.image.created": created}
            media_type = OCI_MANIFEST
            digest, size = self.put_json(manifest, indent=None)
        else:
            manifest = {
                "schemaVersion": 2,
                "mediaType": DOCKER_MANIFEST,
                "config": {
                    "mediaType": DOCKER_CONFIG, "size": config_size,
                    "digest": "sha256:" + config_digest,
                },
                "layers": [
                    {"mediaType": DOCKER_LAYER, "size": s, "digest": "sha256:" + d}
                    for d, s in layers
                ],
            }
            media_type = DOCKER_MANIFEST
            digest, size = self.put_json(manifest, indent=3)
        blob_refs = [config_digest] + [d for d, _ in layers]
        self.manifests[digest] = Manifest(media_type, list(blob_refs), blob_refs)
        self.add_revision(repo, digest)
        for d in blob_refs:
            repo.layers[d] = None
        return digest, size

    def make_index(
        self, repo: Repository, *, oci: bool, app_layers: dict[str, list[tuple[str, int]]],
        base: int,
    ) -> tuple[str, int]:
        children = []
        for platform in PLATFORMS:
            digest, size = self.make_image(
                repo, oci=oci, platform=platform, app_layers=app_layers[platform["architecture"]],
                base=base,
            )
            children.append((digest, size, platform))
        child_type = OCI_MANIFEST if oci else DOCKER_MANIFEST
        index = {
            "schemaVersion": 2,
            "mediaType": OCI_INDEX if oci else DOCKER_LIST,
            "manifests": [
                {"mediaType": child_type, "digest": "sha256:" + d, "size": s, "platform": p}
                for d, s, p in children
            ],
        }
        digest, size = self.put_json(index, indent=None if oci else 3)
        self.manifests[digest] = Manifest(
            OCI_INDEX if oci else DOCKER_LIST, [d for d, _, _ in children], [],
        )
        self.add_revision(repo, digest)
        return digest, size

    @staticmethod
    def add_revision(repo: Repository, digest: str) -> None:
        if digest not in repo.revisions:
            repo.revisions.append(digest)

    # -- repositories -------------------------------------------------------------------

    def repository_names(self) -> list[str]:
        names: list[str] = []
        seen: set[str] = set()
        while len(names) < self.n_repositories:
            r = self.rng.random()
            team, service = self.rng.choice(TEAMS), self.rng.choice(SERVICES)
            if r < 0.2:
                name = f"{service}-{self.rng.randint(1, 999)}"
            elif r < 0.9:
                name = f"{team}/{service}-{self.rng.randint(1, 99)}"
            else:
                name = f"{team}/{self.rng.choice(('tools', 'jobs', 'libs'))}/{service}"
            if name in seen:
                continue
            seen.add(name)
            names.append(name)
            # A repository nested inside another one: both hold `_manifests`.
            if self.rng.random() < 0.01 and len(names) < self.n_repositories:
                child = f"{name}/debug"
                seen.add(child)
                names.append(child)
        return names

    def push_count(self) -> int:
        # Geometric-ish around the mean, at least one push.
        return 1 + int(self.rng.expovariate(1.0 / max(self.mean_pushes - 1, 0.01)))

    def make_repository(self, name: str) -> Repository:
        rng = self.rng
        repo = Repository(name)
        oci = rng.random() < 0.4  # the repository's builder: Docker or OCI media types
        multiarch = rng.random() < 0.12
        base = rng.choices(range(self.n_base_images), weights=self.base_weights)[0]
        # How the repository is tagged.
        style = rng.random()
        moving = ["latest"] if style < 0.7 else []
        if style >= 0.55:
            moving.append(rng.choice(BRANCHES))
        versioned = style < 0.85  # the rest push only moving tags: many untagged manifests
        if not moving and not versioned:
            moving = ["latest"]
        n_app = rng.randint(1, 5)
        previous: dict[str, list[tuple[str, int]]] = {}
        version = 0
        for _ in range(self.push_count()):
            if rng.random() < 0.05:  # occasionally the team moves to another base image
                base = rng.choices(range(self.n_base_images), weights=self.base_weights)[0]
            index = multiarch and rng.random() < 0.9
            archs = [p["architecture"] for p in PLATFORMS] if index else ["amd64"]
            app: dict[str, list[tuple[str, int]]] = {}
            for arch in archs:
                old = previous.get(arch, [])
                layers = []
                for i in range(n_app):
                    # Lower layers (dependencies) often survive from the previous push.
                    if i < len(old) and i < n_app - 1 and rng.random() < 0.5:
                        layers.append(old[i])
                    else:
                        layers.append(self.new_layer())
                app[arch] = layers
            previous = app
            if index:
                digest, _ = self.make_index(repo, oci=oci, app_layers=app, base=base)
            else:
                digest, _ = self.make_image(
                    repo, oci=oci, platform=PLATFORMS[0], app_layers=app["amd64"], base=base,
                )
            tags = list(moving) if rng.random() < 0.8 or not versioned else []
            if versioned:
                if version and rng.random() < 0.1:
                    tags.append(self.version_tag(version - 1))  # re-push: overwrites a tag
                else:
                    tags.append(self.version_tag(version))
                    version += 1
            if not tags:
                tags = [moving[0]] if moving else [self.version_tag(version)]
            for tag in tags:
                history = repo.tag_history.setdefault(tag, [])
                if digest in history:
                    history.remove(digest)
                history.append(digest)
        # A failed push: layers uploaded and linked, the manifest never came.
        if rng.random() < 0.05:
            for _ in range(rng.randint(1, 3)):
                digest, _ = self.new_layer()
                repo.layers[digest] = None
        if rng.random() < 0.02:
            a, b, c, d, e = (rng.getrandbits(bits) for bits in (32, 16, 12, 12, 48))
            uuid = f"{a:08x}-{b:04x}-4{c:03x}-a{d:03x}-{e:012x}"
            repo.uploads.append((uuid, rng.randint(0, 50_000_000), self.timestamp()))
        return repo

    @staticmethod
    def version_tag(n: int) -> str:
        return f"v1.{n // 10}.{n % 10}"

    def generate(self) -> None:
        self.make_base_images()
        for name in self.repository_names():
            self.repos.append(self.make_repository(name))
        # Blobs from repositories deleted long ago: stored, linked nowhere.
        for _ in range(max(1, self.n_repositories // 50)):
            self.new_layer()

    # -- what garbage-collect should say ----------------------------------------------

    def gc_expectation(self, *, delete_untagged: bool) -> dict[str, int]:
        """Counts ``docker-registry garbage-collect --dry-run`` (2.8) should report.

        Mirrors distribution 2.8's MarkAndSweep: every manifest of every repository is
        marked with its references (config, layers, index children); with
        ``--delete-untagged`` a manifest no tag currently points to is skipped (its
        references are not marked) and listed for deletion. 2.8 lists the untagged
        children of a tagged index too (it marks their digests through the index but not
        their layers): the known "--delete-untagged deletes multi-arch children" bug.
        """
        marked: set[str] = set()
        untagged: list[str] = []
        for repo in self.repos:
            current = {history[-1] for history in repo.tag_history.values()}
            for digest in repo.revisions:
                if delete_untagged and digest not in current:
                    untagged.append(digest)
                    continue
                marked.add(digest)
                marked.update(self.manifests[digest].references)
        eligible_manifests = len(untagged)
        eligible_blobs = sum(1 for d in self.blobs if d not in marked)
        return {
            "blobs_marked": len(marked),
            "blobs_eligible": eligible_blobs,
            "manifests_eligible": eligible_manifests,
        }


BLOB_PREFIX = "blobs/sha256"


def blob_file(digest: str, blob: Blob) -> tuple[str, bytes | int]:
    """A blob's data file: (path under v2, its content or, for a layer, its declared size)."""
    return f"{BLOB_PREFIX}/{digest[:2]}/{digest}/data", blob.content if blob.content is not None else blob.size


def repository_files(repo: Repository) -> Iterator[tuple[str, bytes | int]]:
    """A repository's files: (path under v2, content, or the declared size of a data file).

    The one description of a repository's part of the tree, written to disk by TreeWriter
    and to a bucket by BucketWriter.
    """
    base = f"repositories/{repo.name}"

    def link(directory: str, digest: str) -> tuple[str, bytes]:
        return f"{directory}/link", b"sha256:" + digest.encode()

    manifests = f"{base}/_manifests"
    for digest in repo.revisions:
        yield link(f"{manifests}/revisions/sha256/{digest}", digest)
    for tag, history in repo.tag_history.items():
        tag_dir = f"{manifests}/tags/{tag}"
        for digest in history:
            yield link(f"{tag_dir}/index/sha256/{digest}", digest)
        yield link(f"{tag_dir}/current", history[-1])
    for digest in repo.layers:
        yield link(f"{base}/_layers/sha256/{digest}", digest)
    for uuid, size, started in repo.uploads:
        upload = f"{base}/_uploads/{uuid}"
        yield f"{upload}/startedat", started.encode()
        yield f"{upload}/data", size


def all_files(model: TreeModel) -> Iterator[tuple[str, bytes | int]]:
    """Every file of the tree: blobs, then repositories."""
    for digest, blob in model.blobs.items():
        yield blob_file(digest, blob)
    for repo in model.repos:
        yield from repository_files(repo)


class TreeWriter:
    """Writes a TreeModel under ROOT/docker/registry/v2 with plain os calls."""

    def __init__(self, root: str, jobs: int) -> None:
        self.v2 = os.path.join(root, "docker", "registry", "v2")
        self.jobs = jobs
        self.files = 0
        self.dirs = 0

    @staticmethod
    def mkdirs(path: str) -> int:
        """mkdir -p that costs one syscall when the parent exists; returns dirs made."""
        try:
            os.mkdir(path)
            return 1
        except FileExistsError:
            return 0
        except FileNotFoundError:
            made = TreeWriter.mkdirs(os.path.dirname(path))
            try:
                os.mkdir(path)
                return made + 1
            except FileExistsError:
                return made

    @staticmethod
    def write_file(path: str, data: bytes | int) -> None:
        """Write `data`, or a sparse file of that many bytes (``ftruncate``)."""
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        try:
            if isinstance(data, int):
                os.ftruncate(fd, data)
            else:
                os.write(fd, data)
        finally:
            os.close(fd)

    def local(self, path: str) -> str:
        return os.path.join(self.v2, *path.split("/"))

    def write_blobs(self, items: list[tuple[str, Blob]]) -> tuple[int, int]:
        # The shard directory exists; each blob's directory is new: one mkdir, no probing.
        files = dirs = 0
        for digest, blob in items:
            path, data = blob_file(digest, blob)
            local = self.local(path)
            os.mkdir(os.path.dirname(local))
            dirs += 1
            self.write_file(local, data)
            files += 1
        return files, dirs

    def write_repository(self, repo: Repository) -> tuple[int, int]:
        files = dirs = 0
        for path, data in repository_files(repo):
            local = self.local(path)
            dirs += self.mkdirs(os.path.dirname(local))
            self.write_file(local, data)
            files += 1
        return files, dirs

    def write(self, model: TreeModel) -> None:
        blob_base = self.local(BLOB_PREFIX)
        self.dirs += self.mkdirs(blob_base)
        self.dirs += self.mkdirs(self.local("repositories"))
        buckets: dict[str, list[tuple[str, Blob]]] = {}
        for digest, blob in model.blobs.items():
            buckets.setdefault(digest[:2], []).append((digest, blob))
        for prefix in buckets:
            os.mkdir(os.path.join(blob_base, prefix))
            self.dirs += 1
        # Parent repositories before their nested children is not required (mkdirs -p),
        # but writing in name order keeps directory creation local.
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            futures = [pool.submit(self.write_blobs, items) for items in buckets.values()]
            futures += [pool.submit(self.write_repository, r) for r in model.repos]
            for future in futures:
                f, d = future.result()
                self.files += f
                self.dirs += d


LAYOUT_ROOT = "docker/registry/v2"


def placeholder(size: int) -> bytes:
    """The body of a layer (or upload) blob in a bucket, where files cannot be sparse."""
    return f"make_tree placeholder for {size} bytes\n".encode()


class BucketWriter:
    """Writes a TreeModel into an S3 bucket under PREFIX/docker/registry/v2, as the
    registry's s3 driver lays it out (its ``rootdirectory`` is PREFIX).

    Manifests, configs and links are written exactly as on disk; layer and upload data,
    which a bucket cannot hold sparsely, as a short placeholder body (``placeholder()``),
    so their stored sizes are not the declared ones. ``jobs`` threads upload at once.
    """

    def __init__(self, endpoint_url: str | None, bucket: str, prefix: str, jobs: int) -> None:
        import boto3  # only the S3 output needs it
        import botocore.config

        self.bucket = bucket
        self.base = "/".join(p for p in (prefix.strip("/"), LAYOUT_ROOT) if p) + "/"
        self.jobs = jobs
        config = botocore.config.Config(
            max_pool_connections=jobs, retries={"mode": "standard", "max_attempts": 8},
            s3={"addressing_style": "path"} if endpoint_url else None,
        )
        self.client = boto3.client("s3", endpoint_url=endpoint_url, config=config)
        self.files = 0
        self.dirs = 0  # the directories the same tree has on disk (its key prefixes)

    def put(self, path: str, data: bytes | int) -> None:
        body = placeholder(data) if isinstance(data, int) else data
        self.client.put_object(Bucket=self.bucket, Key=self.base + path, Body=body)

    def write(self, model: TreeModel) -> None:
        files = list(all_files(model))
        directories: set[str] = set()
        for path, _ in files:
            parts = (LAYOUT_ROOT + "/" + path).split("/")[:-1]
            for i in range(1, len(parts) + 1):
                directories.add("/".join(parts[:i]))
        with ThreadPoolExecutor(max_workers=self.jobs) as pool:
            for _ in pool.map(lambda item: self.put(*item), files):
                pass
        self.files = len(files)
        self.dirs = len(directories)


def summarize(model: TreeModel, writer: TreeWriter | BucketWriter, args: argparse.Namespace,
              seconds: float) -> dict[str, object]:
    revisions = sum(len(r.revisions) for r in model.repos)
    tags = sum(len(r.tag_history) for r in model.repos)
    untagged = 0
    for repo in model.repos:
        current = {h[-1] for h in repo.tag_history.values()}
        untagged += sum(1 for d in repo.revisions if d not in current)
    by_type: dict[str, int] = {}
    for manifest in model.manifests.values():
        by_type[manifest.media_type] = by_type.get(manifest.media_type, 0) + 1
    layer_sizes = sorted(b.size for b in model.blobs.values() if b.content is None)
    content_bytes = sum(b.size for b in model.blobs.values() if b.content is not None)

    def quantile(q: float) -> int:
        return layer_sizes[min(len(layer_sizes) - 1, int(q * len(layer_sizes)))]

    return {
        "generator": "benchmarks/make_tree.py",
        "parameters": {
            "seed": args.seed, "repositories": args.repositories, "pushes": args.pushes,
            "base_images": args.base_images,
        },
        "root": args.root if args.root.startswith("s3://") else os.path.abspath(args.root),
        "seconds": round(seconds, 1),
        "repositories": len(model.repos),
        "manifests": revisions,  # (repository, digest) pairs: revision links
        "manifest_blobs": len(model.manifests),
        "manifests_by_media_type": dict(sorted(by_type.items())),
        "untagged_manifests": untagged,
        "tags": tags,
        "blobs": len(model.blobs),
        "layer_blobs": len(layer_sizes),
        "layer_links": sum(len(r.layers) for r in model.repos),
        "uploads": sum(len(r.uploads) for r in model.repos),
        "files": writer.files,
        "directories": writer.dirs,
        "declared_bytes": sum(layer_sizes) + content_bytes,
        "layer_size_median": quantile(0.5),
        "layer_size_p90": quantile(0.9),
        "gc_dry_run": model.gc_expectation(delete_untagged=False),
        "gc_dry_run_delete_untagged": model.gc_expectation(delete_untagged=True),
    }


def summary_path(root: str) -> str:
    return os.path.abspath(root).rstrip(os.sep) + ".tree.json"


def human_bytes(n: float) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB", "PB"):
        if n < 1000 or unit == "PB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{int(n)} B"
        n /= 1000
    raise AssertionError


def make_tree(root: str, *, seed: int, repositories: int, pushes: float, base_images: int,
              jobs: int, replace: bool) -> dict[str, object]:
    """Generate and write a tree; returns its summary (also written to ROOT.tree.json)."""
    args = argparse.Namespace(
        root=root, seed=seed, repositories=repositories, pushes=pushes,
        base_images=base_images,
    )
    if os.path.exists(os.path.join(root, "docker")):
        if not replace:
            raise SystemExit(f"{root} already holds a storage tree; pass --replace to rewrite it")
        shutil.rmtree(os.path.join(root, "docker"))
    started = time.perf_counter()
    model = TreeModel(seed=seed, repositories=repositories, pushes=pushes,
                      base_images=base_images)
    model.generate()
    writer = TreeWriter(root, jobs)
    writer.write(model)
    summary = summarize(model, writer, args, time.perf_counter() - started)
    with open(summary_path(root), "w") as f:
        json.dump(summary, f, indent=2)
        f.write("\n")
    return summary


def make_bucket(location: str, *, endpoint_url: str | None, seed: int, repositories: int,
                pushes: float, base_images: int, jobs: int) -> dict[str, object]:
    """Generate the same tree as make_tree and write it into ``s3://BUCKET[/PREFIX]``.

    The bucket must exist; what it holds under PREFIX already is not removed (use a fresh
    bucket or prefix). Returns the summary (``root`` is LOCATION; ``files`` counts keys).
    """
    if not location.startswith("s3://"):
        raise SystemExit(f"{location}: not s3://BUCKET[/PREFIX]")
    bucket, _, prefix = location[len("s3://"):].partition("/")
    args = argparse.Namespace(
        root=location, seed=seed, repositories=repositories, pushes=pushes,
        base_images=base_images,
    )
    started = time.perf_counter()
    model = TreeModel(seed=seed, repositories=repositories, pushes=pushes,
                      base_images=base_images)
    model.generate()
    writer = BucketWriter(endpoint_url, bucket, prefix, jobs)
    writer.write(model)
    summary = summarize(model, writer, args, time.perf_counter() - started)
    summary["layer_data"] = "placeholder bodies (stored sizes differ from the declared ones)"
    return summary


def print_summary(summary: dict[str, object]) -> None:
    s = summary
    print(f"tree:            {s['root']}  ({s['seconds']} s)")
    print(f"repositories:    {s['repositories']}")
    print(f"manifests:       {s['manifests']} in repositories, {s['manifest_blobs']} distinct"
          f", {s['untagged_manifests']} untagged")
    for media_type, n in s["manifests_by_media_type"].items():  # type: ignore[union-attr]
        print(f"                 {n:>8}  {media_type}")
    print(f"tags:            {s['tags']}")
    print(f"blobs:           {s['blobs']} ({s['layer_blobs']} layers, "
          f"median {human_bytes(s['layer_size_median'])}, "  # type: ignore[arg-type]
          f"p90 {human_bytes(s['layer_size_p90'])})")  # type: ignore[arg-type]
    print(f"layer links:     {s['layer_links']}")
    print(f"uploads:         {s['uploads']}")
    print(f"files:           {s['files']} in {s['directories']} directories")
    print(f"declared bytes:  {s['declared_bytes']} ({human_bytes(s['declared_bytes'])})")  # type: ignore[arg-type]
    gc = s["gc_dry_run"]
    gcu = s["gc_dry_run_delete_untagged"]
    print(f"gc --dry-run should say:                   {gc['blobs_marked']} blobs marked, "  # type: ignore[index]
          f"{gc['blobs_eligible']} blobs and 0 manifests eligible for deletion")  # type: ignore[index]
    print(f"gc --dry-run --delete-untagged should say: {gcu['blobs_marked']} blobs marked, "  # type: ignore[index]
          f"{gcu['blobs_eligible']} blobs and {gcu['manifests_eligible']} manifests "  # type: ignore[index]
          "eligible for deletion")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0],
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("root", help="storage root: the directory that will hold docker/registry/v2, "
                        "or s3://BUCKET[/PREFIX] (the bucket must exist; PREFIX is the s3 "
                        "driver's rootdirectory)")
    parser.add_argument("--repositories", type=int, default=2000, help="number of repositories (default 2000)")
    parser.add_argument("--pushes", type=float, default=8.0,
                        help="mean pushes per repository; each push is one manifest or index "
                             "and moves one or more tags (default 8)")
    parser.add_argument("--base-images", type=int, default=20,
                        help="popular base images per platform (default 20)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("--jobs", type=int, default=None,
                        help="writer threads (default 4 on disk, 32 to S3)")
    parser.add_argument("--replace", action="store_true",
                        help="delete an existing tree under ROOT first (disk only)")
    parser.add_argument("--endpoint-url", metavar="URL",
                        help="S3 endpoint (moto, MinIO); default AWS_ENDPOINT_URL, else AWS")
    parser.add_argument("--summary", metavar="FILE",
                        help="where to write the summary (default ROOT.tree.json on disk; "
                             "none for S3)")
    args = parser.parse_args(argv)
    if args.root.startswith("s3://"):
        summary = make_bucket(
            args.root, endpoint_url=args.endpoint_url, seed=args.seed,
            repositories=args.repositories, pushes=args.pushes, base_images=args.base_images,
            jobs=args.jobs or 32,
        )
        where = args.summary
    else:
        summary = make_tree(
            args.root, seed=args.seed, repositories=args.repositories, pushes=args.pushes,
            base_images=args.base_images, jobs=args.jobs or 4, replace=args.replace,
        )
        where = summary_path(args.root)
    if args.summary and where == args.summary:
        with open(where, "w") as f:
            json.dump(summary, f, indent=2)
            f.write("\n")
    print_summary(summary)
    if where:
        print(f"summary:         {where}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
