"""`regstat report --format prometheus` (issue 19): the text exposition format 0.0.4, read
back with prometheus_client's own parser and scraped from a real node_exporter (Debian's
prometheus-node-exporter) whose textfile collector reads the file regstat wrote.

The snapshot is a crawl of tests/scenario_tree with one repository renamed to hold a double
quote, a backslash and a line feed, which label values must escape (the crawl records the
name as an error, so the snapshot is incomplete: regstat_crawl_errors 1).
"""

from __future__ import annotations

import json
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client.parser import text_string_to_metric_families

from support.components import find_executable
from support.histories import SCENARIO, ok, regstat
from support.tools import require_tools
from regstat.errors import EXIT_INCOMPLETE

NODE_EXPORTER = "prometheus-node-exporter"
ODD_NAME = 'apps/we"b\\x\ny'
FIGURES = {
    "regstat_physical_bytes": "physical_bytes",
    "regstat_logical_bytes": "logical_bytes",
    "regstat_reclaimable_bytes": "reclaimable_now_bytes",
    "regstat_orphaned_manifests": "orphaned_manifests",
    "regstat_orphaned_manifest_bytes": "orphaned_manifest_bytes",
    "regstat_unreferenced_blob_bytes": "unreferenced_blob_bytes",
}


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    """A snapshot with an oddly named repository, and its `report -f json`."""
    root = tmp_path_factory.mktemp("prometheus")
    tree = root / "tree"
    shutil.copytree(SCENARIO / "docker", tree / "docker")
    repositories = tree / "docker/registry/v2/repositories"
    (repositories / "apps/web").rename(repositories / ODD_NAME)
    # The registry would refuse such a name: the crawl records it (exit 3) and keeps the repository.
    ok(regstat("crawl", tree, "-o", root / "snap"), EXIT_INCOMPLETE)
    report = json.loads(ok(regstat("report", root / "snap", "-f", "json", "--top", "50")).stdout)
    assert ODD_NAME in {r["repository"] for r in report["repositories"]}
    return root / "snap", report


def samples(text: str) -> dict[str, list[Any]]:
    """Metric name -> its samples, parsed by prometheus_client; every family typed and helped."""
    out: dict[str, list[Any]] = {}
    for family in text_string_to_metric_families(text):
        if family.name.startswith("regstat_"):
            assert family.type == "gauge" and family.documentation, family.name
        out.setdefault(family.name, []).extend(family.samples)
    return out


def test_metrics_parse_and_carry_the_reports_figures(snapshot: tuple[Path, dict[str, Any]], tmp_path: Path) -> None:
    path, report = snapshot
    out = tmp_path / "textfile" / "regstat.prom"
    ok(regstat("report", path, "-f", "prometheus", "--top", "30", "-o", out, "--quiet"))
    assert [p.name for p in out.parent.iterdir()] == ["regstat.prom"]  # nothing left beside it
    text = out.read_text()
    assert ok(regstat("report", path, "-f", "prometheus", "--top", "30")).stdout == text
    for line in text.splitlines():
        if line.startswith("# TYPE"):
            assert line.split()[3] == "gauge"
    got = samples(text)
    for metric, figure in FIGURES.items():
        assert [s.value for s in got[metric]] == [report[figure]], metric
    info = json.loads((path / "snapshot.json").read_text())
    assert got["regstat_manifests"][0].value == info["counts"]["manifests"]
    assert got["regstat_crawl_errors"][0].value == len(info["errors"]) == 1
    assert got["regstat_snapshot_complete"][0].value == 0
    assert got["regstat_tags"][0].value == sum(r["tags"] for r in report["repositories"])
    assert got["regstat_snapshot_info"][0].labels["id"] == info["id"]
    duration = got["regstat_crawl_duration_seconds"][0].value
    assert 0 < duration < 600
    assert got["regstat_snapshot_timestamp_seconds"][0].value > 1.7e9
    exclusive = {s.labels["repository"]: s.value for s in got["regstat_repository_exclusive_bytes"]}
    assert exclusive == {r["repository"]: r["exclusive_bytes"] for r in report["repositories"]}
    assert ODD_NAME in exclusive  # escaped, and read back whole
    assert '\\"' in text and "\\\\" in text and "\\n" in text


def test_top_limits_the_repository_series(snapshot: tuple[Path, dict[str, Any]]) -> None:
    path, report = snapshot
    got = samples(ok(regstat("report", path, "-f", "prometheus", "--top", "3")).stdout)
    largest = sorted(report["repositories"], key=lambda r: (-r["exclusive_bytes"], r["repository"]))[:3]
    assert [s.labels["repository"] for s in got["regstat_repository_exclusive_bytes"]] == [
        r["repository"] for r in largest]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture()
def node_exporter(tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """A node_exporter of our own on 127.0.0.1 with only the textfile collector, reading a
    fresh directory: its /metrics URL and that directory."""
    require_tools(NODE_EXPORTER)
    directory = tmp_path / "textfile"
    directory.mkdir()
    port = _free_port()
    argv = [find_executable(NODE_EXPORTER) or NODE_EXPORTER, f"--web.listen-address=127.0.0.1:{port}",
            "--collector.disable-defaults", "--collector.textfile", f"--collector.textfile.directory={directory}"]
    log = (tmp_path / "node_exporter.log").open("w")
    process = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60  # a safety net: ready is when the port answers
        while True:
            assert process.poll() is None, (tmp_path / "node_exporter.log").read_text()
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                assert time.monotonic() < deadline, "node_exporter did not listen within 60 s"
                time.sleep(0.1)
        yield f"http://127.0.0.1:{port}/metrics", directory
    finally:
        process.terminate()
        process.wait(30)
        log.close()


def test_node_exporter_serves_the_metrics(snapshot: tuple[Path, dict[str, Any]],
                                          node_exporter: tuple[str, Path]) -> None:
    path, report = snapshot
    url, directory = node_exporter
    ok(regstat("report", path, "-f", "prometheus", "-o", directory / "regstat.prom", "--quiet"))
    with urllib.request.urlopen(url, timeout=30) as answer:  # noqa: S310 (our own, on 127.0.0.1)
        scraped = answer.read().decode()
    got = {f.name: f.samples for f in text_string_to_metric_families(scraped)}
    assert [s.value for s in got["node_textfile_scrape_error"]] == [0]
    assert [s.value for s in got["regstat_physical_bytes"]] == [report["physical_bytes"]]
    assert [s.value for s in got["regstat_reclaimable_bytes"]] == [report["reclaimable_now_bytes"]]
    exclusive = {s.labels["repository"] for s in got["regstat_repository_exclusive_bytes"]}
    assert ODD_NAME in exclusive
