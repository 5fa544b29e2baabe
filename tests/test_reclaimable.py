"""The report's headline, reclaimable now, is what `plan-gc --untagged` with the default grace
frees (`summary.bytes_reclaimed`): on random registry graphs with times, locks, unreadable
manifests and crawl errors (tests/support/planner_graphs.py), and on crawls of real storage trees
whose files were aged with os.utime (the standard scenario, sample_data; complete, with
errors, partial). The report computes it from its own views; these tests run the planner.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from support.expected import Populated
from support.planner_graphs import YOUNG, Meta, Registry, d, image, random_registries, referrer, snapshot
from support.snapshots import SAMPLE

from regstat.cli import main
from regstat.plan.planner import plan_gc
from regstat.plan.policy import from_flags
from regstat.report import build_report

DAYS_AGO = 3  # past the default grace (24h)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=random_registries(), meta=Meta)
def test_random_registries_reclaimable_equals_the_plan(tables: dict, meta: dict,
                                                        tmp_path_factory: pytest.TempPathFactory) -> None:
    meta = dict(meta)
    source = meta.pop("source", "storage")
    snap = snapshot(tmp_path_factory.mktemp("reclaim") / "s", tables, source, **meta)
    report = build_report(snap)
    with plan_gc(snap, from_flags(untagged=True)) as plan:
        summary = plan.summary
    assert report.reclaimable["estimated"] == summary["bytes_estimated"]
    assert report.reclaimable["manifests"] == summary["manifests"]
    assert report.summary["reclaimable_now_bytes"] == summary["bytes_reclaimed"]
    assert ("reclaimable_now_bytes" in report.estimates) == summary["bytes_estimated"]
    if not summary["bytes_estimated"]:
        assert report.reclaimable["stale_uploads"] == summary["uploads"]


def signed_orphan(sig_tag_at=None, sig_pushed_at=None, locked=None, tag_locked=None) -> Registry:
    """Repository a: an untagged image `img` (layer L, 1000 bytes) and its signature `sig`
    (layer S, 10 bytes), tagged sha256-img.sig; everything old unless given."""
    reg = Registry()
    reg.blob(d("L"), 1000).blob(d("S"), 10)
    image(reg, "a", "img", 100, layers=("L",), locked=locked)
    kw = {"pushed_at": sig_pushed_at} if sig_pushed_at else {}
    referrer(reg, "a", "sig", "img", 50, layers=("S",), **kw)
    return reg.tag("a", "sha256-img.sig", d("sig"), **({"updated_at": sig_tag_at} if sig_tag_at else {}),
                   locked=tag_locked)


@pytest.mark.parametrize("reg, freed", [
    # The .sig tag follows its subject: the orphan goes, and its signature with it.
    (signed_orphan(), 100 + 1000 + 50 + 10),
    # A young .sig tag keeps the signature, and the signature its subject.
    (signed_orphan(sig_tag_at=YOUNG), 0),
    # A signature pushed within the grace keeps its subject.
    (signed_orphan(sig_pushed_at=YOUNG), 0),
    # A locked orphan stays, and so does its signature, which follows it.
    (signed_orphan(locked=True), 0),
    # A locked .sig tag (ACR's tags.locked) keeps the signature, and the signature its subject.
    (signed_orphan(tag_locked=True), 0),
    (signed_orphan(tag_locked=False), 100 + 1000 + 50 + 10),
])
@pytest.mark.parametrize("source", ["storage", "acr"])
def test_referrers_tags_grace_and_locks_as_the_plan(tmp_path: Path, reg: Registry, freed: int, source: str) -> None:
    snap = snapshot(tmp_path / "s", reg.tables, source)
    with plan_gc(snap, from_flags(untagged=True)) as plan:
        assert plan.summary["bytes_reclaimed"] == freed
    assert build_report(snap).summary["reclaimable_now_bytes"] == freed


# --- crawls of storage trees whose files were aged ------------------------------------------------


def age(root: Path, old: Callable[[str], bool]) -> None:
    """Date every file under `root` DAYS_AGO back where `old(path relative to root)`, else now,
    as a registry's files would be; an upload's `startedat` says the same time."""
    now = time.time()
    for path in root.rglob("*"):
        if not path.is_file() or path.is_symlink():
            continue
        moment = now - DAYS_AGO * 86400 if old(path.relative_to(root).as_posix()) else now
        if path.name == "startedat":
            path.write_text(datetime.fromtimestamp(moment, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        os.utime(path, (moment, moment))


def everything(_: str) -> bool:
    return True


def nothing(_: str) -> bool:
    return False


def every_other(path: str) -> bool:
    """Half the files, chosen by their path (the same half each run)."""
    return hashlib.sha256(path.encode()).digest()[0] % 2 == 0


def run(*args: str) -> dict:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (0, 3), result.output + result.stderr
    return json.loads(result.stdout)


def reclaimable_and_plan(tree: Path, out: Path, *crawl_options: str) -> tuple[dict, dict]:
    """Crawl `tree`, then the report's JSON and `plan-gc --untagged` (default grace) summary."""
    crawl = CliRunner().invoke(main, ["crawl", str(tree), "-o", str(out), *crawl_options])
    assert crawl.exit_code in (0, 3), crawl.stderr
    report = run("report", str(out), "--format", "json")
    plan = run("plan-gc", str(out), "--untagged", "--format", "json")
    assert report["reclaimable_now_bytes"] == plan["summary"]["bytes_reclaimed"]
    assert report["reclaimable_now"]["estimated"] == plan["summary"]["bytes_estimated"]
    assert report["reclaimable_now"]["manifests"] == plan["summary"]["manifests"]
    return report, plan["summary"]


