"""apply-gc's OCI image layout target (regstat/apply/oci_layout.py) on layouts written by the
test builders (support/images.py) and edited as real tools leave them: several names on one
manifest, an unnamed entry, keys and annotations regstat does not know."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from support import images
from support.apply_runs import apply_json, regstat
from support.apply_targets import LiveTags, PlannedSet, blob_action, manifest_action, tag_action
from support.components import Registry
from support.expected import Populated
from support.oci_layouts import (
    REF_NAME,
    add_blob,
    add_root,
    blob_file,
    read_index_json,
    skopeo_to_layout,
    write_index_json,
)
from support.scenario import filler
from support.skopeo import skopeo_copy

from regstat.apply.oci_layout import OciLayoutTarget
from regstat.apply.target import DELETED, FAILED, GONE, SKIPPED
from regstat.apply.targets import OPENERS
from regstat.snapshot.info import SourceInfo
from regstat.sources.base import CrawlOptions

NAME = "layout"


def _image(name: str) -> images.Image:
    return images.build_image([images.make_layer({f"srv/{name}": filler(name, 400)})], labels={"name": name})


@pytest.fixture
def layout(tmp_path: Path) -> Path:
    """Tags a and b on one image, c on another, an unnamed entry for a third; index.json with
    an annotation of its own and a key no spec defines."""
    one, two, three = _image("one"), _image("two"), _image("three")
    path = images.write_oci_layout(tmp_path / NAME, {"a": one, "b": one, "c": two})
    for data in [*three.blobs.values(), three.manifest]:
        blob = blob_file(path, images.sha256_digest(data))
        blob.write_bytes(data)
    add_root(path, three.descriptor())
    document = read_index_json(path)
    document["annotations"] = {"org.opencontainers.image.created": "2024-01-01T00:00:00Z"}
    document["x-vendor"] = {"kept": [1, 2.5, None, "ü"]}
    document["manifests"][0]["annotations"]["io.example/note"] = "stays with its entry"
    write_index_json(path, document)
    return path


def _target(layout: Path) -> OciLayoutTarget:
    target = OPENERS["oci-layout"](SourceInfo(kind="oci-layout", location=str(layout), repository=NAME),
                                   CrawlOptions())
    assert isinstance(target, OciLayoutTarget)
    return target


def _digest(layout: Path, tag: str) -> str:
    return next(e["digest"] for e in read_index_json(layout)["manifests"]
                if (e.get("annotations") or {}).get(REF_NAME) == tag)


def test_live_tag_reads_index_json_now(layout: Path) -> None:
    target = _target(layout)
    assert target.live_tag(NAME, "a") == _digest(layout, "a")
    assert target.live_tag(NAME, "c") == _digest(layout, "c")
    assert target.live_tag(NAME, "nope") is None


def test_deleting_tags_rewrites_index_json_keeping_everything_else(layout: Path) -> None:
    before = read_index_json(layout)
    one, two = _digest(layout, "a"), _digest(layout, "c")
    mode = 0o640
    os.chmod(layout / "index.json", mode)
    target = _target(layout)
    a, c = tag_action(NAME, "a", one), tag_action(NAME, "c", one)  # c names another digest: not its entry
    assert [o.status for o in target.delete([a, c])] == [DELETED, GONE]
    after = read_index_json(layout)
    kept = [e for e in before["manifests"] if (e.get("annotations") or {}).get(REF_NAME) != "a"]
    assert after == {**before, "manifests": kept}
    assert len(kept) == len(before["manifests"]) - 1 and _digest(layout, "c") == two
    assert os.stat(layout / "index.json").st_mode & 0o777 == mode
    assert sorted(p.name for p in layout.iterdir()) == ["blobs", "index.json", "oci-layout"]  # no temporary left
    assert [o.status for o in target.delete([a])] == [GONE]  # applying again changes nothing
    assert read_index_json(layout) == after


def test_a_manifest_index_json_still_lists_is_refused(layout: Path) -> None:
    one = _digest(layout, "a")
    unnamed = read_index_json(layout)["manifests"][-1]["digest"]
    target = _target(layout)
    live = LiveTags().tag(NAME, "a", one).tag(NAME, "b", one)
    a, manifest = tag_action(NAME, "a", one), manifest_action(NAME, one)
    kept = target.refusal(manifest, PlannedSet().add([a, manifest]), live)
    assert kept is not None and (kept.status, kept.reason) == (SKIPPED, "tagged") and "b" in kept.detail
    root = target.refusal(manifest_action(NAME, unnamed), PlannedSet().add([manifest_action(NAME, unnamed)]), live)
    assert root is not None and (root.status, root.reason) == (SKIPPED, "root")
    # Its names gone, the manifest has left the layout; its blob goes in the blob phase.
    b = tag_action(NAME, "b", one)
    planned = PlannedSet().add([a, b, manifest])
    assert target.refusal(manifest, planned, live) is None
    assert [o.status for o in target.delete([a, b])] == [DELETED, DELETED]
    assert [o.status for o in target.delete([manifest])] == [DELETED]
    assert blob_file(layout, one).exists()


def test_blobs_are_unlinked_and_their_bytes_counted(layout: Path) -> None:
    image = _image("one")
    config = image.config.digest
    size = blob_file(layout, config).stat().st_size
    target = _target(layout)
    assert target.deletes_blobs
    outcome, = target.delete([blob_action(config)])
    assert (outcome.status, outcome.bytes_freed) == (DELETED, size) and size > 0
    assert not blob_file(layout, config).exists()
    again, = target.delete([blob_action(config)])
    assert (again.status, again.bytes_freed) == (GONE, 0)


def test_a_symbolic_link_is_never_followed(layout: Path, tmp_path: Path) -> None:
    outside = tmp_path / "outside"
    outside.write_bytes(b"not the layout's")
    digest = images.sha256_digest(b"planted")
    blob_file(layout, digest).symlink_to(outside)
    outcome, = _target(layout).delete([blob_action(digest)])
    assert (outcome.status, outcome.reason) == (FAILED, "not_a_blob")
    assert outside.read_bytes() == b"not the layout's" and blob_file(layout, digest).is_symlink()


def test_index_json_changed_by_another_writer_meanwhile_keeps_its_change(
    layout: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Another tool adds an entry while regstat rewrites index.json: regstat reads it again."""
    import regstat.apply.oci_layout as module

    one = _digest(layout, "a")
    extra = _image("extra")
    real = module._replace
    calls = []

    def racing(directory: int, data: bytes, before: object) -> bool:
        calls.append(data)
        if len(calls) == 1:  # the other writer wins the first race
            add_root(layout, extra.descriptor(), "pushed-meanwhile")
        return real(directory, data, before)  # type: ignore[arg-type]

    monkeypatch.setattr(module, "_replace", racing)
    assert [o.status for o in _target(layout).delete([tag_action(NAME, "a", one)])] == [DELETED]
    names = [(e.get("annotations") or {}).get(REF_NAME) for e in read_index_json(layout)["manifests"]]
    assert "pushed-meanwhile" in names and "a" not in names
    assert len(calls) == 2
    json.loads((layout / "index.json").read_bytes())


