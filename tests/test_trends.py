"""`regstat report HISTORY --history` (issue 19): a history's figures over time, in text,
json, csv and html, each snapshot summarised once and kept in HISTORY/.regstat/summaries.

The history holds three crawls of a copy of tests/scenario_tree, named three days apart
(the clock the history names by is fixed), the tree changed between them. Every figure is
checked against `regstat report` of the same snapshot (HISTORY@-N), computed independently.
"""

from __future__ import annotations

import csv
import io
import json
import re
import shutil
from pathlib import Path
from typing import Any

import pytest

from support.histories import SCENARIO, ok, regstat
from regstat import __version__
from regstat.errors import EXIT_USAGE

REPOSITORIES = "docker/registry/v2/repositories"
FIGURES = {  # the trend's name -> the report's
    "physical_bytes": "physical_bytes",
    "logical_bytes": "logical_bytes",
    "orphaned_bytes": "orphaned_manifest_bytes",
    "reclaimable_bytes": "reclaimable_now_bytes",
    "orphaned_manifests": "orphaned_manifests",
}


@pytest.fixture(scope="module")
def nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[dict[str, Any]]]:
    """The history, and `report -f json` of each snapshot, oldest first."""
    root = tmp_path_factory.mktemp("trends")
    tree = root / "tree"
    shutil.copytree(SCENARIO / "docker", tree / "docker")
    directory = root / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-01T03:15:00+00:00"))
    shutil.rmtree(tree / REPOSITORIES / "base/alpine/_manifests/tags/3.19")
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-02T03:15:00+00:00"))
    shutil.rmtree(tree / REPOSITORIES / "tools")
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-03T03:15:00+00:00"))
    reports = [json.loads(ok(regstat("report", f"{directory}@-{n}", "-f", "json")).stdout) for n in (2, 1, 0)]
    return directory, reports


def trends_json(directory: Path, *args: str) -> dict[str, Any]:
    return json.loads(ok(regstat("report", directory, "--history", "-f", "json", *args)).stdout)


def test_json_follows_every_snapshot_with_the_reports_figures(nights: tuple[Path, list[dict]]) -> None:
    directory, reports = nights
    doc = trends_json(directory, "--top", "3")
    points = doc["snapshots"]
    assert [p["id"] for p in points] == [r["snapshot"]["id"] for r in reports]
    assert [p["name"] for p in points] == ["20261201T031500Z", "20261202T031500Z", "20261203T031500Z"]
    for point, report in zip(points, reports, strict=True):
        for trend, figure in FIGURES.items():
            assert point[trend] == report[figure], (trend, point["name"])
        assert point["tags"] == sum(r["tags"] for r in report["repositories"])
        assert point["repositories"].keys() == set(doc["repositories"])
    tags = [p["tags"] for p in points]
    assert tags[0] - tags[1] == 1 and tags[2] < tags[1]  # a tag, then a namespace removed
    latest = sorted(reports[-1]["repositories"], key=lambda r: (-r["exclusive_bytes"], r["repository"]))
    assert doc["repositories"] == [r["repository"] for r in latest[:3]]
    for name in doc["repositories"]:
        for point, report in zip(points, reports, strict=True):
            row = next(r for r in report["repositories"] if r["repository"] == name)
            assert point["repositories"][name]["exclusive_bytes"] == row["exclusive_bytes"]


def test_csv_has_a_row_per_snapshot_and_repository(nights: tuple[Path, list[dict]]) -> None:
    directory, reports = nights
    doc = trends_json(directory, "--top", "2")
    text = ok(regstat("report", directory, "--history", "-f", "csv", "--top", "2")).stdout
    rows = list(csv.DictReader(io.StringIO(text)))
    assert len(rows) == 3 * (1 + 2)
    registry = [r for r in rows if r["repository"] == ""]
    for row, report in zip(registry, reports, strict=True):
        assert row["snapshot_id"] == report["snapshot"]["id"]
        assert int(row["physical_bytes"]) == report["physical_bytes"]
        assert int(row["reclaimable_bytes"]) == report["reclaimable_now_bytes"]
    named = [r for r in rows if r["repository"]]
    assert {r["repository"] for r in named} == set(doc["repositories"])


