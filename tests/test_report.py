"""`regstat report`: exact figures on hand-built snapshots, one per rule of docs/design.md, and on
scenario_tree; unknowns never shown as zero; the HTML's charts, self-containment and escaping.

Expected numbers are worked out by hand here (sizes from support.snapshots.build: manifest
m<i> is 100 + i bytes, blob b<i> is 1000 * (i + 1); every manifest and blob is stored except
b4), or for scenario_tree by support.model.Model, never by running the report's SQL.
"""

from __future__ import annotations

import dataclasses
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from html.parser import HTMLParser
from pathlib import Path

import pytest
from click.testing import CliRunner
from support.crawls import crawl_ok
from support.expected import Populated
from support.model import Model
from support.snapshots import BLOBS, MANIFESTS, NAMES, SAMPLE, build, write_snapshot

from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_SNAPSHOT
from regstat.report import Report, build_report
from regstat.report.html import ORPHANED_TITLE, SHARING_TITLE, SHARING_Y_LABEL, STORAGE_TITLE, render_html
from regstat.render import to_json_value
from regstat.report import render_json, render_markdown, render_text
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
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes",
            "orphaned_bytes")
    return {r["repository"]: tuple(r[k] for k in keys) for r in report.repositories}


def figures(report: Report) -> dict:
    """The summary figures but the headline (tested against plan-gc below)."""
    return {k: v for k, v in report.to_json().items()
            if k.endswith(("_bytes", "_manifests", "_blobs")) and k != "reclaimable_now_bytes"}


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


PARTIAL = {"complete": False, "partial": True, "repository_filter": ["a"],
           "capabilities": {"untagged_manifests": True, "unreferenced_blobs": False, "stored_blob_sizes": True,
                            "push_times": "approximate", "pull_times": None, "locks": None}}
ERRORS = {"complete": False, "errors": [{"repository": "a", "path": "x/link", "kind": "bad_link", "message": "empty"}],
          "incomplete_repositories": ["a"]}


def visible_text(page: str) -> str:
    return "".join(parse(page).text)


@pytest.mark.parametrize(
    "changes, state",
    [
        (ERRORS, "INCOMPLETE: 1 crawl error in 1 repository"),
        ({**PARTIAL, "source_repositories": 4}, "partial: 1 of 4 repositories"),
        (PARTIAL, "partial: 1 repository"),  # an older snapshot, without source_repositories
        ({**PARTIAL, **ERRORS, "source_repositories": 4},
         "INCOMPLETE: 1 crawl error in 1 repository; partial: 1 of 4 repositories"),
    ],
)
def test_state_is_said_once_in_every_format(tmp_path: Path, changes: dict, state: str) -> None:
    """An incomplete or partial snapshot says so once at the top of every format, then what
    follows from each condition, once; a partial one is not called incomplete, nor said to
    come from a source that cannot see stored blobs."""
    tables = build(contents(m0=image([b[0]])), {"a": [m[0]]}, {"a": [m[0]]})
    report = report_of(tmp_path, tables, **changes)
    data = json.loads(render_json(report))
    assert data["complete"] is False and data["state"] == state
    text, markdown, page = render_text(report), render_markdown(report), visible_text(render_html(report))
    assert state in text.splitlines()[0]
    conditions = [c.split(":")[0] for c in state.split("; ")]  # INCOMPLETE, partial
    for rendering in (text, markdown, page):
        for word in ("INCOMPLETE", "partial"):
            said = len(re.findall(rf"\b{word}\b", rendering, re.IGNORECASE))
            assert said == (word in conditions), (word, rendering)
        assert "cannot see stored blobs" not in rendering
    assert "cannot see stored blobs" not in json.dumps(data)
    assert len(data["warnings"]) == len(conditions)  # one reason each
    if "partial" in conditions:
        assert any("--repository a" in w for w in data["warnings"])
        assert "--repository left out" in data["unknown"]["unreferenced_blobs"]
        assert "--repository left out" in data["estimates"]["reclaimable_now_bytes"]
    if "INCOMPLETE" in conditions:
        assert any("errors are listed in snapshot.json" in w for w in data["warnings"])
        assert "crawl errors" in data["estimates"]["reclaimable_now_bytes"]
    assert '<div class="banner" role="alert">' in render_html(report)