# --- end to end: a layout skopeo filled, crawl, plan-gc, apply-gc -----------------------------------


def _entries(layout: Path) -> dict[str | None, dict[str, Any]]:
    return {(e.get("annotations") or {}).get(REF_NAME): e for e in read_index_json(layout)["manifests"]}


def test_apply_gc_on_a_layout_skopeo_filled(populated_fs: Populated, registry_fs: Registry, tmp_path: Path) -> None:
    layout = tmp_path / "layout"
    for repo, tag, name in (("base/alpine", "3.19", "alpine"), ("apps/web", "v2", "web"), ("tools/cli", "v1", "cli")):
        skopeo_to_layout(populated_fs.registry, repo, tag, layout, name)
    garbage = add_blob(layout, b"a blob no manifest references\n" + filler("garbage", 300))
    snapshot, plan_path = tmp_path / "snap", tmp_path / "plan.json"
    for args in (["crawl", f"oci:{layout}", "-o", str(snapshot)],
                 ["plan-gc", str(snapshot), "--delete-tags", "^cli$", "--grace", "0s", "-o", str(plan_path)]):
        result = regstat(*args)
        assert result.returncode == 0, result.stderr
    plan = json.loads(plan_path.read_text())
    blobs = {a["digest"] for a in plan["actions"] if a["action"] == "delete_blob"}
    assert garbage in blobs and len([a for a in plan["actions"] if a["action"] == "delete_manifest"]) == 3
    before = _entries(layout)
    sizes = {digest: blob_file(layout, digest).stat().st_size for digest in blobs}

    done = apply_json(plan_path, "--yes")
    assert done["counts"]["deleted"] == len(plan["actions"]) and not done["items"], done
    assert _entries(layout) == {k: v for k, v in before.items() if k != "cli"}
    assert not any(blob_file(layout, digest).exists() for digest in blobs)
    assert done["bytes_freed"] == sum(sizes.values()) == plan["summary"]["bytes_reclaimed"]
    for name, repo in (("alpine", "copy/alpine"), ("web", "copy/web")):
        skopeo_copy(layout, name, registry_fs, repo, "v1", all_images=True)  # whole, every digest checked

    again = apply_json(plan_path, "--yes")
    assert again["counts"]["deleted"] == 0 and again["bytes_freed"] == 0, again
    assert _entries(layout) == {k: v for k, v in before.items() if k != "cli"}
