"""OCI image layouts for tests: filled by skopeo from a real registry, or edited by hand.

- :func:`skopeo_to_layout` copies ``REPO:TAG`` from a registry into a layout (``--all``).
- :func:`layout_expected` is what a crawl of such a layout must find, from the registry's
  :class:`~expected.Expected`.
- :func:`add_blob`, :func:`add_manifest`, :func:`add_root`, :func:`index_document` and
  :func:`read_index_json` / :func:`write_index_json` edit a layout that
  ``images.write_oci_layout`` wrote, for the odd cases a real client never writes.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from .components import ComponentError, Registry, isolated_env
from .expected import BlobRow, Expected, RepositoryRow, TagRow
from .images import OCI_INDEX, Descriptor, Image, Index, canonical_json, sha256_digest

REF_NAME = "org.opencontainers.image.ref.name"


def skopeo_to_layout(registry: Registry, repo: str, tag: str, layout: Path, layout_tag: str) -> None:
    """``skopeo copy --all docker://REGISTRY/REPO:TAG oci:LAYOUT:LAYOUT_TAG``, digests kept
    (``--preserve-digests`` fails rather than let skopeo convert a manifest)."""
    with tempfile.TemporaryDirectory(prefix="regstat-skopeo-") as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        argv = [
            "skopeo", "--policy", str(policy), "copy", "--quiet", "--all", "--preserve-digests",
            "--src-tls-verify=false", f"docker://{registry.host}/{repo}:{tag}", f"oci:{layout}:{layout_tag}",
        ]  # fmt: skip
        result = subprocess.run(argv, capture_output=True, text=True, env=isolated_env(), timeout=60)
    if result.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")


def layout_expected(registry: Expected, name: str, tags: Mapping[str, str]) -> Expected:
    """What a layout holding ``tags`` (layout tag -> manifest digest, copied from the registry
    ``registry`` describes) must crawl to, as repository ``name``: the tagged manifests and the
    index children they reach, their descriptors, and every blob they use, all stored."""
    by_digest = {m.digest: m for m in registry.manifests}
    descriptors = {}
    for d in registry.descriptors:
        descriptors.setdefault(d.manifest_digest, set()).add(d)
    sizes = {b.digest: b.size for b in registry.blobs}
    reached: set[str] = set()
    todo = list(tags.values())
    while todo:
        digest = todo.pop()
        if digest not in reached:
            reached.add(digest)
            todo += [d.digest for d in descriptors.get(digest, ()) if d.role == "manifest"]
    rows = {d for digest in reached for d in descriptors.get(digest, ())}
    used = reached | {d.digest for d in rows if d.role in ("config", "layer")}
    return Expected(
        repositories={RepositoryRow(name)},
        tags={TagRow(name, tag, digest) for tag, digest in tags.items()},
        manifests={by_digest[d]._replace(repository=name) for d in reached},
        descriptors={d._replace(repository=name) for d in rows},
        blobs={BlobRow(digest, sizes[digest]) for digest in used},
    )


# --- editing a layout -------------------------------------------------------------------------


def blob_file(layout: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_


def add_blob(layout: Path, data: bytes, digest: str | None = None) -> str:
    """Store ``data`` under ``digest`` (its true digest unless given); return the digest."""
    digest = digest or sha256_digest(data)
    path = blob_file(layout, digest)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return digest


def add_manifest(layout: Path, manifest: Image | Index) -> None:
    """Store a manifest, and for an index its children, with every blob they reference."""
    for image in manifest.children if isinstance(manifest, Index) else (manifest,):
        for data in image.blobs.values():
            add_blob(layout, data)
        add_blob(layout, image.manifest)
    add_blob(layout, manifest.manifest)


def index_document(children: Sequence[Descriptor]) -> bytes:
    """An OCI index listing ``children`` (which may themselves be indexes)."""
    return canonical_json(
        {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [d.to_json() for d in children]}
    )


def read_index_json(layout: Path) -> dict[str, Any]:
    return json.loads((layout / "index.json").read_bytes())


def write_index_json(layout: Path, document: dict[str, Any]) -> None:
    (layout / "index.json").write_bytes(canonical_json(document))


def add_root(layout: Path, descriptor: Descriptor, ref_name: str | None = None) -> None:
    """Add an entry to index.json, tagged ``ref_name`` (or untagged)."""
    entry = descriptor.to_json()
    if ref_name is not None:
        entry["annotations"] = {REF_NAME: ref_name}
    document = read_index_json(layout)
    document["manifests"].append(entry)
    write_index_json(layout, document)