def test_partial_physical_bytes_are_the_crawled_repositories_blobs(tmp_path: Path) -> None:
    """The store of a partial snapshot holds every repository's blobs: physical bytes count
    only the blobs the crawled manifests reference, their manifest blobs included."""
    # a:m0 = b0 + config b1, m1 = b2 (untagged). Stored besides: m2..m6, b3 (b4 is not stored).
    tables = build(contents(m0=image([b[0]], b[1]), m1=image([b[2]])), {"a": [m[0], m[1]]}, {"a": [m[0]]})
    report = report_of(tmp_path, tables, **PARTIAL)
    assert report.summary["physical_bytes"] == 100 + 101 + 1000 + 2000 + 3000
    assert report.summary["physical_bytes"] <= report.summary["logical_bytes"] + 100 + 101
    full = report_of(tmp_path / "full", tables)
    assert full.summary["physical_bytes"] == ALL_MANIFEST_BYTES + 1000 + 2000 + 3000 + 4000


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
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes",
            "orphaned_bytes")
    assert {r["repository"]: tuple(r[k] for k in keys) for r in data["repositories"]} == model.repository_usage()
    assert data["snapshot"]["complete"] is True and data["snapshot"]["source"]["kind"] == "storage-layout"
    assert data["unknown"] == {} and data["estimates"] == {} and data["warnings"] == []
    assert data["top"]["largest_layers"][0]["digest"] == NAMES["base_layer"]
    assert data["top"]["orphaned_by_repository"][0]["repository"] == "apps/web"


def test_json_writes_a_repository_a_line_and_the_same_document(sample: Path) -> None:
    report = build_report(Snapshot.open(sample))
    # A value the encoder cannot write by itself goes through to_json_value, as elsewhere.
    odd = {"repository": "z/odd", "seen": datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC), "bytes": Decimal(7)}
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
    definitions applied to what was pushed (tests/support/expected.py), not to what the crawl read."""
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
    keys = ("tags", "manifests", "orphaned_manifests", "logical_bytes", "exclusive_bytes", "shared_bytes",
            "orphaned_bytes")
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


def test_headline_stale_uploads_times_and_shared_layers_in_every_format(sample: Path) -> None:
    """Every format leads with reclaimable now, shows the stale uploads (count, bytes, oldest),
    writes times as 2026-12-07 01:14 UTC (JSON: ISO 8601, for programs), and lists as most
    shared only layers that 2 or more manifests reference."""
    report = build_report(Snapshot.open(sample))
    data = json.loads(render_json(report))
    assert data["reclaimable_now_bytes"] == data["reclaimable_now"]["bytes"]
    assert set(data["reclaimable_now"]) >= {"estimated", "grace", "manifests", "stale_uploads"}
    stale = data["stale_uploads"]  # sample_data's upload started 2026-11-27: stale when crawled
    assert (stale["uploads"], stale["upload_bytes"], stale["oldest_at"]) == (1, 700, "2026-11-27T21:49:18Z")
    shared = data["top"]["most_shared_layers"]
    assert shared and all(r["manifests"] >= 2 for r in shared)
    layers = {r["digest"]: r["manifests"] for r in data["top"]["largest_layers"]}
    assert any(n == 1 for n in layers.values())  # there were unshared layers to leave out
    taken = datetime.fromisoformat(data["snapshot"]["taken_at"].replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    for rendering in (render_text(report), render_markdown(report), "".join(parse(render_html(report)).text)):
        rendering = rendering.replace("\u00a0", " ")
        assert re.search(r"reclaimable now: \S+ (B|KiB)", rendering)
        assert f"taken {taken}" in rendering
        assert "1 (700 B), the oldest started 2026-11-27 21:49 UTC" in rendering
        assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", rendering)
        start = rendering.index("Most shared layers")
        section = rendering[start:rendering.index("Orphaned space by repository (top", start)]
        assert all(digest[:19] in section for digest in (r["digest"] for r in shared))
        assert not any(d[:19] in section for d, n in layers.items() if n == 1)
    text = render_text(report).splitlines()
    assert text[text.index("") + 1].startswith("reclaimable now: ")  # the first figure


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
    by_size = sorted(data["repositories"], key=lambda r: (-(r["exclusive_bytes"] + r["shared_bytes"]), r["repository"]))
    for repo in by_size:
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


class Layout(HTMLParser):
    """The page as a reader sees it: each table's rows of cell texts and the classes of the
    elements around it; the texts of each svg, with their attributes; each bar row of a
    stacked chart; all visible text, and the page's CSS."""

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[tuple[str, dict]] = []
        self.tables: list[dict] = []
        self.svg_texts: list[list[tuple[dict, str]]] = []
        self.bar_rows: list[dict] = []
        self.text: list[str] = []
        self.css = ""

    def handle_starttag(self, tag: str, attrs: list) -> None:
        attributes = dict(attrs)
        if tag == "table":
            around = [a.get("class", "") for t, a in self.stack if t == "div"]
            self.tables.append({"around": around, "rows": []})
        elif tag == "tr" and self.tables:
            self.tables[-1]["rows"].append([])
        elif tag in ("td", "th") and self.tables:
            self.tables[-1]["rows"][-1].append("")
        elif tag == "svg":
            self.svg_texts.append([])
        elif tag == "g" and "data-total" in attributes:
            self.bar_rows.append({"chart": len(self.svg_texts) - 1, "label": attributes["data-label"],
                                  "total": int(attributes["data-total"]), "parts": [], "end": None})
        elif tag == "rect" and "data-bytes" in attributes and self.bar_rows and self._inside("g"):
            self.bar_rows[-1]["parts"].append((attributes["class"], int(attributes["data-bytes"])))
        if tag != "meta":  # the page's one void element (<line/> and <rect/> get an end tag call)
            self.stack.append((tag, attributes))

    def _inside(self, tag: str) -> bool:
        return any(t == tag for t, _ in self.stack)

    def handle_endtag(self, tag: str) -> None:
        while self.stack and self.stack.pop()[0] != tag:
            pass

    def handle_data(self, data: str) -> None:
        if self._inside("style"):
            self.css += data
            return
        if not self._inside("title"):
            self.text.append(data)
        if self.stack and self.stack[-1][0] in ("td", "th") and self.tables:
            self.tables[-1]["rows"][-1][-1] += data
        if self.stack and self.stack[-1][0] == "text" and self.svg_texts:
            self.svg_texts[-1].append((self.stack[-1][1], data))
            if "total" in self.stack[-1][1].get("class", "") and self.bar_rows:
                self.bar_rows[-1]["end"] = data


