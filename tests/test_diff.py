"""`regstat diff OLD NEW` on real crawls: a copy of sample_data/ crawled, changed through the
real registry serving it (a tag moved, a manifest deleted, an image pushed with skopeo) and on
disk (a tag deleted), crawled again, from its storage and through its API. Each change must
appear exactly; the figures then and now must be each snapshot's own `regstat report`."""

from __future__ import annotations

import json
import shutil
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.components import Registry
from support.crawls import api_crawl, crawl_ok, crawled, rows, sample_copy
from support.images import build_image, make_layer, write_oci_layout
from support.skopeo import skopeo_copy

from regstat.cli import main
from regstat.errors import EXIT_GROWTH, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE
from regstat.sizes import parse_size

MOVED = ("apps/docs", "latest")
MOVED_TO = "sha256:0ed9ebe3006462c1a54dc7932dff909cd1623daf67f408afdd67c8f27a59ba0e"  # an apps/docs orphan
DELETED_MANIFEST = ("apps/docs", "sha256:d9bef0eafbb4325e032adbadd1238459db2ab7ad5b1adbf68416f2d55a74e930")
DELETED_TAG = ("apps/web", "staging")
PUSHED = ("apps/diff-new", "v1")
V2 = ("docker", "registry", "v2", "repositories")


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


def diff_json(old: Path, new: Path, *args: str) -> dict[str, Any]:
    result = invoke("diff", str(old), str(new), "--format", "json", "--top", "1000", *args)
    assert result.exit_code == EXIT_OK, result.output + result.stderr
    return json.loads(result.stdout)


