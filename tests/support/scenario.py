"""The standard scenario: the images tests push, and :func:`populate`, which pushes them.

:func:`populate` pushes the standard scenario into a registry (skopeo and the HTTP API) and
returns an :class:`~expected.Expected` describing exactly what the registry's storage then
holds.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass
from pathlib import Path

from . import images
from .components import Registry
from .expected import Expected, _Recorder
from .images import Image, Index
from .skopeo import adopt_stored, check_stored, push_schema1, skopeo_copy


def filler(seed: str, size: int) -> bytes:
    """``size`` deterministic, incompressible bytes (so layer sizes stay predictable)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass(frozen=True)
class Scenario:
    """The images of the standard scenario, built in memory (see :func:`populate`)."""

    alpine: Image
    web_old: Image
    web_new: Image
    web_deleted: Image
    api_oci: Image  # pushed with `--format v2s2`; the registry holds a Docker schema 2 form
    api_docker: Image  # the Docker schema 2 model of api_oci (its manifest bytes are skopeo's)
    cli_index: Index
    cli_list: Index  # a Docker manifest list of Docker schema 2 images of the same content
    legacy: Image  # pushed as Docker schema 1, only when asked for
    unreferenced_blob: bytes
    upload_data: bytes


def standard_scenario() -> Scenario:
    """Build the standard scenario's images. Layers are a few KB; ``base`` is shared."""
    base = images.make_layer(
        {
            "etc/os-release": b"NAME=regstat-base\nVERSION_ID=3.19\n",
            "bin/busybox": filler("busybox", 3000),
        }
    )
    web1 = images.make_layer(
        {"srv/web/index.html": b"<h1>v1</h1>\n", "srv/web/app": filler("web1", 1500)}
    )
    web2 = images.make_layer(
        {"srv/web/index.html": b"<h1>v2</h1>\n", "srv/web/app": filler("web2", 1500)}
    )
    web_tmp = images.make_layer({"srv/web/debug": filler("web-debug", 1200)})
    api = images.make_layer({"srv/api/server": filler("api", 2000)})
    amd64 = images.Platform("linux", "amd64")
    arm64 = images.Platform("linux", "arm64", "v8")
    cli_layers = {
        amd64: images.make_layer({"usr/bin/cli": filler("cli-amd64", 1000)}),
        arm64: images.make_layer({"usr/bin/cli": filler("cli-arm64", 1000)}),
    }

    def cli(platform: images.Platform, docker: bool) -> Image:
        return images.build_image(
            [cli_layers[platform]], platform=platform, docker=docker, cmd=["/usr/bin/cli"]
        )

    return Scenario(
        alpine=images.build_image([base], labels={"name": "base"}),
        web_old=images.build_image([base, web1], labels={"name": "web", "version": "1"}),
        web_new=images.build_image([base, web2], labels={"name": "web", "version": "2"}),
        web_deleted=images.build_image([base, web_tmp], labels={"name": "web", "version": "debug"}),
        api_oci=images.build_image([base, api], labels={"name": "api"}),
        api_docker=images.build_image([base, api], labels={"name": "api"}, docker=True),
        cli_index=images.build_index([cli(amd64, False), cli(arm64, False)]),
        cli_list=images.build_index([cli(amd64, True), cli(arm64, True)], docker=True),
        legacy=images.build_image([base, images.make_layer({"opt/legacy": filler("legacy", 800)})]),
        unreferenced_blob=b"an uploaded blob that no manifest references\n" + filler("orphan", 500),
        upload_data=filler("upload", 700),
    )


def populate(registry: Registry, *, schema1: bool = False) -> Expected:
    """Push the standard scenario into ``registry`` and return what its storage then holds.

    - ``base/alpine``: one OCI image tagged ``3.19`` and ``latest`` (skopeo).
    - ``apps/web``: ``latest`` pushed, then overwritten by a newer image (also tagged ``v2``),
      leaving the old manifest untagged; an image pushed as ``tmp`` then deleted by digest
      (its config, layer and manifest blob stay stored and linked); a blob uploaded and
      referenced by nothing; an upload left in progress. Both images share ``base``'s layer.
    - ``apps/api``: ``v1`` pushed as Docker schema 2 (skopeo ``--format v2s2``), sharing the
      base layer; a cosign-style signature (OCI 1.1 ``subject`` + ``artifactType``) pushed by
      digest, as distribution 2.8 has no referrers API, and tagged ``sha256-<hex>.sig`` too.
    - ``tools/cli``: ``v1`` an OCI index for linux/amd64 and linux/arm64/v8 (skopeo ``--all``);
      ``v1-docker`` a Docker manifest list of the same content (HTTP API).
    - ``legacy/app`` (``schema1=True`` only, needs ``Registry(schema1=True)``): ``v1`` a
      Docker schema 1 image.
    """
    s = standard_scenario()
    rec = _Recorder()
    with tempfile.TemporaryDirectory(prefix="regstat-layout-") as tmp:
        layout = images.write_oci_layout(
            Path(tmp),
            {
                "alpine": s.alpine,
                "web-old": s.web_old,
                "web-new": s.web_new,
                "api": s.api_oci,
                "cli": s.cli_index,
                "legacy": s.legacy,
            },
        )
        _push_base(registry, layout, s, rec)
        _push_web(registry, layout, s, rec)
        _push_api(registry, layout, s, rec)
        _push_cli(registry, layout, s, rec)
        if schema1:
            _push_legacy(registry, layout, s, rec)
    return rec.expected()


