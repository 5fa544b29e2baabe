"""Pushing with the real client, skopeo, and checking what the registry then stores.

- :func:`skopeo_copy` pushes an OCI image layout (optionally converting its manifests).
- :func:`adopt_stored` and :func:`check_stored` compare a pushed manifest with its model.
- :func:`push_schema1` pushes a Docker schema 1 image and returns the stored payload.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping
from dataclasses import replace
from pathlib import Path
from typing import Any

from . import images
from .components import ComponentError, Registry, isolated_env
from .images import Descriptor, Image, Manifest, sha256_digest

_SKOPEO_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


def skopeo_copy(
    layout: Path,
    layout_tag: str,
    registry: Registry,
    repo: str,
    tag: str,
    *,
    all_images: bool = False,
    format: str | None = None,
) -> None:
    """``skopeo copy oci:LAYOUT:TAG docker://REGISTRY/REPO:TAG``.

    ``format`` ("v2s2", "v2s1", "oci") converts the manifest; without it digests are
    preserved (``--preserve-digests`` makes skopeo fail rather than rewrite a manifest).
    """
    with tempfile.TemporaryDirectory(prefix="regstat-skopeo-") as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps(_SKOPEO_POLICY))
        argv = ["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false"]
        if all_images:
            argv.append("--all")
        if format is None:
            argv.append("--preserve-digests")
        else:
            argv += ["--format", format]
        argv += [f"oci:{layout}:{layout_tag}", f"docker://{registry.host}/{repo}:{tag}"]
        result = subprocess.run(argv, capture_output=True, text=True, env=isolated_env())
    if result.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")


def _descriptor_from_json(doc: Mapping[str, Any]) -> Descriptor:
    platform = doc.get("platform")
    return Descriptor(
        media_type=doc["mediaType"],
        digest=doc["digest"],
        size=int(doc["size"]),
        platform=images.Platform(platform["os"], platform["architecture"], platform.get("variant"))
        if platform
        else None,
        artifact_type=doc.get("artifactType"),
    )


def adopt_stored(model: Image, stored: bytes) -> Image:
    """``model`` with its manifest bytes replaced by ``stored`` (what skopeo actually pushed
    after converting it), once the stored manifest is checked to describe the same content.

    skopeo serialises a converted manifest its own way (Go field order), so its digest cannot
    be predicted; everything it points at must still match the model exactly.
    """
    doc = json.loads(stored)
    checks = {
        "mediaType": (doc.get("mediaType"), model.media_type),
        "config": (_descriptor_from_json(doc["config"]), model.config),
        "layers": (tuple(_descriptor_from_json(d) for d in doc["layers"]), model.layers),
    }
    for what, (got, want) in checks.items():
        if got != want:
            raise ComponentError(f"pushed manifest's {what} is {got}, expected {want}")
    return replace(model, manifest=stored)


def check_stored(registry: Registry, repo: str, reference: str, model: Manifest) -> None:
    """Read ``repo:reference`` back and require the exact bytes and type of ``model``."""
    body, media_type, digest = registry.get_manifest(repo, reference)
    if (body, media_type, digest) != (model.manifest, model.media_type, model.digest):
        raise ComponentError(
            f"{repo}:{reference} holds {digest} ({media_type}), expected {model.digest} "
            f"({model.media_type})"
        )


def push_schema1(registry: Registry, layout: Path, layout_tag: str, repo: str, tag: str) -> bytes:
    """Push an OCI layout image as Docker schema 1 (skopeo ``--format v2s1``); return the
    manifest bytes the registry stored.

    Needs ``Registry(schema1=True)``: distribution 2.8 otherwise answers 500 "manifest schema
    v1 unsupported". The registry stores the JWS *payload* (the manifest without its
    ``signatures``) and re-signs it with its own key when serving it, so the stored blob is
    smaller than what ``GET`` returns, and the digest is that payload's.
    """
    skopeo_copy(layout, layout_tag, registry, repo, tag, format="v2s1")
    served, media_type, digest = registry.get_manifest(repo, tag)
    if media_type != images.DOCKER_SCHEMA1_SIGNED:
        raise ComponentError(f"{repo}:{tag} is served as {media_type}")
    payload = schema1_payload(served)
    if sha256_digest(payload) != digest:
        raise ComponentError(f"schema 1 payload hashes to {sha256_digest(payload)}, not {digest}")
    return payload


def schema1_payload(signed: bytes) -> bytes:
    """The signed payload of a schema 1 JWS manifest (libtrust's "pretty JWS" form): the
    body up to ``formatLength`` followed by the decoded ``formatTail`` of a signature."""
    import base64

    protected = json.loads(signed)["signatures"][0]["protected"]
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    tail = header["formatTail"]
    return signed[: header["formatLength"]] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))