def report_json(snapshot: Path) -> dict[str, Any]:
    result = invoke("report", str(snapshot), "--format", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def tag_map(snapshot: Path) -> dict[tuple[str, str], str]:
    return {(r, t): d for r, t, d in rows(snapshot, "tags", ["repository", "tag", "digest"])}


def orphans(snapshot: Path) -> set[tuple[str, str]]:
    result = invoke("sql", str(snapshot), "SELECT repository, digest FROM orphaned_manifests", "--format", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    return {(r["repository"], r["digest"]) for r in json.loads(result.stdout)}


@pytest.fixture(scope="module")
def crawls(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """Snapshots of a sample_data copy before and after the changes, from its storage (fs_*)
    and through the registry's API (api_*), and the pushed image."""
    base = tmp_path_factory.mktemp("diff")
    tree = sample_copy(base / "tree")
    image = build_image([make_layer({"srv/app": b"diff test " * 300}), make_layer({"etc/conf": b"x" * 70})],
                        labels={"test": "regstat diff"})
    with Registry(root=tree, workdir=base / "registry") as registry:
        crawl_ok(tree, base / "fs_old")
        crawled(api_crawl(registry.url, base / "api_old"), base / "api_old")
        # A tag moved to another manifest of its repository, by PUT of that manifest's body.
        body, media_type, _ = registry.get_manifest(MOVED[0], MOVED_TO)
        registry.put_manifest(MOVED[0], MOVED[1], body, media_type)
        registry.delete_manifest(*DELETED_MANIFEST)
        skopeo_copy(write_oci_layout(base / "layout", {"v1": image}), "v1", registry, *PUSHED)
        # The registry's API deletes no tag alone: as `regctl tag rm` would leave it, gone from disk.
        shutil.rmtree(tree.joinpath(*V2, DELETED_TAG[0], "_manifests", "tags", DELETED_TAG[1]))
        crawl_ok(tree, base / "fs_new")
        crawled(api_crawl(registry.url, base / "api_new"), base / "api_new")
    return {"base": base, "image": image, **{k: base / k for k in ("fs_old", "fs_new", "api_old", "api_new")}}


def test_each_change_appears_exactly(crawls: dict[str, Any]) -> None:
    old, new, image = crawls["fs_old"], crawls["fs_new"], crawls["image"]
    before = tag_map(old)
    data = diff_json(old, new)
    tags = {(t["repository"], t["tag"], t["change"], t["old_digest"], t["new_digest"]) for t in data["top"]["tags"]}
    assert tags == {
        (*MOVED, "moved", before[MOVED], MOVED_TO),
        (*DELETED_TAG, "removed", before[DELETED_TAG], None),
        (*PUSHED, "added", None, image.digest),
    }
    manifests = {(m["repository"], m["digest"], m["change"]) for m in data["top"]["manifests"]}
    assert manifests == {(*DELETED_MANIFEST, "removed"), (PUSHED[0], image.digest, "added")}
    new_orphans = {(o["repository"], o["digest"]) for o in data["top"]["new_orphans"]}
    assert new_orphans == orphans(new) - orphans(old)
    assert (MOVED[0], before[MOVED]) in new_orphans  # its only tag moved away
    layers = {(layer["digest"], layer["size"]) for layer in data["top"]["new_layers"]}
    assert layers == {(digest, len(blob)) for digest, blob in image.blobs.items()}
    assert data["changes"] == {
        "tags_added": 1, "tags_removed": 1, "tags_moved": 1, "manifests_added": 1, "manifests_removed": 1,
        "new_orphans": len(new_orphans), "new_layers": len(layers), "new_layer_bytes": sum(s for _, s in layers),
        "repositories_added": 1, "repositories_removed": 0,
    }
    repositories = {r["repository"]: r for r in data["top"]["repositories"]}
    assert repositories[PUSHED[0]]["status"] == "added"
    assert (repositories[MOVED[0]]["tags_moved"], repositories[MOVED[0]]["manifests_removed"]) == (1, 1)
    assert repositories[DELETED_TAG[0]]["tags_removed"] == 1
    unchanged = {r for r, in rows(old, "repositories", ["repository"])} - {MOVED[0], DELETED_TAG[0]}
    assert not unchanged & set(repositories), "a repository where nothing changed is listed"


def test_figures_are_each_snapshots_report(crawls: dict[str, Any]) -> None:
    old, new = crawls["fs_old"], crawls["fs_new"]
    data = diff_json(old, new)
    reports = {"old": report_json(old), "new": report_json(new)}
    for name in ("physical_bytes", "logical_bytes", "orphaned_manifest_bytes", "unreferenced_blob_bytes",
                 "reclaimable_now_bytes", "orphaned_manifests"):
        figure = data["figures"][name]
        assert (figure["old"], figure["new"]) == (reports["old"][name], reports["new"][name]), name
        assert figure["change"] == figure["new"] - figure["old"]
    assert data["figures"]["physical_bytes"]["change"] > 0  # the pushed image's blobs
    usage = {side: {r["repository"]: r for r in reports[side]["repositories"]} for side in reports}
    for row in data["top"]["repositories"]:
        for side in ("old", "new"):
            mine = usage[side].get(row["repository"])
            if mine is None:
                assert row[f"{side}_referenced_bytes"] is None
                continue
            for figure in ("referenced_bytes", "exclusive_bytes", "logical_bytes", "orphaned_bytes"):
                assert row[f"{side}_{figure}"] == mine[figure], (row["repository"], side, figure)


def test_fail_on_growth_exits_6_only_when_physical_bytes_grew_more(crawls: dict[str, Any]) -> None:
    old, new = crawls["fs_old"], crawls["fs_new"]
    growth = diff_json(old, new)["figures"]["physical_bytes"]["change"]
    out = crawls["base"] / "growth.json"
    result = invoke("diff", str(old), str(new), "--fail-on-growth", str(growth - 1), "-f", "json", "-o", str(out))
    assert result.exit_code == EXIT_GROWTH, result.stderr
    assert json.loads(out.read_text())["figures"]["physical_bytes"]["change"] == growth  # written before exit 6
    assert "--fail-on-growth" in result.stderr
    result = invoke("diff", str(old), str(new), "--fail-on-growth", str(growth), "-q")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "physical bytes grew by" in result.stdout and result.stderr == ""
    assert invoke("diff", str(new), str(old), "--fail-on-growth", "0", "-q").exit_code == EXIT_OK  # shrank
    assert invoke("diff", str(old), str(new), "--fail-on-growth", "1GiB", "-q").exit_code == EXIT_OK
    result = invoke("diff", str(old), str(new), "--fail-on-growth", "lots")
    assert result.exit_code == EXIT_USAGE and "not a size" in result.stderr


def test_sizes() -> None:
    assert parse_size("500MB") == 500_000_000
    assert parse_size("2GiB") == 2 * 1024**3
    assert parse_size("1.5 kB") == 1500
    assert parse_size("1048576") == 1048576
    assert parse_size("7b") == 7
    for bad in ("", "-1", "5XB", "1e9", "MB"):
        with pytest.raises(ValueError):
            parse_size(bad)


class _Cells(HTMLParser):
    """The text of every table cell, and the tags left open (a self-contained page closes all)."""

    def __init__(self) -> None:
        super().__init__()
        self.cells: list[str] = []
        self.open: list[str] = []
        self.external: list[str] = []
        self._in_cell = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag not in ("meta", "br", "rect", "line"):
            self.open.append(tag)
        if tag in ("td", "th"):
            self._in_cell = True
            self.cells.append("")
        self.external += [v or "" for k, v in attrs if k in ("src", "href")]
        if tag == "script":
            self.external.append("script")

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        pass

    def handle_endtag(self, tag: str) -> None:
        assert self.open and self.open[-1] == tag, (self.open[-3:], tag)
        self.open.pop()
        self._in_cell = self._in_cell and tag not in ("td", "th")

    def handle_data(self, data: str) -> None:
        if self._in_cell:
            self.cells[-1] += data


def test_every_format_renders_the_changes(crawls: dict[str, Any]) -> None:
    old, new, image = crawls["fs_old"], crawls["fs_new"], crawls["image"]
    short = image.digest[:19]
    text = invoke("diff", str(old), str(new)).stdout
    assert f"{PUSHED[0]}  {PUSHED[1]}" in text and "moved" in text and short in text
    assert "physical bytes grew by" in text

    markdown = invoke("diff", str(old), str(new), "-f", "markdown").stdout
    table_rows = [[c.strip() for c in line.strip("|").split("|")] for line in markdown.splitlines()
                  if line.startswith("|")]
    assert [PUSHED[0], PUSHED[1], "added", "-", short] in [[c.replace("\\", "") for c in r] for r in table_rows]
    assert markdown.count("\n") < 80  # a chat message, not the whole diff

    out = crawls["base"] / "diff.html"
    result = invoke("diff", str(old), str(new), "-f", "html", "-o", str(out))
    assert result.exit_code == EXIT_OK and "wrote" in result.stderr
    parser = _Cells()
    parser.feed(out.read_text())
    assert parser.open == [] and parser.external == []
    assert {PUSHED[0], PUSHED[1], "added", short, MOVED[0], "moved", DELETED_TAG[1], "removed"} <= set(parser.cells)


def test_repository_filter_limits_the_lists(crawls: dict[str, Any]) -> None:
    data = diff_json(crawls["fs_old"], crawls["fs_new"], "-r", "apps/docs")
    assert {t["repository"] for t in data["top"]["tags"]} == {"apps/docs"}
    assert data["changes"]["tags_added"] == 1  # the counts stay registry-wide, as the warning says
    assert any("--repository apps/docs" in w for w in data["warnings"])


def test_api_snapshots_diff_the_same_tags_and_leave_orphans_unknown(crawls: dict[str, Any]) -> None:
    storage = diff_json(crawls["fs_old"], crawls["fs_new"])["top"]["tags"]
    data = diff_json(crawls["api_old"], crawls["api_new"])
    assert data["top"]["tags"] == storage
    assert data["top"]["new_orphans"] is None and data["changes"]["new_orphans"] is None
    assert data["figures"]["orphaned_manifests"]["change"] is None and "orphaned_manifests" in data["unknown"]
    text = invoke("diff", str(crawls["api_old"]), str(crawls["api_new"])).stdout
    pushed = next(line for line in text.splitlines() if line.startswith(f"  {PUSHED[0]} ") and "added" in line)
    assert pushed.endswith("unknown"), pushed  # its orphaned bytes: unknown, not 0 B
    # The API sees tagged manifests only: the one the tag left is gone from its view.
    assert {(m["repository"], m["digest"], m["change"]) for m in data["top"]["manifests"]} >= {
        (PUSHED[0], crawls["image"].digest, "added")}


def test_different_sources_are_refused(crawls: dict[str, Any]) -> None:
    result = invoke("diff", str(crawls["fs_old"]), str(crawls["api_new"]))
    assert result.exit_code == EXIT_SNAPSHOT
    assert result.stderr.count("\n") == 1 and "different sources" in result.stderr and result.stdout == ""
    result = invoke("diff", str(crawls["fs_old"]), str(crawls["api_new"]), "--any-source", "-q", "-f", "json")
    assert result.exit_code == EXIT_OK, result.stderr


def test_output_inside_a_snapshot_is_refused(crawls: dict[str, Any]) -> None:
    inside = crawls["fs_old"] / "diff.txt"
    result = invoke("diff", str(crawls["fs_old"]), str(crawls["fs_new"]), "-o", str(inside))
    assert result.exit_code == EXIT_SNAPSHOT and not inside.exists()


def test_nightly_job_twice_diffs_history_selectors(tmp_path: Path) -> None:
    """The README's nightly job, run twice on a sample_data copy with a tag moved and one
    deleted in between: `diff HISTORY@-1 HISTORY` says exactly that."""
    tree, history = sample_copy(tmp_path / "tree"), tmp_path / "history"

    def nightly() -> None:
        result = invoke("crawl", str(tree), "--into", str(history), "--retain", "7", "--quiet")
        assert result.exit_code == EXIT_OK and result.stderr == "", result.stderr

    nightly()
    before = tag_map(history / "latest")
    tags = tree.joinpath(*V2, MOVED[0], "_manifests", "tags")
    (tags / MOVED[1] / "current" / "link").write_text(MOVED_TO)
    shutil.rmtree(tree.joinpath(*V2, DELETED_TAG[0], "_manifests", "tags", DELETED_TAG[1]))
    nightly()
    data = diff_json(Path(f"{history}@-1"), history)
    assert data["new"]["id"] != data["old"]["id"]
    tags = {(t["repository"], t["tag"], t["change"], t["old_digest"], t["new_digest"]) for t in data["top"]["tags"]}
    assert tags == {(*MOVED, "moved", before[MOVED], MOVED_TO), (*DELETED_TAG, "removed", before[DELETED_TAG], None)}
    assert data["top"]["manifests"] == [] and data["figures"]["physical_bytes"]["change"] == 0