def layout(page: str) -> Layout:
    parsed = Layout()
    parsed.feed(page)
    parsed.close()
    return parsed


def table_after(page: str, heading: str) -> list[dict[str, str]]:
    """The rows, as {column: cell text}, of the first table after the <h2> starting `heading`."""
    rest = page[page.index(f"<h2>{heading}"):]
    header, *rows = layout(rest[rest.index("<table"):]).tables[0]["rows"]
    return [dict(zip(header, row, strict=True)) for row in rows]


NBSP = "\u00a0"
UNITS = r"(?:B|KiB|MiB|GiB|TiB|PiB|EiB|UTC)\b"


def test_html_reads_well_on_a_narrow_screen(sample: Path) -> None:
    """Properties of the page a browser shows (tests/README-free: what the screenshots at
    500 and 1400 px checked by eye): tables scroll inside their box; a number never parts from
    its unit, nor a date from its time; times read 2026-12-07 01:14 UTC; the sharing chart's
    y axis has a label; each storage bar's parts and end figure are its table row's."""
    page = render_html(build_report(Snapshot.open(sample)))
    parsed = layout(page)
    assert re.search(r"\.scroll\s*\{[^}]*overflow-x:\s*auto", parsed.css)
    assert parsed.tables and all("scroll" in t["around"] for t in parsed.tables)
    text = "".join(parsed.text)
    assert re.findall(rf"\d{NBSP}{UNITS}", text)  # there are figures, and
    assert not re.findall(rf"\d[ \t\n]+{UNITS}", text)  # none breakable before its unit
    times = re.findall(rf"\d{{4}}-\d\d-\d\d{NBSP}\d\d:\d\d{NBSP}UTC", text)
    assert len(times) == 2  # taken, and the oldest stale upload's start
    assert not re.search(r"\d{4}-\d\d-\d\dT\d\d:\d\d", text)  # no ISO 8601 shown

    storage, sharing, _ = parsed.svg_texts
    y_labels = [(a, t) for a, t in sharing if "y-label" in a.get("class", "")]
    assert y_labels == [(y_labels[0][0], SHARING_Y_LABEL)] and "rotate(-90" in y_labels[0][0]["transform"]
    ticks = [t for a, t in sharing if a.get("class") == "tick"]
    assert ticks[0] == "0" and len(ticks) >= 2

    rows = {r["repository"]: r for r in table_after(page, "Repositories")}
    bars = [bar for bar in parsed.bar_rows if bar["chart"] == 0]  # the storage chart's
    assert len(bars) == len(rows) == 4
    raw = {r["repository"]: r for r in build_report(Snapshot.open(sample)).repositories}
    for bar in bars:
        row, numbers = rows[bar["label"]], raw[bar["label"]]
        assert bar["parts"] == [("exclusive", numbers["exclusive_bytes"]), ("shared", numbers["shared_bytes"])]
        assert bar["end"] == row["referenced"]  # the figure at its end is the table's
        assert bar["total"] == numbers["referenced_bytes"] == numbers["exclusive_bytes"] + numbers["shared_bytes"]
    shared = table_after(page, "Most shared layers")
    assert shared and all(int(r["manifests"]) >= 2 for r in shared)
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