def _push_base(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "base/alpine"
    skopeo_copy(layout, "alpine", registry, repo, "3.19")
    check_stored(registry, repo, "3.19", s.alpine)
    rec.names["base"] = rec.image(repo, s.alpine)
    rec.names["base_layer"] = s.alpine.layers[0].digest
    rec.tag(repo, "3.19", s.alpine.digest)
    # A second tag on the same manifest: a plain manifest PUT by tag.
    registry.put_manifest(repo, "latest", s.alpine.manifest, s.alpine.media_type)
    rec.tag(repo, "latest", s.alpine.digest)


def _push_web(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "apps/web"
    skopeo_copy(layout, "web-old", registry, repo, "latest")
    rec.names["web_old"] = rec.image(repo, s.web_old)
    rec.tag(repo, "latest", s.web_old.digest)
    skopeo_copy(layout, "web-new", registry, repo, "latest")
    check_stored(registry, repo, "latest", s.web_new)
    rec.names["web_new"] = rec.image(repo, s.web_new)
    rec.tag(repo, "latest", s.web_new.digest)
    registry.put_manifest(repo, "v2", s.web_new.manifest, s.web_new.media_type)
    rec.tag(repo, "v2", s.web_new.digest)

    registry.push_image(repo, s.web_deleted, "tmp")
    rec.names["web_deleted"] = rec.image(repo, s.web_deleted)
    rec.tag(repo, "tmp", s.web_deleted.digest)
    registry.delete_manifest(repo, s.web_deleted.digest)
    rec.delete(repo, s.web_deleted.digest)

    registry.put_blob(repo, s.unreferenced_blob)
    rec.names["unreferenced_blob"] = rec.blob(repo, s.unreferenced_blob)
    uuid = registry.start_upload(repo, s.upload_data)
    rec.upload(repo, uuid, len(s.upload_data))
    rec.names["upload"] = uuid


def _push_api(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "apps/api"
    skopeo_copy(layout, "api", registry, repo, "v1", format="v2s2")
    stored, media_type, _ = registry.get_manifest(repo, "v1")
    api = adopt_stored(s.api_docker, stored)
    rec.names["api_v1"] = rec.image(repo, api)
    rec.tag(repo, "v1", api.digest)

    # The identity is fixed (not the registry's random port) to keep tests/scenario_tree stable.
    signature = images.cosign_signature(api, repo)
    registry.push_image(repo, signature)  # by digest: untagged, found through `subject`
    rec.names["signature"] = rec.image(repo, signature)
    # cosign's tag-schema fallback for registries without a referrers API.
    fallback = "sha256-" + api.digest.split(":", 1)[1] + ".sig"
    registry.put_manifest(repo, fallback, signature.manifest, signature.media_type)
    rec.tag(repo, fallback, signature.digest)


def _push_cli(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "tools/cli"
    skopeo_copy(layout, "cli", registry, repo, "v1", all_images=True)
    check_stored(registry, repo, "v1", s.cli_index)
    for child in s.cli_index.children:
        check_stored(registry, repo, child.digest, child)
    rec.names["cli_index"] = rec.index(repo, s.cli_index)
    rec.tag(repo, "v1", s.cli_index.digest)

    registry.push_index(repo, s.cli_list, "v1-docker")
    rec.names["cli_list"] = rec.index(repo, s.cli_list)
    rec.tag(repo, "v1-docker", s.cli_list.digest)


def _push_legacy(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "legacy/app"
    payload = push_schema1(registry, layout, "legacy", repo, "v1")
    layers = {d.digest: s.legacy.blobs[d.digest] for d in s.legacy.layers}
    rec.names["legacy"] = rec.schema1(repo, payload, layers)
    rec.tag(repo, "v1", rec.names["legacy"])
