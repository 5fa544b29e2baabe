"""apply-gc on a copy of sample_data (file times kept): a tag moved since the plan and what
depends on it, a blob written again within the grace period, --quiet, explain --journal,
a journal cut short by a kill and one damaged, and the rate limiter's schedule."""

from __future__ import annotations

import json
import os
import shutil
import sys
from pathlib import Path
from typing import Any

import pytest
from support.apply_runs import apply_gc, apply_json, regstat

from regstat.apply.runner import Limiter
from regstat.errors import EXIT_REFUSED

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "sample_data"
V2 = Path("docker") / "registry" / "v2"
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from restore_sample_ages import restore  # noqa: E402


def _plan(tmp_path: Path, *plan_args: str) -> tuple[Path, Path, dict[str, Any]]:
    root = tmp_path / "registry"
    shutil.copytree(SAMPLE, root, copy_function=shutil.copy2)
    restore(root)  # the ages the README's first command gives, whenever this checkout was made
    snapshot, plan = tmp_path / "snap", tmp_path / "plan.json"
    for args in (("crawl", str(root), "-o", str(snapshot)), ("plan-gc", str(snapshot), *plan_args, "-o", str(plan))):
        result = regstat(*args)
        assert result.returncode == 0, result.stderr
    return root, plan, json.loads(plan.read_text())


def _actions(plan: dict[str, Any], kind: str) -> list[dict[str, Any]]:
    return [a for a in plan["actions"] if a["action"] == kind]


def test_a_tag_moved_since_the_plan(tmp_path: Path) -> None:
    """Two signatures' .sig tags are planned away with the signatures and their subjects. One
    tag moves onto the other signature: it stays (tag_moved); the signature it now names stays
    (tagged), so does that signature's subject (referenced: its referrer stayed) and their blobs."""
    root, plan_path, plan = _plan(tmp_path, "--untagged", "--grace", "0s")
    moved, other = _actions(plan, "delete_tag")[:2]
    assert moved["repository"] == other["repository"] and moved["digest"] != other["digest"]
    link = root / V2 / "repositories" / moved["repository"] / "_manifests" / "tags" / moved["tag"] / "current" / "link"
    link.write_text(other["digest"])

    dry = apply_json(plan_path)
    result = apply_gc(plan_path)
    assert "skipped tag_moved: tag " + moved["repository"] in result.stdout, result.stdout
    done = apply_json(plan_path, "--yes")
    assert done["items"] == dry["items"], "the dry run said what the run did"
    assert done["counts"]["deleted"] == dry["counts"]["would_delete"]
    items = {(i["action"], i["digest"]): i["reason"] for i in done["items"]}
    assert items[("delete_tag", moved["digest"])] == "tag_moved"
    assert items[("delete_manifest", other["digest"])] == "tagged"
    subject = other["tag"].removesuffix(".sig").replace("sha256-", "sha256:")
    assert items[("delete_manifest", subject)] == "referenced"
    assert done["counts"]["failed"] == 0 and done["counts"]["deleted"] > 0
    assert link.read_text() == other["digest"]
    revisions = root / V2 / "repositories" / other["repository"] / "_manifests" / "revisions" / "sha256"
    assert (revisions / other["digest"].removeprefix("sha256:") / "link").exists()
    assert (revisions / subject.removeprefix("sha256:") / "link").exists()
    assert not (revisions / moved["digest"].removeprefix("sha256:")).exists(), "untagged now: it goes"

    check = regstat("crawl", str(root), "-o", str(tmp_path / "after"))
    assert check.returncode == 0, check.stderr  # nothing left dangling


def test_a_blob_written_again_within_the_grace_period(tmp_path: Path) -> None:
    root, plan_path, plan = _plan(tmp_path, "--untagged", "--grace", "1h")
    blob = _actions(plan, "delete_blob")[0]
    hex_part = blob["digest"].removeprefix("sha256:")
    data = root / V2 / "blobs" / "sha256" / hex_part[:2] / hex_part / "data"
    os.utime(data)  # now: younger than the plan's grace

    done = apply_json(plan_path, "--yes")
    assert [(i["digest"], i["reason"]) for i in done["items"]] == [(blob["digest"], "blob_young")]
    assert data.exists()
    assert done["counts"]["deleted"] == len(plan["actions"]) - 1


