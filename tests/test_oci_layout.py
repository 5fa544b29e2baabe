"""The OCI image layout source, ``regstat crawl oci:PATH``.

A layout skopeo wrote from a real registry (``skopeo copy --all docker://… oci:DIR:TAG``,
several tags into one directory, the multi-arch index among them) must crawl to exactly what
the registry holds for those tags. Layouts written with ``images.write_oci_layout`` and edited
by hand cover what a client never writes: nested indexes, untagged roots, missing and damaged
blobs, garbage in ``blobs/``, an unreadable layout. The index graph walk itself is checked on
random graphs, cycles included.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pytest
from click.testing import CliRunner
from hypothesis import given, settings
from hypothesis import strategies as st

from support import images
from support.components import isolated_env
from support.crawls import assert_snapshot_matches
from support.expected import BlobRow, Populated
from support.oci_layouts import (
    REF_NAME,
    add_blob,
    add_manifest,
    add_root,
    blob_file,
    index_document,
    layout_expected,
    read_index_json,
    skopeo_to_layout,
    write_index_json,
)
from support.scenario import standard_scenario

from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.crawl import crawl_source
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SOURCE
from regstat.model import Descriptor, Manifest
from regstat.snapshot import STORED_TABLES
from regstat.sources import oci_layout
from regstat.sources.base import CrawlOptions
from regstat.sources.oci_layout import MAX_DEPTH, close_over_indexes, open_oci_layout

REPO_ROOT = Path(__file__).resolve().parent.parent
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


# --- helpers ----------------------------------------------------------------------------------


def run_crawl(source: str, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """``python -m regstat crawl SOURCE -o OUT ARGS`` in a child process: exit code, the
    snapshot's metadata (or {}), stderr."""
    argv = [sys.executable, "-m", "regstat", "crawl", source, "-o", str(out), *args]
    env = isolated_env()
    done = subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=60)
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return done.returncode, meta, done.stderr


def crawl(layout: Path | str, out: Path, *args: str) -> tuple[int, dict[str, Any], str]:
    """The same crawl in this process (faster): exit code, metadata, stderr."""
    result = CliRunner().invoke(main, ["crawl", f"oci:{layout}", "--output", str(out), *args])
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return result.exit_code, meta, result.stderr


def rows(out: Path, table: str) -> list[dict[str, Any]]:
    return digest_ids.read(out, table).to_pylist()


def errors(meta: dict[str, Any], kind: str | None = None) -> list[tuple[str | None, str, str]]:
    found = [(e["repository"], e["path"], e["kind"]) for e in meta["errors"] if kind in (None, e["kind"])]
    return sorted(found, key=lambda e: (e[0] or "", e[1], e[2]))


def unreferenced(out: Path) -> set[str]:
    """Stored blobs that no manifest of the snapshot is, or references (docs/design.md's definition)."""
    con = duckdb.connect()
    # The tables as readers see them: digests as text (regstat.snapshot.digest_ids).
    digest_ids.bind(con, {table: str(out / table / "*.parquet") for table in STORED_TABLES}, keyed=False)
    found = con.execute(
        """SELECT b.digest FROM blobs AS b WHERE b.stored
           AND NOT EXISTS (SELECT 1 FROM manifests AS m WHERE m.digest = b.digest)
           AND NOT EXISTS (SELECT 1 FROM descriptors AS d
                           WHERE d.digest = b.digest AND d.role IN ('config', 'layer', 'manifest'))"""
    ).fetchall()
    return {digest for (digest,) in found}


def mtime_us(path: Path) -> int:
    return os.lstat(path).st_mtime_ns // 1000


def as_us(moment: datetime) -> int:
    return (moment - EPOCH) // timedelta(microseconds=1)


# --- a layout skopeo wrote from the real registry ---------------------------------------------

# (registry repository, registry tag, layout tag); web's two tags name one manifest, cli is
# the OCI index (its children must be followed), the signature is a referrer whose subject
# (a Docker schema 2 image) is not in the layout.
SIGNATURE = "signature"
COPIED = [
    ("base/alpine", "3.19", "alpine-3.19"),
    ("apps/web", "latest", "web-latest"),
    ("apps/web", "v2", "web-v2"),
    ("tools/cli", "v1", "cli-v1"),
    ("apps/api", SIGNATURE, "api-sig"),
]


