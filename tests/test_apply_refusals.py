"""apply-gc's refusals (exit 5, nothing deleted, no journal written) on a copy of sample_data:
more deletions than --max-deletes, a stale plan, a plan of another registry, a plan edited by
hand (a digest changed), cut short or without its checksum, and a second apply while one
holds the journal's lock."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from support.apply_runs import apply_gc, regstat

from regstat.errors import EXIT_REFUSED
from regstat.plan.plan import Plan

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


def _files(root: Path) -> dict[str, int]:
    return {p.relative_to(root).as_posix(): p.stat().st_size for p in root.rglob("*") if p.is_file()}


@pytest.fixture
def planned(tmp_path: Path) -> tuple[Path, Path]:
    """A copy of sample_data (file times kept), crawled and planned with --untagged --grace 0s."""
    root = tmp_path / "registry"
    shutil.copytree(SAMPLE, root, copy_function=shutil.copy2)
    for args in (("crawl", str(root), "-o", str(tmp_path / "snap")),
                 ("plan-gc", str(tmp_path / "snap"), "--untagged", "--grace", "0s", "-o", str(tmp_path / "plan.json"))):
        result = regstat(*args)
        assert result.returncode == 0, result.stderr
    return root, tmp_path / "plan.json"


def _refused(root: Path, plan: Path, *args: str, says: str) -> None:
    before = _files(root)
    result = apply_gc(plan, "--yes", *args)
    assert result.returncode == EXIT_REFUSED, result.stdout + result.stderr
    assert says in result.stderr, result.stderr
    assert _files(root) == before
    assert not Path(f"{plan}.journal").exists() or Path(f"{plan}.journal").read_text() == ""


def _edit(plan: Path, change: Callable[[dict[str, Any]], None], *, checksum: bool = False) -> None:
    """Change the plan's JSON; with `checksum`, give it the checksum of what it now holds."""
    doc = json.loads(plan.read_text())
    change(doc)
    plan.write_text(json.dumps(doc))
    if checksum:
        with Plan.load(plan) as loaded:
            doc["checksum"] = loaded.checksum()
        plan.write_text(json.dumps(doc))


def test_more_deletions_than_max_deletes(planned: tuple[Path, Path]) -> None:
    root, plan = planned
    count = len(json.loads(plan.read_text())["actions"])
    _refused(root, plan, "--max-deletes", str(count - 1), says=f"more than --max-deletes {count - 1}")
    assert apply_gc(plan, "--max-deletes", str(count)).returncode == 0


def test_a_stale_plan(planned: tuple[Path, Path]) -> None:
    root, plan = planned
    two_days_ago = (datetime.now(UTC) - timedelta(days=2)).isoformat().replace("+00:00", "Z")
    _edit(plan, lambda doc: doc["snapshot"].update(taken_at=two_days_ago), checksum=True)
    _refused(root, plan, says="the plan is stale")
    assert apply_gc(plan, "--max-plan-age", "3d").returncode == 0


def test_a_plan_of_another_registry(planned: tuple[Path, Path]) -> None:
    root, plan = planned
    _refused(root, plan, "--endpoint-url", "http://127.0.0.1:9", says="made from another registry")


@pytest.mark.parametrize("change", ["digest", "cut_short", "no_checksum"])
def test_a_plan_edited_by_hand(planned: tuple[Path, Path], change: str) -> None:
    root, plan = planned

    def edit(doc: dict[str, Any]) -> None:
        if change == "digest":
            action = next(a for a in doc["actions"] if a["action"] == "delete_blob")
            action["digest"] = "sha256:" + "0" * 64
        elif change == "cut_short":
            doc["actions"].pop()
        else:
            del doc["checksum"]

    _edit(plan, edit)
    _refused(root, plan, says="checksum")


def test_a_second_apply_while_one_holds_the_lock(planned: tuple[Path, Path]) -> None:
    root, plan = planned
    fd = os.open(f"{plan}.journal.lock", os.O_RDWR | os.O_CREAT, 0o644)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)  # what a running apply-gc holds
        _refused(root, plan, says="another apply-gc of this plan is running")
        result = apply_gc(plan, "--yes", "--json")
        assert result.returncode == EXIT_REFUSED and json.loads(result.stdout)["kind"] == "refused"
    finally:
        os.close(fd)
    assert apply_gc(plan, "--yes").returncode == 0  # the lock released: it runs
