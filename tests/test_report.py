"""`regstat report`: exact figures on hand-built snapshots, one per rule of docs/design.md, and on
scenario_tree; unknowns never shown as zero; the HTML's charts, self-containment and escaping.

Expected numbers are worked out by hand here (sizes from test_analysis.build: manifest m<i>
is 100 + i bytes, blob b<i> is 1000 * (i + 1); every manifest and blob is stored except b4),
or for scenario_tree by test_analysis.Model, never by running the report's SQL.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import datetime, timezone
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from expected import Populated
from test_analysis import BLOBS, MANIFESTS, NAMES, SAMPLE, Model, build, write_snapshot
from test_crawl_registry import crawl_ok

from regstat import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_SNAPSHOT
from regstat.report import Report, build_report
from regstat.report_html import ORPHANED_TITLE, SHARING_TITLE, STORAGE_TITLE, render_html
from regstat.render import to_json_value
from regstat.report_render import render_json, render_markdown, render_text
from regstat.snapshot import TABLES, Snapshot

m, b = MANIFESTS, BLOBS
ALL_MANIFEST_BYTES = sum(100 + i for i in range(7))  # 721: build() stores every manifest blob


def image(layers=(), config=None, children=(), subject=None) -> dict:
    return {"children": list(children), "subject": subject, "config": config, "layers": list(layers)}


def contents(**given: dict) -> dict:
    """Contents for all of MANIFESTS: the named ones (m0=..., m3=...) as given, others empty."""
    return {d: given.get(f"m{i}", image()) for i, d in enumerate(MANIFESTS)}


def report_of(tmp_path: Path, tables: dict, **meta_changes) -> Report:
    snapshot = write_snapshot(tmp_path / "s", tables)
    if meta_changes:
        meta = json.loads((snapshot.path / "snapshot.json").read_text())
        meta.update(meta_changes)
        (snapshot.path / "snapshot.json").write_text(json.dumps(meta))
        snapshot = Snapshot.open(snapshot.path)
    return build_report(snapshot)


def usage(report: Report) -> dict[str, tuple]:
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes", "orphaned_bytes")
    return {r["repository"]: tuple(r[k] for k in keys) for r in report.repositories}


def figures(report: Report) -> dict:
    return {k: v for k, v in report.to_json().items() if k.endswith(("_bytes", "_manifests", "_blobs"))}


# --- one rule each -------------------------------------------------------------------------------


def test_shared_layer_across_repositories(tmp_path: Path) -> None:
    # a:m0 = b0 + b1 + config b2; b:m1 = b0 + config b3. b0 is shared.
    tables = build(
        contents(m0=image([b[0], b[1]], b[2]), m1=image([b[0]], b[3])), {"a": [m[0]], "b/c": [m[1]]},
        {"a": [m[0]], "b/c": [m[1]]},
    )
    report = report_of(tmp_path, tables)
    assert figures(report) == {
        "physical_bytes": ALL_MANIFEST_BYTES + 1000 + 2000 + 3000 + 4000,
        "logical_bytes": (1000 + 2000 + 3000) + (1000 + 4000),
        "dedup_savings_bytes": 1000,
        "orphaned_manifests": 0,
        "orphaned_blobs": 0,
        "orphaned_manifest_bytes": 0,
        "unreferenced_blobs": 5,  # manifest blobs m2..m6 that no repository holds
        "unreferenced_blob_bytes": 102 + 103 + 104 + 105 + 106,
    }
    assert usage(report) == {
        "a": (1, 1, 0, 6000, 100 + 2000 + 3000, 1000, 0),
        "b/c": (1, 1, 0, 5000, 101 + 4000, 1000, 0),
    }
    assert report.most_shared_layers[0]["digest"] == b[0] and report.most_shared_layers[0]["repositories"] == 2
    assert [r["digest"] for r in report.largest_layers] == [b[3], b[2], b[1], b[0]]
    assert report.orphaned_by_repository == [] and report.unknown == {} and report.estimates == {}


def test_orphan_cascade_through_an_index(tmp_path: Path) -> None:
    # Untagged index m0 lists m1 and m2; m2 shares config b1 with m1 and layer b2 with the
    # tagged m3. Deleting m0, m1 and m2 together frees m0, m1, m2, b0 and b1, not b2.
    tables = build(
        contents(
            m0=image(children=[m[1], m[2]]), m1=image([b[0]], b[1]), m2=image([b[2]], b[1]), m3=image([b[2]], b[3])
        ),
        {"a": [m[0], m[1], m[2], m[3]]},
        {"a": [m[3]]},
    )
    report = report_of(tmp_path, tables)
    freed = 100 + 101 + 102 + 1000 + 2000
    assert report.summary["orphaned_manifests"] == 3
    assert report.summary["orphaned_blobs"] == 5
    assert report.summary["orphaned_manifest_bytes"] == freed
    # Not the sum of each orphan's own exclusive bytes (m0: 100, m1: b0, m2: 0).
    assert freed != 100 + 1000
    assert report.summary["unreferenced_blob_bytes"] == 104 + 105 + 106  # never the orphans' blobs
    logical = (1000 + 2000) + (3000 + 2000) + (3000 + 4000)  # m1, m2, m3
    assert usage(report)["a"] == (1, 4, 3, logical, 100 + 101 + 102 + 103 + 1000 + 2000 + 3000 + 4000, 0, freed)
    assert report.orphaned_by_repository == [
        {"repository": "a", "orphaned_manifests": 3, "orphaned_bytes": freed, "shared_orphaned_bytes": 0}
    ]


def test_referrer_of_a_kept_image_is_kept(tmp_path: Path) -> None:
    # m1 signs the tagged m0: kept. m2 refers to m4, which the repository lacks: orphaned.
    tables = build(
        contents(m0=image([b[0]]), m1=image([b[1]], subject=m[0]), m2=image([b[2]], subject=m[4])),
        {"a": [m[0], m[1], m[2]]},
        {"a": [m[0]]},
    )
    report = report_of(tmp_path, tables)
    assert report.summary["orphaned_manifests"] == 1
    assert report.summary["orphaned_manifest_bytes"] == 102 + 3000
    assert usage(report)["a"][2:] == (1, 1000 + 2000 + 3000, 100 + 101 + 102 + 6000, 0, 3102)


def test_same_manifest_in_two_repositories(tmp_path: Path) -> None:
    # m0 (b0 + config b1) is tagged in a and untagged in b/c: b/c's copy is orphaned but frees
    # nothing, since a keeps every blob it references.
    tables = build(contents(m0=image([b[0]], b[1])), {"a": [m[0]], "b/c": [m[0]]}, {"a": [m[0]]})
    report = report_of(tmp_path / "one", tables)
    assert report.summary["orphaned_manifests"] == 1
    assert report.summary["orphaned_manifest_bytes"] == 0
    assert report.summary["logical_bytes"] == 2 * 3000 and report.summary["dedup_savings_bytes"] == 3000
    assert usage(report) == {"a": (1, 1, 0, 3000, 0, 3100, 0), "b/c": (0, 1, 1, 3000, 0, 3100, 0)}
    assert report.orphaned_by_repository == [
        {"repository": "b/c", "orphaned_manifests": 1, "orphaned_bytes": 0, "shared_orphaned_bytes": 0}
    ]

    # Untagged in both: deleting both copies frees m0, b0 and b1 once, though neither
    # repository's orphans free them alone.
    tables = build(contents(m0=image([b[0]], b[1])), {"a": [m[0]], "b/c": [m[0]]}, {})
    report = report_of(tmp_path / "both", tables)
    assert report.summary["orphaned_manifests"] == 2
    assert report.summary["orphaned_manifest_bytes"] == 3100
    assert [r["orphaned_bytes"] for r in report.repositories] == [0, 0]
    assert {r["repository"]: r["shared_orphaned_bytes"] for r in report.orphaned_by_repository} == {
        "a": 3100,
        "b/c": 3100,
    }


def test_unreferenced_blob(tmp_path: Path) -> None:
    tables = build(contents(m0=image([b[0]])), {"a": [m[0]]}, {"a": [m[0]]})
    report = report_of(tmp_path, tables)
    # Stored and referenced by nothing: m1..m6's manifest blobs, b1, b2, b3; b4 is not stored.
    assert report.summary["unreferenced_blobs"] == 9
    assert report.summary["unreferenced_blob_bytes"] == 101 + 102 + 103 + 104 + 105 + 106 + 2000 + 3000 + 4000
    assert report.summary["orphaned_manifest_bytes"] == 0


# --- what the source could not see ----------------------------------------------------------------

API_CAPABILITIES = {
    "untagged_manifests": False,
    "unreferenced_blobs": False,
    "stored_blob_sizes": False,
    "push_times": None,
    "pull_times": None,
    "locks": None,
}


def test_unknown_is_never_zero(tmp_path: Path) -> None:
    tables = build(contents(m0=image([b[0]], b[1])), {"a": [m[0]]}, {"a": [m[0]]})
    for row in tables["blobs"]:
        row["stored"] = False  # the API sees descriptors only
    report = report_of(
        tmp_path,
        tables,
        capabilities=API_CAPABILITIES,
        source={"kind": "distribution-api", "location": "https://registry.example"},
    )
    data = report.to_json()
    for name in ("orphaned_manifests", "orphaned_manifest_bytes", "unreferenced_blobs", "unreferenced_blob_bytes"):
        assert data[name] is None and "cannot see" in data["unknown"][name], name
    assert data["physical_bytes"] == ALL_MANIFEST_BYTES + 1000 + 2000 + 3000 + 4000 + 5000  # from descriptors
    assert "physical_bytes" in data["estimates"]
    assert data["repositories"][0]["orphaned_manifests"] is None and data["repositories"][0]["orphaned_bytes"] is None
    assert data["top"]["orphaned_by_repository"] is None

    text = render_text(report)
    line = {label: rest for label, rest in re.findall(r"^  (\S.*?\S)  +(\S.*)$", text, re.M)}
    assert line["orphaned manifests"] == "unknown"
    assert line["freed by deleting every orphaned manifest"] == "unknown"
    assert line["in blobs no manifest references"] == "unknown"
    assert line["physical (distinct stored blobs)"].endswith("(estimate)")
    markdown = render_markdown(report)
    assert "| orphaned manifests | unknown |" in markdown and "(estimate)" in markdown
    page = render_html(report)
    assert "unknown" in page and "(estimate)" in page
    assert json.loads(render_json(report))["orphaned_manifest_bytes"] is None


def test_incomplete_snapshot_is_flagged_everywhere(tmp_path: Path) -> None:
    tables = build(contents(m0=image([b[0]])), {"a": [m[0]]}, {"a": [m[0]]})
    error = {"repository": "a", "path": "x/link", "kind": "bad_link", "message": "empty"}
    report = report_of(tmp_path, tables, complete=False, errors=[error], incomplete_repositories=["a"])
    assert report.to_json()["complete"] is False
    assert report.warnings[0].startswith("INCOMPLETE snapshot")
    assert "INCOMPLETE" in render_text(report).splitlines()[0]
    assert "INCOMPLETE" in render_markdown(report).split("\n\n")[1]
    page = render_html(report)
    assert re.search(r'<div class="banner" role="alert">\s*<p>INCOMPLETE', page)


# --- scenario_tree -------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snap") / "s"
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    return out


def test_sample_report(sample: Path) -> None:
    model = Model({name: digest_ids.read(sample, name).to_pylist() for name in TABLES})
    result = CliRunner().invoke(main, ["report", str(sample), "--format", "json"])
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    physical, logical, savings = model.dedup_summary()
    orphans = model.orphans()
    unreferenced = model.unreferenced_blobs()
    assert orphans == {("apps/web", NAMES["web_old"])}
    assert (data["physical_bytes"], data["logical_bytes"], data["dedup_savings_bytes"]) == (physical, logical, savings)
    assert data["orphaned_manifests"] == len(orphans)
    assert data["orphaned_manifest_bytes"] == model.exclusive_bytes(orphans)
    assert data["unreferenced_blobs"] == len(unreferenced)
    assert data["unreferenced_blob_bytes"] == sum(model.size(d) for d in unreferenced)
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes", "orphaned_bytes")
    assert {r["repository"]: tuple(r[k] for k in keys) for r in data["repositories"]} == model.repository_usage()
    assert data["snapshot"]["complete"] is True and data["snapshot"]["source"]["kind"] == "storage-layout"
    assert data["unknown"] == {} and data["estimates"] == {} and data["warnings"] == []
    assert data["top"]["largest_layers"][0]["digest"] == NAMES["base_layer"]
    assert data["top"]["orphaned_by_repository"][0]["repository"] == "apps/web"


def test_json_writes_a_repository_a_line_and_the_same_document(sample: Path) -> None:
    report = build_report(Snapshot.open(sample))
    # A value the encoder cannot write by itself goes through to_json_value, as elsewhere.
    odd = {"repository": "z/odd", "seen": datetime(2026, 1, 2, 3, 4, 5, tzinfo=timezone.utc), "bytes": Decimal(7)}
    with_odd = dataclasses.replace(report, repositories=[*report.repositories, odd])
    for case in (report, with_odd, dataclasses.replace(report, repositories=[])):
        text = render_json(case)
        assert json.loads(text) == json.loads(json.dumps(to_json_value(case.to_json())))
        lines = text.splitlines()
        for row in case.repositories:  # each row whole on one line
            found = [line for line in lines if line.startswith(f'  {{"repository": {json.dumps(row["repository"])}')]
            assert len(found) == 1 and found[0].rstrip(",").endswith("}")
    assert json.loads(render_json(with_odd))["repositories"][-1] == {
        "repository": "z/odd", "seen": "2026-01-02T03:04:05Z", "bytes": 7
    }


@pytest.mark.registry
def test_report_on_a_crawl_of_the_real_registry(populated_fs: Populated, tmp_path: Path) -> None:
    """The registry the tests fill with skopeo and the HTTP API: the report agrees with the
    definitions applied to what was pushed (tests/expected.py), not to what the crawl read."""
    out = tmp_path / "snap"
    crawl_ok(populated_fs.registry, out)
    expected = populated_fs.expected
    model = Model({name: [row._asdict() for row in expected.table(name)] for name in TABLES})
    names = expected.names
    result = CliRunner().invoke(main, ["report", str(out), "--format", "json"])
    assert result.exit_code == EXIT_OK, result.stderr
    data = json.loads(result.stdout)

    orphans = model.orphans()
    # The old web image lost its tag; the signature of apps/api (a referrer) and the
    # untagged children of the cli index are kept.
    assert orphans == {("apps/web", names["web_old"])}
    assert data["orphaned_manifests"] == 1
    assert data["orphaned_manifest_bytes"] == model.exclusive_bytes(orphans) > 0
    physical, logical, savings = model.dedup_summary()
    assert (data["physical_bytes"], data["logical_bytes"], data["dedup_savings_bytes"]) == (physical, logical, savings)
    assert savings > 0  # the base layer is shared across repositories
    unreferenced = model.unreferenced_blobs()
    assert {names["unreferenced_blob"], names["web_deleted"]} <= unreferenced
    assert data["unreferenced_blobs"] == len(unreferenced)
    assert data["unreferenced_blob_bytes"] == sum(model.size(d) for d in unreferenced)
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes", "orphaned_bytes")
    assert {r["repository"]: tuple(r[k] for k in keys) for r in data["repositories"]} == model.repository_usage()
    assert data["top"]["orphaned_by_repository"][0]["repository"] == "apps/web"
    assert data["warnings"] == [] and data["unknown"] == {}


def test_sample_text_markdown_and_output_file(sample: Path, tmp_path: Path) -> None:
    text = CliRunner().invoke(main, ["report", str(sample)])
    assert text.exit_code == 0 and "orphaned manifests" in text.stdout and "apps/web" in text.stdout
    out = tmp_path / "r.md"
    result = CliRunner().invoke(main, ["report", str(sample), "-f", "markdown", "--output", str(out), "--top", "2"])
    assert result.exit_code == 0 and result.stdout == ""
    markdown = out.read_text()
    assert "### Largest layers (top 2)" in markdown and "| apps/web |" in markdown
    assert [p.name for p in tmp_path.iterdir()] == ["r.md"]  # no temporary file left


def test_not_a_snapshot(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["report", str(tmp_path)])
    assert result.exit_code == EXIT_SNAPSHOT and "not a regstat snapshot" in result.stderr


# --- HTML ------------------------------------------------------------------------------------------


class Page(HTMLParser):
    """Each svg's title and elements, and every tag's attributes."""

    def __init__(self) -> None:
        super().__init__()
        self.svgs: list[dict] = []
        self.tags: list[tuple[str, dict]] = []
        self.stack: list[str] = []
        self.text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        self.tags.append((tag, attributes))
        if tag == "svg":
            self.svgs.append({"title": None, "rects": [], "texts": []})
        elif self.svgs and "svg" in self.stack and tag == "rect":
            self.svgs[-1]["rects"].append(attributes)
        self.stack.append(tag)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop() != tag:
            pass

    def handle_data(self, data: str) -> None:
        self.text.append(data)
        if "svg" in self.stack and self.stack[-1] == "title" and self.stack[-2] == "svg":
            self.svgs[-1]["title"] = data
        elif "svg" in self.stack and self.stack[-1] == "text":
            self.svgs[-1]["texts"].append(data)


def parse(page: str) -> Page:
    parser = Page()
    parser.feed(page)
    parser.close()
    return parser


def test_html_charts_on_sample(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "report.html"
    result = CliRunner().invoke(main, ["report", str(sample), "--format", "html", "-o", str(out)])
    assert result.exit_code == 0, result.stderr
    page = out.read_text()
    data = json.loads(CliRunner().invoke(main, ["report", str(sample), "-f", "json"]).stdout)
    svgs = parse(page).svgs
    assert len(svgs) == 3
    storage, sharing, orphaned = svgs
    assert storage["title"].startswith(STORAGE_TITLE)
    assert sharing["title"].startswith(SHARING_TITLE)
    assert orphaned["title"].startswith(ORPHANED_TITLE)
    bars = [(r["class"], int(r["data-bytes"])) for r in storage["rects"] if "data-bytes" in r]
    expected = []
    for repo in sorted(data["repositories"], key=lambda r: (-(r["exclusive_bytes"] + r["shared_bytes"]), r["repository"])):
        expected += [("exclusive", repo["exclusive_bytes"]), ("shared", repo["shared_bytes"])]
    assert bars == expected
    # layer_sharing on scenario_tree: 9 blobs with one reference, 4 with two, the base layer with 4.
    histogram = [(r["data-manifests"], int(r["data-blobs"])) for r in sharing["rects"] if "data-blobs" in r]
    assert histogram == [("1", 9), ("2", 4), ("3–4", 1)]
    assert [(r["class"], int(r["data-bytes"])) for r in orphaned["rects"] if "data-bytes" in r] == [
        ("orphaned", data["orphaned_manifest_bytes"]),
        ("orphaned-shared", 0),
    ]
    assert_self_contained(page)


def assert_self_contained(page: str) -> None:
    for tag, attributes in parse(page).tags:
        assert tag not in ("script", "link", "img", "iframe", "object", "embed"), tag
        for name in ("src", "href", "xlink:href"):
            assert name not in attributes, (tag, attributes)
    assert "@import" not in page and "url(" not in page and not re.search(r"https?:", page)
    assert "@media print" in page


def test_html_escapes_hostile_names(tmp_path: Path) -> None:
    hostile = '<script>alert("x")</script>'
    tables = build(contents(m0=image([b[0]]), m1=image([b[1]])), {hostile: [m[0], m[1]]}, {hostile: [m[0]]})
    tables["tags"][0]["tag"] = "<img src=x onerror=alert(1)>"
    report = report_of(tmp_path, tables)
    page = render_html(report)
    assert "<script" not in page and "<img" not in page
    parsed = parse(page)
    assert hostile in "".join(parsed.text)  # shown as text, not markup
    assert {tag for tag, _ in parsed.tags}.isdisjoint({"script", "img"})
    assert_self_contained(page)
    markdown = render_markdown(report)
    assert "<script" not in markdown and "&lt;script&gt;" in markdown
    evil = report_of(tmp_path / "t", build(contents(m0=image([b[0]])), {"a\x1b[2Jb": [m[0]]}, {}))
    assert "\x1b" not in render_text(evil) and "a\\x1b[2Jb" in render_text(evil)
