"""`regstat apply-gc` on a real docker-registry (distribution 2.8.2)'s storage tree, on disk
and in S3 (moto), filled with the shapes that make GC hazardous (tests/support/gc_hazards.py).

After crawl, plan-gc and apply-gc --yes: the tree is the tree before without exactly the
directories the plan names (and nothing else); the blob and upload data that left it is the
plan's bytes_reclaimed; every kept tag and live manifest still copies out whole with `skopeo
copy --all`; the registry's own `garbage-collect --dry-run` finds no blob left that regstat
should have deleted; a second apply deletes nothing. Between plan and apply, a tag moved
onto a planned manifest, a new image reusing a planned blob, and a referrer added to a
planned manifest are each skipped and reported, and nothing they need is deleted.
"""

from __future__ import annotations

import gzip
from pathlib import Path
from typing import Any

import pytest
from support import images
from support.apply_runs import apply_json, crawl_and_plan, expected_after, freed_data
from support.components import Registry
from support.gc_hazards import Hazards, fill, kept_references, run_gc, skopeo_copy_out
from support.storage_check import storage_view

pytestmark = pytest.mark.registry


def _copies_out(registry: Registry, references: list[str], work: Path) -> None:
    for i, reference in enumerate(references):
        skopeo_copy_out(registry, reference, work / "out" / str(i))


def _kept(h: Hazards) -> list[str]:
    """What must survive POLICY: every live reference but the tag the plan deletes."""
    return [r for r in kept_references(h) if r != "mount/dst:v1"]


@pytest.mark.parametrize("storage", ["fs", "s3"])
def test_apply_removes_exactly_the_plan(make_registry: Any, tmp_path: Path, storage: str) -> None:
    registry: Registry = make_registry(storage)
    h = fill(registry)
    plan_path, plan = crawl_and_plan(registry, tmp_path)
    view = storage_view(registry)
    before = view.files()
    kinds = {a["action"] for a in plan["actions"]}
    assert kinds == {"delete_tag", "delete_manifest", "delete_blob", "delete_upload"}, kinds

    dry = apply_json(plan_path)
    assert dry["dry_run"] and dry["counts"]["would_delete"] == len(plan["actions"]), dry
    assert view.files() == before, "a dry run deletes nothing"
    assert not Path(f"{plan_path}.journal").exists()

    done = apply_json(plan_path, "--yes")
    after = view.files()
    assert done["counts"]["deleted"] == len(plan["actions"]) and done["items"] == [], done
    assert after == expected_after(plan, before)
    assert freed_data(before, after) == plan["summary"]["bytes_reclaimed"]
    assert done["bytes_freed"] == sum(before.values()) - sum(after.values())

    _copies_out(registry, _kept(h), tmp_path)
    assert registry.config_path is not None
    gc = run_gc(registry.config_path, dry_run=True, delete_untagged=False)
    assert gc.blobs == set(), f"the registry's GC still finds garbage:\n{gc.output}"

    again = apply_json(plan_path, "--yes")
    assert again["counts"]["deleted"] == 0 and again["counts"]["gone"] == len(plan["actions"]), again
    assert view.files() == after


def test_races_between_plan_and_apply_are_skipped(make_registry: Any, tmp_path: Path) -> None:
    registry: Registry = make_registry("fs")
    h = fill(registry)
    plan_path, plan = crawl_and_plan(registry, tmp_path)
    by_role = {p.role: p for p in h.manifests}
    planned = {(a["repository"], a["digest"]) for a in plan["actions"] if a["action"] == "delete_manifest"}
    planned_blobs = {a["digest"] for a in plan["actions"] if a["action"] == "delete_blob"}

    # 1. The tag the plan deletes moves onto a manifest the plan deletes.
    moved_onto = by_role["digest-only image mount/dst (layer kept in mount/src)"]
    assert moved_onto.key in planned
    registry.put_manifest("mount/dst", "v1", moved_onto.manifest.manifest, moved_onto.manifest.media_type)
    # 2. A new image reuses a blob the plan deletes (the old web/app's own layer).
    old_web = by_role["old web/app:latest"]
    assert isinstance(old_web.manifest, images.Image)
    reused = old_web.manifest.layers[-1]
    assert reused.digest in planned_blobs
    data = old_web.manifest.blobs[reused.digest]
    layer = images.Layer(data, images.sha256_digest(gzip.decompress(data)))
    newcomer = images.build_image([layer], labels={"name": "newcomer"})
    registry.push_image("race/new", newcomer, "v1")
    # 3. A referrer added to a manifest the plan deletes (the digest-only index).
    nightly = by_role["digest-only index multi/cli"]
    assert nightly.key in planned
    referrer = images.build_referrer(nightly.manifest.descriptor(), b"signed late\n")
    registry.push_image("multi/cli", referrer)

    done = apply_json(plan_path, "--yes")
    skipped = {(i["action"], i["repository"], i["digest"]): i["reason"] for i in done["items"]}
    assert done["counts"]["failed"] == 0
    v1 = by_role["tagged image mount/dst:v1 (mounted layer)"]
    assert skipped[("delete_tag", "mount/dst", v1.digest)] == "tag_moved"
    assert skipped[("delete_manifest", "mount/dst", moved_onto.digest)] == "tagged"
    assert skipped[("delete_manifest", "multi/cli", nightly.digest)] == "referenced"
    for child in nightly.references():  # they wait on the index, which stays
        assert skipped[("delete_manifest", "multi/cli", child)] == "referenced"
    assert skipped[("delete_blob", None, reused.digest)] == "blob_referenced"
    assert set(done["skipped_by_reason"]) == {"tag_moved", "tagged", "referenced", "blob_referenced"}

    _copies_out(registry, [*_kept(h), "mount/dst:v1", "race/new:v1", f"multi/cli@{nightly.digest}",
                           f"multi/cli@{referrer.digest}"], tmp_path)
    assert registry.config_path is not None
    gc = run_gc(registry.config_path, dry_run=True, delete_untagged=False)
    assert gc.blobs == set(), f"the registry's GC still finds garbage:\n{gc.output}"