def test_each_snapshot_is_summarised_once_and_read_back(nights: tuple[Path, list[dict]], tmp_path: Path) -> None:
    source, reports = nights
    directory = tmp_path / "history"
    shutil.copytree(source, directory, symlinks=True)
    shutil.rmtree(directory / ".regstat", ignore_errors=True)
    trends_json(directory)
    summaries = directory / ".regstat" / "summaries"
    files = sorted(p.name for p in summaries.iterdir())
    assert files == sorted(f"{r['snapshot']['id']}@{__version__}.json" for r in reports)
    # Read back, not computed again: a figure changed in the summary shows.
    first = summaries / files[0]
    doc = json.loads(first.read_text())
    doc["figures"]["physical_bytes"] = 12345
    first.write_text(json.dumps(doc))
    by_id = {p["id"]: p for p in trends_json(directory)["snapshots"]}
    assert by_id[files[0].split("@")[0]]["physical_bytes"] == 12345
    # A summary of another regstat version is not trusted: computed again, under this version.
    first.rename(first.with_name(first.name.replace(f"@{__version__}", "@0.0.0-other")))
    by_id = {p["id"]: p for p in trends_json(directory)["snapshots"]}
    assert by_id[files[0].split("@")[0]]["physical_bytes"] == reports[[r["snapshot"]["id"] for r in reports].index(
        files[0].split("@")[0])]["physical_bytes"]
    assert first.exists()
    # Damaged: computed again too.
    first.write_text("{not json")
    assert trends_json(directory)["snapshots"][0]["physical_bytes"] == reports[0]["physical_bytes"]


def test_html_draws_a_line_per_figure_and_repository(nights: tuple[Path, list[dict]], tmp_path: Path) -> None:
    directory, reports = nights
    out = tmp_path / "trends.html"
    ok(regstat("report", directory, "--history", "-f", "html", "-o", out, "--top", "4", "--quiet"))
    page = out.read_text()
    assert "<script" not in page and "http" not in page.replace('"http://www.w3.org', "")
    assert page.count("<svg") == 3
    series = re.findall(r'<g class="series" data-label="([^"]+)">(.*?)</g>', page, re.S)
    labels = [label for label, _ in series]
    assert labels[:4] == ["physical", "logical", "orphaned", "reclaimable"]
    doc = trends_json(directory, "--top", "4")
    assert len(doc["repositories"]) == 3  # all the latest snapshot holds: fewer than --top
    assert labels[-3:] == doc["repositories"]
    physical = [int(v) for v in re.findall(r'data-value="(\d+)"', series[0][1])]
    assert physical == [r["physical_bytes"] for r in reports]
    assert len(re.findall(r"<path class=\"line", page)) == len(series)


def test_text_names_the_snapshots_and_repositories(nights: tuple[Path, list[dict]]) -> None:
    directory, reports = nights
    text = ok(regstat("report", directory, "--history")).stdout
    assert "3 snapshots" in text
    for repository in trends_json(directory)["repositories"]:
        assert repository in text


def test_history_usage_errors(nights: tuple[Path, list[dict]]) -> None:
    directory, _ = nights
    for args, words in (
        ([f"{directory}/latest", "--history"], "not a snapshot history"),
        ([directory, "--history", "-f", "prometheus"], "--history writes"),
        ([directory, "--history", "-r", "apps/*"], "--history writes"),
        ([directory, "-f", "csv"], "--format csv is for --history"),
    ):
        done = regstat("report", *args)
        assert done.returncode == EXIT_USAGE and words in done.stderr, (args, done.stderr)
