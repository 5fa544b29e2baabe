"""The registry behind ``sample_data/``: what a team's registry holds after eight months.

Twenty repositories under ``base/``, ``apps/``, ``ci/``, ``tools/``, ``mirror/`` and
``sandbox/``: base images the others build on (their layers mounted, so shared), releases
signed cosign-style (an OCI manifest with ``subject``, also tagged ``sha256-<hex>.sig``) and
some with an SPDX SBOM referrer, multi-arch indexes and a Docker manifest list, CI
repositories with dozens of build tags, tags such as ``latest`` and ``staging`` moved from
build to build (leaving the old manifests orphaned), an image deleted by digest (its blobs
stay), a blob nothing references and abandoned uploads.

:func:`populate` pushes it through the registry's HTTP API, oldest step first, and returns
what the storage then holds (an :class:`~expected.Expected`) and the age each file is meant
to have: the age of the step that last wrote it, in seconds before now. Layers are a few KB.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from support import images
from support.components import Registry
from support.expected import Expected, _Recorder
from support.images import Image, Index, Manifest, Platform
from support.scenario import filler

HOUR = 3600
DAY = 24 * HOUR
AMD64 = Platform("linux", "amd64")
ARM64 = Platform("linux", "arm64", "v8")
SPDX = "application/spdx+json"


class History:
    """Pushes into ``registry`` one step at a time and records, for every file under the
    storage root, the age of the last step that wrote it (the registry rewrites some files,
    such as a revision link when a manifest is put again)."""

    def __init__(self, registry: Registry, root: Path) -> None:
        self.registry = registry
        self.root = root
        self.rec = _Recorder()
        self.ages: dict[str, int] = {}
        self._stats: dict[str, tuple[int, int]] = {}
        self._linked: dict[str, set[str]] = {}  # blob digest -> repositories it is linked into

    def settle(self, age: int) -> None:
        """Give the files the last step wrote (new or changed) the age ``age``."""
        present = set()
        for path in self.root.rglob("*"):
            if path.is_file():
                name = path.relative_to(self.root).as_posix()
                present.add(name)
                st = path.stat()
                if self._stats.get(name) != (st.st_mtime_ns, st.st_size):
                    self._stats[name] = (st.st_mtime_ns, st.st_size)
                    self.ages[name] = age
        for gone in set(self.ages) - present:
            del self.ages[gone], self._stats[gone]

    # -- steps

    def push(self, repo: str, manifest: Manifest, *tags: str) -> None:
        """Push an image or index (children first), by its first tag or by digest, then put
        the other tags."""
        children = manifest.children if isinstance(manifest, Index) else (manifest,)
        for child in children:
            self._blobs(repo, child.blobs.values())
            if child is not manifest:
                self.registry.put_manifest(repo, child.digest, child.manifest, child.media_type)
        for reference in tags or (manifest.digest,):
            self.registry.put_manifest(repo, reference, manifest.manifest, manifest.media_type)
        if isinstance(manifest, Index):
            self.rec.index(repo, manifest)
        else:
            self.rec.image(repo, manifest)
        for tag in tags:
            self.rec.tag(repo, tag, manifest.digest)

    def sign(self, repo: str, image: Image) -> None:
        """A cosign-style signature: an OCI manifest whose ``subject`` is ``image``, pushed
        by the tag ``sha256-<hex>.sig`` (cosign's scheme for registries without a referrers API)."""
        signature = images.cosign_signature(image, repo)
        self.push(repo, signature, "sha256-" + image.digest.split(":", 1)[1] + ".sig")

    def attach_sbom(self, repo: str, image: Image) -> None:
        """An SPDX SBOM referrer, pushed by digest only: nothing but its ``subject`` reaches it."""
        document = images.canonical_json({
            "spdxVersion": "SPDX-2.3",
            "name": f"{repo}@{image.digest}",
            "packages": [{"name": f"package-{i}", "versionInfo": f"1.{i}"} for i in range(12)],
        })
        sbom = images.build_referrer(image.descriptor(), document, artifact_type=SPDX, payload_media_type=SPDX)
        self.push(repo, sbom)

    def delete(self, repo: str, manifest: Manifest) -> None:
        self.registry.delete_manifest(repo, manifest.digest)
        self.rec.delete(repo, manifest.digest)

    def stray_blob(self, repo: str, data: bytes) -> None:
        """A blob uploaded whole and then referenced by nothing (a push that failed later)."""
        self._blobs(repo, [data])
        self.rec.blob(repo, data)

    def abandon_upload(self, repo: str, data: bytes) -> str:
        uuid = self.registry.start_upload(repo, data)
        self.rec.upload(repo, uuid, len(data))
        return uuid

    def _blobs(self, repo: str, blobs: Any) -> None:
        """Upload what the registry lacks; mount what another repository holds, as clients do."""
        for data in blobs:
            digest = images.sha256_digest(data)
            holders = self._linked.setdefault(digest, set())
            if repo in holders:
                continue
            if holders:
                source = min(holders)
                self.registry.request("POST", f"/v2/{repo}/blobs/uploads/?mount={digest}&from={source}", expect=(201,))
            else:
                self.registry.put_blob(repo, data)
            holders.add(repo)


# --- content -----------------------------------------------------------------------------------


def _ago(days: float, hours: float = 0) -> int:
    return round(days * DAY + hours * HOUR)


def _layer(name: str, size: int) -> images.Layer:
    return images.make_layer({f"opt/{name}/payload": filler(name, size)})


def _sha7(seed: str) -> str:
    return hashlib.sha256(seed.encode()).hexdigest()[:7]


class _Steps:
    """The registry's history as (age, step name, arguments), in the order written; populate
    runs them oldest first (steps of equal age in this order)."""

    def __init__(self) -> None:
        self.steps: list[tuple[int, str, tuple[Any, ...]]] = []

    def at(self, age: int, step: str, *args: Any) -> None:
        self.steps.append((age, step, args))


def _base(s: _Steps) -> dict[str, Any]:
    debian_layers = {
        v: images.make_layer({"etc/debian_version": v.encode(), "usr/lib/rootfs": filler(f"debian-{v}", 3000)})
        for v in ("12.4", "12.5", "12.6")
    }
    for version, days in (("12.4", 230), ("12.5", 140), ("12.6", 55)):
        image = images.build_image([debian_layers[version]], labels={"org.opencontainers.image.version": version})
        s.at(_ago(days), "push", "base/debian", image, version, "bookworm", "latest")

    alpine: dict[tuple[str, Platform], images.Layer] = {}
    for version, days in (("3.18", 220), ("3.19", 100), ("3.20", 30)):
        children = []
        for platform in (AMD64, ARM64):
            alpine[version, platform] = images.make_layer({
                "etc/alpine-release": version.encode(),
                "lib/rootfs": filler(f"alpine-{version}-{platform.architecture}", 2000),
            })
            children.append(images.build_image([alpine[version, platform]], platform=platform,
                                               labels={"org.opencontainers.image.version": version}))
        s.at(_ago(days), "push", "base/alpine", images.build_index(children), version, "latest")

    python = {v: _layer(f"python-{v}", 2500) for v in ("3.11", "3.12")}
    for version, debian, days, tags in (("3.11", "12.4", 200, ("3.11", "3.11-bookworm")),
                                        ("3.12", "12.6", 50, ("3.12", "latest")),
                                        # 3.11 rebuilt on the new Debian: the first build is orphaned.
                                        ("3.11", "12.6", 48, ("3.11", "3.11-bookworm"))):
        image = images.build_image([debian_layers[debian], python[version]],
                                   labels={"python": version, "debian": debian})
        s.at(_ago(days), "push", "base/python", image, *tags)
    return {"debian": debian_layers, "alpine": alpine, "python": python}


def _alpine_at(base: dict[str, Any], days: float) -> images.Layer:
    """The amd64 alpine layer an image built ``days`` ago starts from."""
    version = "3.18" if days > 100 else "3.19" if days > 30 else "3.20"
    return base["alpine"][version, AMD64]


def _python_at(base: dict[str, Any], days: float) -> list[images.Layer]:
    """The layers of the python image an image built ``days`` ago starts from."""
    if days > 48:
        return [base["debian"]["12.4"], base["python"]["3.11"]]
    return [base["debian"]["12.6"], base["python"]["3.12"]]


def _apps(s: _Steps, base: dict[str, Any], names: dict[str, Any]) -> None:
    for tag, days in (("v1.0.0", 170), ("v1.1.0", 110), ("v1.2.0", 45), ("v1.3.0", 12)):
        web = images.build_image([_alpine_at(base, days), _layer(f"web-{tag}", 1500)],
                                 labels={"app": "web", "version": tag})
        s.at(_ago(days), "push", "apps/web", web, tag, "latest")
        s.at(_ago(days), "sign", "apps/web", web)
    # staging moves with every build; the builds of 80 and 40 days ago were signed too.
    for i, (days, hours) in enumerate(((150, 0), (120, 0), (80, 0), (40, 0), (14, 0), (4, 0), (0, 6), (0, 1))):
        staging = images.build_image([_alpine_at(base, days), _layer(f"web-staging-{i}", 1200)],
                                     labels={"app": "web", "build": str(i)})
        s.at(_ago(days, hours), "push", "apps/web", staging, "staging")
        if days in (80, 40):
            s.at(_ago(days, hours), "sign", "apps/web", staging)
        if (days, hours) == (0, 6):
            names["web_staging_young"] = staging.digest
    names["unreferenced_blob"] = b"the config of a push that failed\n" + filler("stray", 600)
    s.at(_ago(75), "stray_blob", "apps/web", names["unreferenced_blob"])
    s.at(_ago(40, 3), "abandon_upload", "apps/web", filler("web-upload", 900))

    for tag, days, debian in (("v2.0.0", 180, "12.4"), ("v2.1.0", 120, "12.5"), ("v2.2.0", 60, "12.5"),
                              ("v2.3.0", 20, "12.6"), ("v2.3.1", 5, "12.6")):
        api = images.build_image([base["debian"][debian], _layer(f"api-{tag}", 2000)], docker=True,
                                 labels={"app": "api", "version": tag})
        s.at(_ago(days), "push", "apps/api", api, tag, "latest")
        s.at(_ago(days), "sign", "apps/api", api)
        if tag.startswith("v2.3"):
            s.at(_ago(days), "attach_sbom", "apps/api", api)
    debug = images.build_image([base["debian"]["12.5"], _layer("api-debug", 1800)], docker=True,
                               labels={"app": "api", "version": "debug"})
    names["api_deleted"] = debug.digest
    s.at(_ago(90), "push", "apps/api", debug, "debug")
    s.at(_ago(89), "delete", "apps/api", debug)

    def worker(name: str, days: float) -> Image:
        return images.build_image([*_python_at(base, days), _layer(f"worker-{name}", 1400)],
                                  labels={"app": "worker", "version": name})

    for tag, days in (("v0.9.0", 190), ("v0.9.1", 100), ("v1.0.0", 40)):
        s.at(_ago(days), "push", "apps/worker", worker(tag, days), tag, "latest")
    for days in (95, 70, 45, 30, 9, 2):
        s.at(_ago(days, 2), "push", "apps/worker", worker(f"main-{days}", days), "main")

    for tag, days, debian in (("v3.4.0", 90, "12.5"), ("v3.5.0", 25, "12.6")):
        billing = images.build_image([base["debian"][debian], _layer(f"billing-{tag}", 1600)],
                                     labels={"app": "billing", "version": tag})
        s.at(_ago(days), "push", "apps/billing", billing, tag, "prod")
        s.at(_ago(days), "attach_sbom", "apps/billing", billing)

    for week in range(10):  # one tag, rebuilt every week
        days = 7 * week + 1
        docs = images.build_image([_alpine_at(base, days), _layer(f"docs-week-{week}", 1000)],
                                  labels={"app": "docs", "week": str(week)})
        s.at(_ago(days, 5), "push", "apps/docs", docs, "latest")


def _ci(s: _Steps, base: dict[str, Any], names: dict[str, Any]) -> None:
    for n in range(40):  # a build every 2.5 days; main follows the newest
        days = 100 - 2.5 * n
        tag = f"build-{1201 + n}-{_sha7(f'web-{n}')}"
        build = images.build_image([_alpine_at(base, days), _layer(f"ci-web-{n}", 800)],
                                   labels={"app": "web", "build": str(1201 + n)})
        s.at(_ago(days, 1), "push", "ci/web-builds", build, tag, "main")
    s.at(_ago(0, 2), "abandon_upload", "ci/web-builds", filler("ci-upload", 1100))

    for n in range(30):  # pull-request builds over two months
        days = 60 - 2 * n
        pr = 410 + 3 * n // 2
        build = images.build_image([base["debian"]["12.5" if days > 55 else "12.6"], _layer(f"ci-api-{n}", 900)],
                                   docker=True, labels={"app": "api", "pr": str(pr)})
        s.at(_ago(days, 4), "push", "ci/api-builds", build, f"pr-{pr}-{_sha7(f'api-{n}')}")

    for n in range(25):  # nightlies, numbered
        days = 50 - 2 * n
        build = images.build_image([*_python_at(base, days), _layer(f"ci-worker-{n}", 700)],
                                   labels={"app": "worker", "nightly": str(n + 1)})
        s.at(_ago(days, 3), "push", "ci/worker-builds", build, f"nightly-{n + 1}")

    for n in range(12):  # a build cache, exported to one tag every other day
        cache = images.build_image([_layer(f"ci-cache-{n}", 2000)], labels={"cache": str(n)})
        s.at(_ago(24 - 2 * n, 6), "push", "ci/cache", cache, "buildcache")


def _multi_arch(name: str, version: str, *, docker: bool = False) -> Index:
    children = [
        images.build_image([_layer(f"{name}-{version}-{p.architecture}", 1500)], platform=p, docker=docker,
                           labels={"org.opencontainers.image.version": version})
        for p in (AMD64, ARM64)
    ]
    return images.build_index(children, docker=docker)


def _tools_and_mirrors(s: _Steps, base: dict[str, Any], names: dict[str, Any]) -> None:
    for version, days in (("v1.0.0", 130), ("v1.1.0", 35)):
        s.at(_ago(days), "push", "tools/cli", _multi_arch("cli", version), version, "latest")
    for version, days in (("1.28.4", 150), ("1.29.2", 80), ("1.30.1", 15)):
        image = images.build_image([_alpine_at(base, days), _layer(f"kubectl-{version}", 1800)],
                                   labels={"tool": "kubectl", "version": version})
        s.at(_ago(days), "push", "tools/kubectl", image, version)
    for version, days in (("1.7.5", 100), ("1.8.2", 30)):
        image = images.build_image([_alpine_at(base, days), _layer(f"terraform-{version}", 1800)],
                                   labels={"tool": "terraform", "version": version})
        s.at(_ago(days), "push", "tools/terraform", image, version)
    s.at(_ago(70), "push", "tools/helm", _multi_arch("helm", "3.14.0"), "3.14.0")

    for version, days in (("1.25", 160), ("1.26", 50)):  # mirrored as Docker manifest lists
        s.at(_ago(days, 8), "push", "mirror/library/nginx", _multi_arch("nginx", version, docker=True),
             version, "stable")
    for version, days in (("7.2", 140), ("7.4", 20)):
        s.at(_ago(days, 8), "push", "mirror/library/redis", _multi_arch("redis", version), version, "latest")
    # "16" mirrored again after an upstream patch release: the first index and its children
    # are orphaned.
    first = _multi_arch("postgres", "16.2")
    names["postgres_orphaned_index"] = first.digest
    s.at(_ago(120, 8), "push", "mirror/library/postgres", first, "16")
    s.at(_ago(40, 8), "push", "mirror/library/postgres", _multi_arch("postgres", "16.4"), "16", "16.4")

    # Someone's experiment, untouched since, with the upload it never finished.
    experiment = images.build_image([base["debian"]["12.4"], _layer("experiment", 2400)], labels={"owner": "alice"})
    s.at(_ago(210), "push", "sandbox/experiment", experiment, "test")
    s.at(_ago(209), "abandon_upload", "sandbox/experiment", filler("experiment-upload", 1500))


def populate(registry: Registry, root: Path) -> tuple[Expected, dict[str, int]]:
    """Push the sample's history into ``registry`` (filesystem storage at ``root``), oldest
    step first; return what the storage holds and each file's age in seconds (by its path
    relative to ``root``)."""
    s = _Steps()
    names: dict[str, Any] = {}
    base = _base(s)
    _apps(s, base, names)
    _ci(s, base, names)
    _tools_and_mirrors(s, base, names)
    history = History(registry, root)
    history.settle(0)  # what the registry wrote starting up
    uploads = []
    for age, step, args in sorted(s.steps, key=lambda step: -step[0]):
        result = getattr(history, step)(*args)
        if step == "abandon_upload":
            uploads.append((age, result))
        history.settle(age)
    expected = history.rec.expected()
    expected.names.update({k: v if isinstance(v, str) else images.sha256_digest(v) for k, v in names.items()})
    expected.names["stale_upload"] = max(uploads)[1]
    expected.names["young_upload"] = min(uploads)[1]
    return expected, history.ages