@pytest.fixture(scope="module")
def skopeo_layout(
    populated_fs: Populated, tmp_path_factory: pytest.TempPathFactory
) -> tuple[Path, dict[str, str]]:
    """A layout directory named ``mirror`` holding COPIED; returns it and layout tag -> digest."""
    registry, expected = populated_fs
    layout = tmp_path_factory.mktemp("skopeo") / "mirror"
    signature_tag = "sha256-" + expected.names["api_v1"].split(":", 1)[1] + ".sig"
    registry_tags = {(t.repository, t.tag): t.digest for t in expected.tags}
    tags = {}
    for repo, tag, layout_tag in COPIED:
        tag = signature_tag if tag == SIGNATURE else tag
        skopeo_to_layout(registry, repo, tag, layout, layout_tag)
        tags[layout_tag] = registry_tags[(repo, tag)]
    return layout, tags


@pytest.mark.registry
def test_crawl_of_a_skopeo_layout_is_what_the_registry_holds(
    populated_fs: Populated, skopeo_layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    layout, tags = skopeo_layout
    want = layout_expected(populated_fs.expected, "mirror", tags)
    assert len(want.manifests) == 6  # alpine, web, the cli index and its two children, the signature
    out = tmp_path / "snap"
    code, meta, stderr = run_crawl(f"oci:{layout}", out)
    assert code == EXIT_OK, stderr
    assert meta["complete"] and meta["errors"] == []
    assert meta["source"] == {"kind": "oci-layout", "location": str(layout), "repository": "mirror"}
    assert meta["capabilities"] == {
        "untagged_manifests": True,
        "unreferenced_blobs": True,
        "stored_blob_sizes": True,
        "push_times": "approximate",
        "pull_times": None,
        "locks": None,
    }
    assert_snapshot_matches(out, meta, want)
    # Times are the files': a tag's is index.json's, a manifest's and a blob's their blob's.
    assert {as_us(t["updated_at"]) for t in rows(out, "tags")} == {mtime_us(layout / "index.json")}
    for m in rows(out, "manifests"):
        assert as_us(m["pushed_at"]) == mtime_us(blob_file(layout, m["digest"]))
    for b in rows(out, "blobs"):
        assert as_us(b["modified_at"]) == mtime_us(blob_file(layout, b["digest"]))
    assert unreferenced(out) == set()


@pytest.mark.registry
def test_name_option_names_the_repository(
    populated_fs: Populated, skopeo_layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    layout, tags = skopeo_layout
    out = tmp_path / "snap"
    code, meta, stderr = run_crawl(f"oci:{layout}", out, "--name", "mirrors/tools")
    assert code == EXIT_OK, stderr
    assert meta["source"]["repository"] == "mirrors/tools"
    assert_snapshot_matches(out, meta, layout_expected(populated_fs.expected, "mirrors/tools", tags))


@pytest.mark.registry
def test_unreferenced_blobs_of_a_layout(
    populated_fs: Populated, skopeo_layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """Drop web's entries from index.json and add a stray blob: web's manifest is then just a
    blob (JSON or not), and it, its config and its own layer are unreferenced; the base layer
    it shares with alpine is not."""
    layout = tmp_path / "mirror"
    shutil.copytree(skopeo_layout[0], layout)
    document = read_index_json(layout)
    document["manifests"] = [
        e for e in document["manifests"] if not e["annotations"][REF_NAME].startswith("web-")
    ]
    write_index_json(layout, document)
    stray = add_blob(layout, b"a blob nothing references\n")
    out = tmp_path / "snap"
    code, meta, stderr = run_crawl(f"oci:{layout}", out)
    assert code == EXIT_OK, stderr
    names = populated_fs.expected.names
    web = {d.digest for d in populated_fs.expected.descriptors if d.manifest_digest == names["web_new"]}
    assert names["base_layer"] in web
    assert unreferenced(out) == {stray, names["web_new"]} | web - {names["base_layer"]}
    assert names["web_new"] not in {m["digest"] for m in rows(out, "manifests")}
    assert BlobRow(stray, 26, True) in {(b["digest"], b["size"], b["stored"]) for b in rows(out, "blobs")}


@pytest.mark.registry
def test_plan_gc_on_a_skopeo_layout_agrees_with_umoci_gc(
    populated_fs: Populated, skopeo_layout: tuple[Path, dict[str, str]], tmp_path: Path
) -> None:
    """skopeo's layout with the multi-arch index's entry unnamed and web's and the signature's
    entries removed: `plan-gc --untagged --grace 0s` keeps the index and its children, and
    deletes as blobs exactly what `umoci gc` removes (the manifests index.json no longer
    reaches and what only they used). umoci 0.4.7 refuses to collect while the signature,
    whose subject the layout lacks, is listed."""
    layout = tmp_path / "mirror"
    shutil.copytree(skopeo_layout[0], layout)
    document = read_index_json(layout)
    document["manifests"] = [e for e in document["manifests"]
                             if not e["annotations"][REF_NAME].startswith(("web-", "api-sig"))]
    for entry in document["manifests"]:
        if entry["annotations"][REF_NAME] == "cli-v1":
            del entry["annotations"]
    write_index_json(layout, document)
    snap = tmp_path / "snap"
    code, meta, stderr = run_crawl(f"oci:{layout}", snap)
    assert code == EXIT_OK, stderr
    names = populated_fs.expected.names
    result = CliRunner().invoke(main, ["plan-gc", str(snap), "--untagged", "--grace", "0s", "-f", "json"])
    assert result.exit_code == EXIT_OK, result.stderr
    plan = json.loads(result.stdout)
    assert [a for a in plan["actions"] if a["action"] != "delete_blob"] == []
    swept = {a["digest"] for a in plan["actions"]}
    assert {names["web_new"], names["signature"]} <= swept
    assert not {names["cli_index"], names["base_layer"]} & swept
    assert swept == unreferenced(snap)
    before = _stored_blobs(layout)
    done = subprocess.run(["umoci", "gc", "--layout", str(layout)], capture_output=True, text=True,
                          env=isolated_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert before - _stored_blobs(layout) == swept


# --- layouts written by hand --------------------------------------------------------------------


@pytest.fixture(scope="module")
def scenario() -> Any:
    return standard_scenario()


@pytest.fixture
def layout(tmp_path: Path, scenario: Any) -> Path:
    """``layout``: alpine tagged ``alpine``, the cli index tagged ``cli``."""
    tagged = {"alpine": scenario.alpine, "cli": scenario.cli_index}
    return images.write_oci_layout(tmp_path / "layout", tagged)


def test_nested_index_and_untagged_roots(layout: Path, tmp_path: Path, scenario: Any) -> None:
    """An index listing an index (children followed two levels down), and index.json entries
    without a ref.name: roots all the same, untagged."""
    outer = index_document([scenario.cli_index.descriptor(), scenario.alpine.descriptor()])
    outer_digest = add_blob(layout, outer)
    add_root(layout, images.Descriptor(images.OCI_INDEX, outer_digest, len(outer)), "nested")
    add_manifest(layout, scenario.web_old)
    add_root(layout, scenario.web_old.descriptor())  # no ref.name
    document = read_index_json(layout)
    del document["manifests"][0]["annotations"]  # the alpine entry loses its tag
    write_index_json(layout, document)

    code, meta, stderr = crawl(layout, tmp_path / "snap")
    assert code == EXIT_OK, stderr
    cli_children = {child.digest for child in scenario.cli_index.children}
    manifests = {m["digest"]: m for m in rows(tmp_path / "snap", "manifests")}
    assert set(manifests) == {
        outer_digest, scenario.cli_index.digest, scenario.alpine.digest, scenario.web_old.digest
    } | cli_children
    assert all(m["repository"] == "layout" and m["status"] == "ok" for m in manifests.values())
    tags = {(t["tag"], t["digest"]) for t in rows(tmp_path / "snap", "tags")}
    assert tags == {("cli", scenario.cli_index.digest), ("nested", outer_digest)}
    outer_rows = [d for d in rows(tmp_path / "snap", "descriptors") if d["manifest_digest"] == outer_digest]
    assert [(d["role"], d["digest"]) for d in outer_rows] == [
        ("manifest", scenario.cli_index.digest), ("manifest", scenario.alpine.digest)
    ]
    assert unreferenced(tmp_path / "snap") == set()


def _stored_blobs(layout: Path) -> set[str]:
    return {f"{path.parent.name}:{path.name}" for path in (layout / "blobs").glob("*/*")}


def test_plan_gc_keeps_what_index_json_lists_and_sweeps_the_rest_as_umoci_gc_does(
    layout: Path, tmp_path: Path, scenario: Any
) -> None:
    """index.json is the root set: an entry without a ref.name is kept by `plan-gc --untagged`
    (it is not orphaned, and explain says why), while a manifest blob index.json does not
    reach is an unreferenced blob, with its own config and layers. `umoci gc` on a copy of the
    layout removes exactly the blobs the plan deletes."""
    add_manifest(layout, scenario.web_old)
    add_root(layout, scenario.web_old.descriptor())  # no ref.name
    add_manifest(layout, scenario.web_new)  # in blobs/, but index.json does not reach it
    stray = add_blob(layout, b"a blob nothing references\n")
    snap = tmp_path / "snap"
    code, meta, stderr = crawl(layout, snap)
    assert code == EXIT_OK, stderr
    roots = {m["digest"]: m["root"] for m in rows(snap, "manifests")}
    assert roots[scenario.web_old.digest] is True
    assert {d for d, root in roots.items() if not root} == {
        scenario.alpine.digest, scenario.cli_index.digest, *(c.digest for c in scenario.cli_index.children)}

    result = CliRunner().invoke(main, ["plan-gc", str(snap), "--untagged", "--grace", "0s", "-f", "json"])
    assert result.exit_code == EXIT_OK, result.stderr
    plan = json.loads(result.stdout)
    assert [a for a in plan["actions"] if a["action"] != "delete_blob"] == []
    swept = {a["digest"]: a["reason"] for a in plan["actions"]}
    kept_blobs = {*scenario.web_old.blobs, *scenario.alpine.blobs}
    assert set(swept) == ({scenario.web_new.digest, *scenario.web_new.blobs} - kept_blobs) | {stray}
    assert set(swept.values()) == {"unreferenced"}

    # umoci's mark-and-sweep from index.json removes the same blobs.
    copy = tmp_path / "umoci"
    shutil.copytree(layout, copy)
    before = _stored_blobs(copy)
    done = subprocess.run(["umoci", "gc", "--layout", str(copy)], capture_output=True, text=True,
                          env=isolated_env(), timeout=60)
    assert done.returncode == 0, done.stderr
    assert before - _stored_blobs(copy) == set(swept)

    # The report counts no orphan; explain says what keeps the unnamed entry.
    report = json.loads(CliRunner().invoke(main, ["report", str(snap), "--format", "json"]).stdout)
    assert report["orphaned_manifests"] == 0 and report["orphaned_manifest_bytes"] == 0
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(result.stdout)
    explained = CliRunner().invoke(main, ["explain", str(snap), scenario.web_old.digest, "--plan", str(plan_file)])
    assert explained.exit_code == EXIT_OK, explained.stderr
    assert "now:  kept: index.json lists it (an entry without a name)" in explained.stdout
    assert "plan: kept: protected (index.json lists it (an entry without a name))" in explained.stdout
    # Removing the name of alpine's entry, rather than the entry, keeps it too.
    document = read_index_json(layout)
    for entry in document["manifests"]:
        if entry["digest"] == scenario.alpine.digest:
            del entry["annotations"]
    write_index_json(layout, document)
    code, _, stderr = crawl(layout, tmp_path / "snap2")
    assert code == EXIT_OK, stderr
    result = CliRunner().invoke(main, ["plan-gc", str(tmp_path / "snap2"), "--untagged", "--keep", "0",
                                       "--grace", "0s", "-f", "json"])
    deleted = {(a["action"], a.get("tag"), a["digest"]) for a in json.loads(result.stdout)["actions"]
               if a["action"] != "delete_blob"}
    assert deleted == {("delete_tag", "cli", scenario.cli_index.digest),
                       ("delete_manifest", None, scenario.cli_index.digest)} | {
                          ("delete_manifest", None, c.digest) for c in scenario.cli_index.children}


def test_each_manifest_blob_is_read_once(
    layout: Path, tmp_path: Path, scenario: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Two indexes listing the same children, one child also a root: one read each."""
    again = index_document([*scenario.cli_index.child_descriptors, scenario.alpine.descriptor()])
    add_root(layout, images.Descriptor(images.OCI_INDEX, add_blob(layout, again), len(again)), "again")
    reads: Counter[str] = Counter()
    real = oci_layout.read_file

    def counting(location: str, path: str, limit: int) -> tuple[bytes, int]:
        reads[path] += 1
        return real(location, path, limit)

    monkeypatch.setattr(oci_layout, "read_file", counting)
    options = CrawlOptions()
    result = crawl_source(open_oci_layout(f"oci:{layout}", options), str(tmp_path / "snap"), options)
    assert result.complete
    assert reads.pop("oci-layout") == 1 and reads.pop("index.json") == 1
    assert set(reads.values()) == {1} and len(reads) == 5  # 2 indexes, 2 children, alpine


def test_a_cycle_can_only_be_written_under_false_digests(layout: Path, tmp_path: Path) -> None:
    """Digests make index cycles impossible; written under false names, each index is a
    digest mismatch, its children are not followed, and the crawl finishes."""
    a, b = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    add_blob(layout, index_document([images.Descriptor(images.OCI_INDEX, b, 100)]), a)
    add_blob(layout, index_document([images.Descriptor(images.OCI_INDEX, a, 100)]), b)
    add_root(layout, images.Descriptor(images.OCI_INDEX, a, 100), "loop")
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert [(repository, kind) for repository, _, kind in errors(meta)] == [("layout", "digest_mismatch")]
    statuses = {m["digest"]: m["status"] for m in rows(tmp_path / "snap", "manifests")}
    assert statuses[a] == "digest_mismatch" and b not in statuses
    assert meta["incomplete_repositories"] == ["layout"]


def test_indexes_nested_too_deep(layout: Path, tmp_path: Path, scenario: Any) -> None:
    chain = [scenario.alpine.descriptor()]
    for _ in range(MAX_DEPTH + 1):  # alpine ends up MAX_DEPTH + 2 manifests down
        body = index_document([chain[-1]])
        chain.append(images.Descriptor(images.OCI_INDEX, add_blob(layout, body), len(body)))
    write_index_json(layout, {"schemaVersion": 2, "manifests": [chain[-1].to_json()]})
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    deepest_read = chain[-MAX_DEPTH].digest
    assert errors(meta) == [("layout", f"blobs/sha256/{deepest_read[7:]}", "invalid_manifest")]
    assert "nest more than" in meta["errors"][0]["message"]
    manifests = {m["digest"] for m in rows(tmp_path / "snap", "manifests")}
    assert manifests == {d.digest for d in chain[-MAX_DEPTH:]}


def test_missing_blobs(layout: Path, tmp_path: Path, scenario: Any) -> None:
    """A missing manifest is an error against the repository; a missing layer is a blob the
    snapshot knows of but did not see stored (as in a registry's storage)."""
    child = scenario.cli_index.children[0]
    blob_file(layout, child.digest).unlink()
    layer = scenario.alpine.layers[0]
    blob_file(layout, layer.digest).unlink()
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    hex_ = child.digest.split(":")[1]
    assert errors(meta) == [("layout", f"blobs/sha256/{hex_}", "missing_blob")]  # the layout's own path
    manifests = {m["digest"]: m for m in rows(tmp_path / "snap", "manifests")}
    assert (manifests[child.digest]["status"], manifests[child.digest]["size"]) == ("missing", None)
    assert manifests[scenario.cli_index.digest]["status"] == "ok"
    blobs = {b["digest"]: b for b in rows(tmp_path / "snap", "blobs")}
    assert (blobs[layer.digest]["stored"], blobs[layer.digest]["size"]) == (False, layer.size)
    assert blobs[child.digest]["stored"] is False


def test_damaged_and_unknown_manifests(layout: Path, tmp_path: Path) -> None:
    bodies = {
        "invalid": b'{"schemaVersion": 2, "mediaType": "%s", "layers": 7}' % images.OCI_MANIFEST.encode(),
        "too_large": b'{"schemaVersion": 2, "annotations": {"x": "' + b"a" * (4 * 1024 * 1024) + b'"}}',
        "unknown_media_type": b'{"schemaVersion": 2, "mediaType": "application/vnd.example.thing.v1+json"}',
        "not_json": b"\x00\x01 not json",
    }
    digests = {status: add_blob(layout, body) for status, body in bodies.items()}
    digests["digest_mismatch"] = add_blob(layout, b"{}", "sha256:" + "c" * 64)
    for status, digest in digests.items():
        add_root(layout, images.Descriptor(images.OCI_MANIFEST, digest, 2), status)
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    statuses = {m["digest"]: m["status"] for m in rows(tmp_path / "snap", "manifests")}
    assert {status: statuses[d] for status, d in digests.items()} == {
        "invalid": "invalid",
        "too_large": "too_large",
        "unknown_media_type": "unknown_media_type",  # recorded as it is, not an error
        "not_json": "invalid",
        "digest_mismatch": "digest_mismatch",
    }
    kinds = Counter(kind for _, _, kind in errors(meta))
    assert kinds == {"invalid_manifest": 2, "manifest_too_large": 1, "digest_mismatch": 1}
    assert {e["repository"] for e in meta["errors"]} == {"layout"}


def test_garbage_in_blobs_is_outside_the_layout(layout: Path, tmp_path: Path) -> None:
    hex_ = "d" * 64
    garbage = ["blobs/README", "blobs/sha256/not-a-digest", f"blobs/sha256/{hex_.upper()}",
               f"blobs/md5/{'e' * 32}", f"blobs/sha256/{hex_}/data"]  # fmt: skip
    for path in garbage:
        (layout / path).parent.mkdir(parents=True, exist_ok=True)
        (layout / path).write_text("hello")
    secret = tmp_path / "secret.json"
    secret.write_text('{"schemaVersion": 2, "manifests": []}')
    linked = "sha256:" + images.sha256_digest(secret.read_bytes())[7:]
    os.symlink(secret, blob_file(layout, linked))
    os.mkfifo(blob_file(layout, "sha256:" + "f" * 64))  # reading it would block forever
    add_root(layout, images.Descriptor(images.OCI_INDEX, linked, 37), "linked")
    add_root(layout, images.Descriptor(images.OCI_INDEX, "sha256:" + "f" * 64, 37), "fifo")
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    outside = {path for repository, path, _ in errors(meta, "outside_layout") if repository is None}
    assert outside == set(garbage) | {f"blobs/sha256/{'f' * 64}"}
    assert errors(meta, "symlink") == [(None, f"blobs/sha256/{linked[7:]}", "symlink")]
    # Listed in index.json, neither is read: the symlink is not followed, the FIFO not read.
    assert [e[0] for e in errors(meta, "read_error")] == ["layout", "layout"]
    statuses = {m["digest"]: m["status"] for m in rows(tmp_path / "snap", "manifests")}
    assert statuses[linked] == statuses["sha256:" + "f" * 64] == "unreadable"
    stored = {b["digest"] for b in rows(tmp_path / "snap", "blobs") if b["stored"]}
    assert linked not in stored and "sha256:" + hex_ not in stored


def test_bad_index_json_entries_are_recorded(layout: Path, tmp_path: Path, scenario: Any) -> None:
    document = read_index_json(layout)
    document["manifests"] += [
        {"mediaType": images.OCI_MANIFEST, "size": 3},  # no digest
        {**scenario.alpine.descriptor().to_json(), "annotations": {REF_NAME: 7}},
        {**scenario.cli_index.descriptor().to_json(), "annotations": {REF_NAME: "alpine"}},  # tag twice
    ]
    write_index_json(layout, document)
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert errors(meta) == [("layout", "index.json", "invalid_manifest")] * 3
    # Every usable entry is still a root, and both digests the ambiguous tag names are kept.
    tags = sorted((t["tag"], t["digest"]) for t in rows(tmp_path / "snap", "tags"))
    alpine, cli = scenario.alpine.digest, scenario.cli_index.digest
    assert tags == sorted([("alpine", alpine), ("alpine", cli), ("cli", cli)])
    assert len(rows(tmp_path / "snap", "manifests")) == 4


def test_directory_name_that_is_not_a_repository_name(tmp_path: Path, scenario: Any) -> None:
    layout = images.write_oci_layout(tmp_path / "My Images", {"alpine": scenario.alpine})
    code, meta, _ = crawl(layout, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert errors(meta) == [("My Images", ".", "invalid_name")]
    assert "--name" in meta["errors"][0]["message"]
    assert {t["repository"] for t in rows(tmp_path / "snap", "tags")} == {"My Images"}  # as given
    code, meta, _ = crawl(layout, tmp_path / "snap2", "--name", "images/alpine")
    assert code == EXIT_OK and meta["source"]["repository"] == "images/alpine"
    code, meta, _ = crawl(layout, tmp_path / "snap3", "--name", "Images")
    assert code == EXIT_INCOMPLETE and errors(meta) == [("Images", ".", "invalid_name")]


def test_repository_filter_that_excludes_the_layout(layout: Path, tmp_path: Path) -> None:
    code, meta, _ = crawl(layout, tmp_path / "snap", "--repository", "other/*")
    assert code == EXIT_OK and meta["partial"] and not meta["complete"]
    assert meta["counts"]["manifests"] == meta["counts"]["tags"] == meta["counts"]["repositories"] == 0
    assert meta["capabilities"]["unreferenced_blobs"] is False
    assert all(b["stored"] for b in rows(tmp_path / "snap", "blobs"))
    # Only the stored blobs name digests: `digests` holds theirs, each once.
    assert meta["counts"]["digests"] == meta["counts"]["blobs"] == len(rows(tmp_path / "snap", "blobs")) > 0


def _unreadable(case: str, layout: Path) -> str:
    """Damage ``layout`` one way; return the SOURCE to crawl."""
    if case == "no such directory":
        return f"oci:{layout}-nope"
    if case == "a tag suffix":
        return f"oci:{layout}:alpine"
    if case == "no oci-layout":
        (layout / "oci-layout").unlink()
    elif case == "garbage oci-layout":
        (layout / "oci-layout").write_bytes(b"\xff\xfe")
    elif case == "layout version 2":
        (layout / "oci-layout").write_text('{"imageLayoutVersion": "2.0.0"}')
    elif case == "no index.json":
        (layout / "index.json").unlink()
    elif case == "garbage index.json":
        (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": [')
    elif case == "index.json not an index":
        document = {"schemaVersion": 2, "mediaType": images.OCI_MANIFEST, "manifests": []}
        (layout / "index.json").write_text(json.dumps(document))
    elif case == "index.json a symlink":
        shutil.move(layout / "index.json", layout.parent / "elsewhere.json")
        os.symlink(layout.parent / "elsewhere.json", layout / "index.json")
    elif case == "no blobs":
        shutil.rmtree(layout / "blobs")
    return f"oci:{layout}"


@pytest.mark.parametrize(
    "case, says",
    [
        ("no such directory", "no such directory"),
        ("a tag suffix", "crawled whole"),
        ("no oci-layout", "no oci-layout file"),
        ("garbage oci-layout", "oci-layout: not a JSON object"),
        ("layout version 2", "not 1.x"),
        ("no index.json", "no index.json file"),
        ("garbage index.json", "index.json: not a JSON object"),
        ("index.json not an index", "not an OCI image index"),
        ("index.json a symlink", "symbolic link"),
        ("no blobs", "no blobs directory"),
    ],
)
def test_unreadable_layout_is_one_clear_line(layout: Path, tmp_path: Path, case: str, says: str) -> None:
    source = _unreadable(case, layout)
    code, meta, stderr = crawl(source[len("oci:") :], tmp_path / "snap")
    assert code == EXIT_SOURCE, stderr
    assert says in stderr and len(stderr.strip().splitlines()) == 1 and "Traceback" not in stderr
    assert not (tmp_path / "snap").exists()


# --- the index graph ------------------------------------------------------------------------------


def node(i: int) -> str:
    return f"sha256:{i:064x}"


def graph_reader(edges: dict[int, list[int]], missing: set[int], reads: Counter[str]) -> Any:
    """A `read` for close_over_indexes over a synthetic graph: node i is an index listing
    edges[i], or a missing blob."""

    def read(digest: str) -> Any:
        reads[digest] += 1
        i = int(digest[7:], 16)
        if i in missing:
            return digest, "missing", "gone"
        children = tuple(
            Descriptor("manifest", p, node(c), images.OCI_INDEX, 1) for p, c in enumerate(edges.get(i, []))
        )
        return Manifest(digest, 1, images.OCI_INDEX, descriptors=children)

    return read


def test_cycles_are_reported_and_diamonds_are_not() -> None:
    reads: Counter[str] = Counter()
    diamond = {0: [1, 2], 1: [3], 2: [3]}
    closure = close_over_indexes([node(0)], graph_reader(diamond, set(), reads))
    assert list(closure.manifests) == [node(0), node(1), node(2), node(3)] and closure.problems == []
    loops = {0: [0, 1], 1: [2], 2: [1]}
    closure = close_over_indexes([node(0)], graph_reader(loops, set(), reads))
    assert set(closure.manifests) == {node(0), node(1), node(2)}
    assert sorted(digest for digest, _ in closure.problems) == [node(0), node(2)]
    assert all("cycle" in message for _, message in closure.problems)


@st.composite
def graphs(draw: Any) -> tuple[int, dict[int, list[int]], list[int], set[int], int]:
    size = draw(st.integers(1, 12))
    ids = st.integers(0, size - 1)
    edges = {i: draw(st.lists(ids, max_size=4)) for i in range(size)}
    roots = draw(st.lists(ids, min_size=1, max_size=4))
    missing = draw(st.sets(ids, max_size=3))
    return size, edges, roots, missing, draw(st.integers(1, 6))


def _distances(edges: dict[int, list[int]], roots: list[int], missing: set[int]) -> dict[int, int]:
    """Shortest number of manifests from index.json down to each node (roots: 1)."""
    distance = {r: 1 for r in roots}
    frontier = list(dict.fromkeys(roots))
    while frontier:
        following = []
        for n in frontier:
            for c in [] if n in missing else edges[n]:
                if c not in distance:
                    distance[c] = distance[n] + 1
                    following.append(c)
        frontier = following
    return distance


def _has_cycle(nodes: set[int], edges: dict[int, list[int]], missing: set[int]) -> bool:
    """Kahn's algorithm on the subgraph of `nodes`: a cycle leaves nodes unpeeled."""
    sub = {n: [c for c in edges[n] if c in nodes] if n not in missing else [] for n in nodes}
    incoming = Counter(c for n in sub for c in sub[n])
    free = [n for n in nodes if not incoming[n]]
    peeled = 0
    while free:
        n = free.pop()
        peeled += 1
        for c in sub[n]:
            incoming[c] -= 1
            if not incoming[c]:
                free.append(c)
    return peeled < len(nodes)


@settings(max_examples=300, deadline=None)
@given(graphs())
def test_random_index_graphs(graph: tuple[int, dict[int, list[int]], list[int], set[int], int]) -> None:
    """Any graph, cycles and missing blobs included: no crash, every manifest within the depth
    bound read exactly once, nothing beyond it, and a problem for each cycle or cut-off."""
    size, edges, roots, missing, max_depth = graph
    reads: Counter[str] = Counter()
    closure = close_over_indexes([node(r) for r in roots], graph_reader(edges, missing, reads), max_depth)
    distance = _distances(edges, roots, missing)
    within = {n for n, d in distance.items() if d <= max_depth}
    assert set(closure.manifests) == {node(n) for n in within}
    assert set(reads.values()) == {1}
    messages = [message for _, message in closure.problems]
    assert any("nest more than" in m for m in messages) == any(d > max_depth for d in distance.values())
    assert any("cycle" in m for m in messages) == _has_cycle(within, edges, missing)