def test_quiet_and_explain_from_the_journal(tmp_path: Path) -> None:
    _, plan_path, plan = _plan(tmp_path, "--untagged", "--grace", "0s")
    result = apply_gc(plan_path, "--yes", "--quiet")
    assert (result.returncode, result.stdout, result.stderr) == (0, "", "")
    manifest = _actions(plan, "delete_manifest")[0]
    journal = f"{plan_path}.journal"
    said = regstat("explain", "--plan", str(plan_path), "--journal", journal, manifest["digest"][:19])
    assert said.returncode == 0, said.stderr
    assert f"delete_manifest {manifest['repository']} {manifest['digest']}" in said.stdout
    assert "run 1: deleted" in said.stdout
    as_json = json.loads(regstat("explain", "--plan", str(plan_path), "--journal", journal,
                                 f"{manifest['repository']}@{manifest['digest']}", "-f", "json").stdout)
    assert [a["outcome"]["status"] for a in as_json["actions"]] == ["deleted"]
    nothing = regstat("explain", "--plan", str(plan_path), "--journal", journal, "nope/none:v1")
    assert nothing.returncode == 1 and "no action on nope/none:v1" in nothing.stderr


def test_a_journal_cut_short_and_one_damaged(tmp_path: Path) -> None:
    root, plan_path, plan = _plan(tmp_path, "--untagged", "--grace", "0s")
    journal = Path(f"{plan_path}.journal")
    assert apply_gc(plan_path, "--yes").returncode == 0
    with journal.open("a") as f:
        f.write('{"event":"outcome","posi')  # a kill while writing: never acted on
    resumed = apply_json(plan_path, "--yes", "--resume")
    assert resumed["resumed"] == len(plan["actions"]), "every action settled by the first run"
    records = [json.loads(line) for line in journal.read_text().splitlines()]
    last_run = max(i for i, r in enumerate(records) if r["event"] == "run")
    assert records[last_run]["resumed"] and [r["event"] for r in records[last_run:]] == ["run", "finished"]

    lines = journal.read_text().splitlines()
    journal.write_text("\n".join([lines[0], "not json", *lines[1:]]) + "\n")
    result = apply_gc(plan_path, "--yes", "--resume")
    assert result.returncode == EXIT_REFUSED and "not a journal line" in result.stderr


@pytest.mark.parametrize(("rate", "batches", "expected"), [
    (100.0, [50, 50, 100], [0.5, 0.5]),  # they start at 0s, 0.5s and 1s: 100 a second
    (None, [1000, 1000], []),
])
def test_the_rate_limiter_schedule(rate: float | None, batches: list[int], expected: list[float]) -> None:
    now = [0.0]
    slept: list[float] = []

    def sleep(seconds: float) -> None:
        slept.append(round(seconds, 6))
        now[0] += seconds

    limiter = Limiter(rate, clock=lambda: now[0], sleep=sleep)
    for n in batches:
        limiter.wait(n)
    assert slept == expected


def test_rate_and_concurrency_change_nothing_but_the_pace(tmp_path: Path) -> None:
    """At --rate 40 a batch holds at most 40 actions; three batches in flight at once end as
    one at a time would: everything deleted, each action once."""
    root, plan_path, plan = _plan(tmp_path, "--untagged", "--grace", "0s")
    done = apply_json(plan_path, "--yes", "--rate", "40", "--concurrency", "3")
    assert done["counts"]["deleted"] == len(plan["actions"]) and done["items"] == []
    records = [json.loads(line) for line in Path(f"{plan_path}.journal").read_text().splitlines()]
    batches = [r["positions"] for r in records if r["event"] == "deleting"]
    assert max(len(b) for b in batches) == 40
    assert sorted(p for b in batches for p in b) == list(range(len(plan["actions"])))
    check = regstat("crawl", str(root), "-o", str(tmp_path / "after"))
    assert check.returncode == 0, check.stderr