def copy_tree(source: Path, destination: Path) -> Path:
    """A copy with its files' times (`cp -a`), to age without touching the original."""
    subprocess.run(["cp", "-a", str(source), str(destination)], check=True)
    return destination


def test_sample_data_aged(tmp_path: Path) -> None:
    figures = {}
    for name, old in (("old", everything), ("young", nothing), ("mixed", every_other)):
        tree = copy_tree(SAMPLE, tmp_path / f"tree-{name}")
        age(tree, old)
        report, plan = reclaimable_and_plan(tree, tmp_path / f"snap-{name}")
        assert report["reclaimable_now"]["estimated"] is False
        figures[name] = report["reclaimable_now_bytes"]
        stale = report["stale_uploads"]
        assert stale["uploads"] == plan["uploads"]
        if name != "mixed":
            assert stale["uploads"] == (name == "old")
        if name == "old":
            assert stale["upload_bytes"] == 700 and stale["oldest_at"] is not None
    # Everything old frees the orphan, the unreferenced blobs and the upload; nothing young
    # frees nothing; the grace keeps some of it in the mixed tree.
    assert figures["old"] > figures["mixed"] > figures["young"] == 0

    # The same tree with a crawl error (a tag link emptied): the plan deletes no blobs, and the
    # headline is the estimate it gives; a partial crawl likewise.
    tree = copy_tree(SAMPLE, tmp_path / "tree-errors")
    age(tree, everything)
    link = next(tree.glob("docker/registry/v2/repositories/base/*/_manifests/tags/*/current/link"))
    link.write_text("")
    report, plan = reclaimable_and_plan(tree, tmp_path / "snap-errors")
    assert report["complete"] is False and report["reclaimable_now"]["estimated"] and plan["bytes_estimated"]
    assert report["reclaimable_now_bytes"] > 0  # the orphan of apps/web, which had no error
    report, plan = reclaimable_and_plan(tree, tmp_path / "snap-partial", "--repository", "apps/*")
    assert report["state"] == "partial: 2 of 4 repositories" and report["reclaimable_now"]["estimated"]


@pytest.mark.registry
def test_standard_scenario_aged(populated_fs: Populated, tmp_path: Path) -> None:
    """The registry the tests fill with skopeo and the HTTP API, its storage copied and aged:
    all old, none, half, then half with a crawl error and crawled in part."""
    root = Path(populated_fs.registry.root)
    figures = {}
    for name, old in (("old", everything), ("young", nothing), ("mixed", every_other)):
        tree = tmp_path / f"tree-{name}"
        shutil.copytree(root, tree, symlinks=True)
        age(tree, old)
        report, _ = reclaimable_and_plan(tree, tmp_path / f"snap-{name}")
        figures[name] = report["reclaimable_now_bytes"]
    assert figures["old"] > figures["mixed"] > figures["young"] == 0
    tree = tmp_path / "tree-mixed"
    next(tree.glob("docker/registry/v2/repositories/*/*/_manifests/tags/*/current/link")).write_text("")
    report, _ = reclaimable_and_plan(tree, tmp_path / "snap-errors")
    assert report["reclaimable_now"]["estimated"] and report["state"].startswith("INCOMPLETE")
    report, _ = reclaimable_and_plan(tree, tmp_path / "snap-partial", "--repository", "*/web")
    assert report["state"].startswith("INCOMPLETE") or report["state"].startswith("partial")
