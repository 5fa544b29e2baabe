"""`regstat plan-gc` against a real docker-registry (distribution 2.8.2) and its own GC.

The registry is filled with the shapes that make garbage collection hazardous
(tests/support/gc_hazards.py: an index whose children were pushed by digest, a signature
pushed by digest, an overwritten tag, layers mounted across repositories). The test then
checks, on the real components:

1. ``regstat plan-gc --untagged --grace 0s`` plans exactly the garbage;
2. ``docker-registry garbage-collect --dry-run --delete-untagged`` deletes the garbage plus the
   live content it gets wrong (the children of the tagged index, the live signature and the
   blobs only they hold), and regstat deletes none of that;
3. applying the plan (manifest DELETEs through the API in plan order, then the registry's
   ``garbage-collect`` without ``--delete-untagged``, then the stale upload cancelled through
   the API) removes exactly ``bytes_reclaimed`` bytes, and every kept tag (and the live
   signature) still copies out completely with ``skopeo copy --all``.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
from support import images
from support.components import Registry
from support.gc_hazards import (
    V2, Hazards, Pushed, blob_files, compare, crawl_and_plan, fill, format_numbers, gc_damage, kept_references, planned,
    run_gc, skopeo_copy_out, upload_files,
)

needs_registry = pytest.mark.registry


def _one(hazards: Hazards, role: str) -> Pushed:
    (found,) = [p for p in hazards.manifests if p.role == role]
    return found


@needs_registry
def test_plan_against_the_registry_gc_then_apply(make_registry: Any, tmp_path: Path) -> None:
    registry: Registry = make_registry("fs")
    assert registry.root is not None and registry.config_path is not None
    root = registry.root
    h = fill(registry)
    assert blob_files(root) == h.blob_sizes, "the tree holds exactly what was pushed"
    assert upload_files(root) == h.uploads

    c = compare(registry, h, tmp_path)
    plan, gc = c.plan, c.gc

    # regstat plans exactly the garbage: no tag, no live manifest, no live blob.
    assert planned(plan, "delete_tag") == []
    assert c.plan_manifests == h.garbage_manifests(), h.roles(c.plan_manifests ^ h.garbage_manifests())
    assert c.plan_blobs == h.garbage_blobs()
    assert {(a["repository"], a["uuid"]): a["size"] for a in planned(plan, "delete_upload")} == h.uploads
    assert not c.plan_manifests & h.live_manifests() and not c.plan_blobs & h.live_blobs()
    assert {a["digest"]: a["size"] for a in planned(plan, "delete_blob")} == {d: c.sizes[d] for d in c.plan_blobs}
    assert plan["summary"]["bytes_reclaimed"] == c.bytes(c.plan_blobs) + sum(h.uploads.values())

    # The registry's GC: every untagged manifest, and every blob no tagged manifest lists.
    assert gc.manifests == h.gc_manifests()
    assert gc.blobs == h.gc_blobs()

    # regstat deletes everything the GC deletes except the live content the GC destroys: the
    # untagged children of the tagged index, the untagged signature of the tagged image, and
    # their blobs: the children's configs and layers, the signature's manifest blob, its
    # payload and the empty config `{}` every signature shares. The children's own manifest
    # blobs survive even the GC (the tagged index lists them), but with their revision links
    # gone and their layers swept, pulling a platform fails. regstat deletes nothing the GC keeps.
    children = [_one(h, f"untagged child {p} of multi/cli:v1") for p in ("linux/amd64", "linux/arm64/v8")]
    signature = _one(h, "untagged signature of signed/app:v1")
    destroyed_manifests = {p.key for p in (*children, signature)}
    destroyed_blobs = {children[0].manifest.config.digest, children[0].manifest.layers[0].digest,
                       children[1].manifest.config.digest, children[1].manifest.layers[0].digest,
                       signature.digest, signature.manifest.config.digest, signature.manifest.layers[0].digest}
    assert signature.manifest.config.digest == images.sha256_digest(images.EMPTY_JSON)
    assert gc.manifests - c.plan_manifests == destroyed_manifests
    assert c.plan_manifests - gc.manifests == set()
    assert gc.blobs - c.plan_blobs == destroyed_blobs
    assert c.plan_blobs - gc.blobs == set()
    assert c.plan_manifests == gc.manifests - destroyed_manifests
    assert c.plan_blobs == gc.blobs - destroyed_blobs
    # Both delete the unreferenced blob; the layer mount/dst mounted from mount/src stays
    # with mount/src:v1 though mount/dst's image using it goes; the layer mounted from the old
    # web/app image goes, its last users in both repositories gone.
    half = _one(h, "digest-only image mount/dst (layer kept in mount/src)").manifest.layers[0].digest  # type: ignore[union-attr]
    web_1 = _one(h, "digest-only image mount/dst (layer mounted from the old web/app)").manifest.layers[0].digest  # type: ignore[union-attr]
    for repository, digest in (("mount/dst", half), ("mount/dst", web_1), ("web/app", web_1)):
        assert (root / V2 / "repositories" / repository / "_layers" / "sha256" / digest[7:] / "link").exists()
    assert h.unreferenced <= c.plan_blobs & gc.blobs
    assert half not in c.plan_blobs | gc.blobs and web_1 in c.plan_blobs & gc.blobs
    print("\n" + format_numbers(c.numbers()))

    # Plan order: a referrer before its subject, an index before its children.
    order = [(a["repository"], a["digest"]) for a in planned(plan, "delete_manifest")]
    nightly = _one(h, "digest-only index multi/cli")
    for child in nightly.manifest.children:  # type: ignore[union-attr]
        assert order.index(nightly.key) < order.index(("multi/cli", child.digest))
    old = _one(h, "old web/app:latest")
    assert order.index(_one(h, "signature of the old web/app:latest").key) < order.index(old.key)

    # Apply: the manifests through the API, in plan order; then the registry's own GC, without
    # --delete-untagged, on the stopped registry.
    for repository, digest in order:
        registry.delete_manifest(repository, digest)
    before, uploads_before = blob_files(root), upload_files(root)
    registry.stop()
    swept = run_gc(registry.config_path, dry_run=False, delete_untagged=False)
    after = blob_files(root)
    assert swept.manifests == set() and swept.blobs == c.plan_blobs
    assert set(before) - set(after) == c.plan_blobs and set(after) - set(before) == set()
    removed = sum(before.values()) - sum(after.values())
    # garbage-collect sweeps blobs only: the stale upload (repositories/<name>/_uploads/<uuid>,
    # counted in bytes_reclaimed) is still there. Its bytes are the difference.
    assert upload_files(root) == uploads_before == h.uploads
    assert removed == plan["summary"]["bytes_reclaimed"] - sum(h.uploads.values())

    # The plan's delete_upload actions, on the stopped registry's storage: the API cannot do
    # it (cancelling an upload, DELETE /v2/<name>/blobs/uploads/<uuid>, needs the upload's
    # `_state` token, HMAC'd with the registry's http.secret and known only to the client
    # that started it), and the registry's own upload purger only removes uploads older than
    # its `maintenance.uploadpurging.age` (168h by default). The plan counts the upload's
    # `data` file; its `startedat` and `hashstates/` files are bookkeeping, not counted.
    for a in planned(plan, "delete_upload"):
        shutil.rmtree(root / V2 / "repositories" / a["repository"] / "_uploads" / a["uuid"])
    assert upload_files(root) == {}
    assert removed + sum(uploads_before.values()) == plan["summary"]["bytes_reclaimed"]
    registry.start()

    # Every kept tag still copies out completely (every platform of the index), and so does
    # the live untagged signature, by digest.
    copies = tmp_path / "copies"
    references = kept_references(h)
    assert references[-1] == f"{signature.repository}@{signature.digest}"
    for i, reference in enumerate(references):
        skopeo_copy_out(registry, reference, copies / str(i))
    copied = {p.name for i in range(len(references)) for p in (copies / str(i) / "blobs" / "sha256").iterdir()}
    assert {"sha256:" + d for d in copied} == h.live_blobs()
    assert set(after) == h.live_blobs()

    # A new crawl of what is left finds nothing more to delete.
    again = crawl_and_plan(root, tmp_path / "again")
    assert again["actions"] == [], again["actions"]

    # For contrast, the registry's GC with --delete-untagged, for real, on the dry run's copy:
    # it frees the bytes it announced, and the index and the signature are broken.
    damage = gc_damage(c, tmp_path)
    assert damage["bytes_removed"] == c.bytes(gc.blobs)
    assert set(damage["broken"]) == {"multi/cli:v1", f"{signature.repository}@{signature.digest}"}, damage
