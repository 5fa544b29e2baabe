"""`regstat.plan.planner.plan_gc`: the safety rules of docs/design.md and issue 5, one hand-built snapshot
each with the exact actions expected, the hazardous shapes the registry's own GC gets wrong,
and properties over random registry graphs (tests/support/planner_graphs.py) checked by applying the
plan to the tables, step by step, and against a plain-Python model of the rules.

Times are relative to the snapshot's finished_at (planner_graphs.TAKEN); OLD is past every
grace period used here, YOUNG inside the default 24h.
"""

from __future__ import annotations

import itertools
import json
import re
from datetime import timedelta
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.planner_checks import B, M, T, U, actions, assert_locks_held, check_plan, deleted, policies
from support.planner_graphs import (
    DAY, TAKEN, YOUNG, Meta, Registry, blobs, d, image, index, random_registries, referrer, snapshot,
)

from regstat import analysis
from regstat.plan import plan as plan_module
from regstat.plan.plan import Plan
from regstat.plan.planner import PlanError, plan_gc
from regstat.plan.policy import Policy, PolicyError, Rule, from_flags
from regstat.plan.render import render_json, render_text

_dirs = itertools.count()


def make_plan(tmp_path: Path, reg: Registry, policy: Policy | None = None, *, source: str = "storage",
              meta: dict[str, Any] | None = None, **flags: Any) -> Plan:
    snap = snapshot(tmp_path / f"s{next(_dirs)}", reg.tables, source, **(meta or {}))
    return plan_gc(snap, policy if policy is not None else from_flags(**flags))


def reasons(plan: Plan) -> dict[tuple, str]:
    return dict(zip(actions(plan), (a["reason"] for a in plan.actions), strict=True))


UNTAGGED = {"untagged": True}


# --- docs/design.md "Safety rules of the planner" -----------------------------------------------


def test_rule1_a_blob_goes_only_with_its_last_reference(tmp_path: Path) -> None:
    # Layer L is shared by an orphan in a and a tagged image in b; config C1 only by the orphan;
    # G is referenced by nothing ("already gone" references).
    reg = blobs(Registry(), L=5000, C1=10, C2=20, G=7)
    image(reg, "a", "old", 101, config="C1", layers=("L",))
    image(reg, "b", "img", 202, config="C2", layers=("L",)).tag("b", "latest", d("img"))
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert deleted(plan) == {M("a", "old"), B("old"), B("C1"), B("G")}
    assert reasons(plan)[B("C1")] == "last reference deleted" and reasons(plan)[B("G")] == "unreferenced"
    assert plan.summary["bytes_reclaimed"] == 101 + 10 + 7
    # Once b's only tag goes too, its image goes (every tag deleted) and L with it.
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^latest$")
    assert deleted(plan) == {T("b", "latest"), M("a", "old"), M("b", "img"), B("old"), B("img"), B("C1"), B("C2"),
                             B("L"), B("G")}
    assert plan.summary["bytes_reclaimed"] == 101 + 202 + 10 + 20 + 5000 + 7


def test_rule2_nothing_a_kept_manifest_reaches_is_deleted(tmp_path: Path) -> None:
    # tagged index -> (image a1 -> signature -> attestation of the signature), nested index -> a3
    reg = blobs(Registry(), C=10, L1=1000, L3=3000, S=50, A=60)
    image(reg, "a", "a1", config="C", layers=("L1",))
    image(reg, "a", "a3", config="C", layers=("L3",))
    referrer(reg, "a", "sig", "a1", layers=("S",))
    referrer(reg, "a", "att", "sig", layers=("A",))
    index(reg, "a", "inner", ("a3",))
    index(reg, "a", "top", ("a1", "inner")).tag("a", "v1", d("top"))
    plan = make_plan(tmp_path, reg, untagged=True, grace="0s")
    assert plan.actions == []
    assert plan.summary["bytes_reclaimed"] == 0 and plan.summary["manifests"] == 0
    # The same graph untagged: all of it goes, each manifest and blob once.
    reg.tables["tags"].clear()
    plan = make_plan(tmp_path, reg, untagged=True, grace="0s")
    names = ("a1", "a3", "sig", "att", "inner", "top")
    assert deleted(plan) == {M("a", n) for n in names} | {B(n) for n in (*names, "C", "L1", "L3", "S", "A")}


def test_rule3_nothing_younger_than_the_grace_period(tmp_path: Path) -> None:
    reg = Registry()
    reg.blob(d("young-blob"), 1, modified_at=YOUNG).blob(d("timeless-blob"), 2, modified_at=None)
    reg.blob(d("old-blob"), 4).blob(d("young-layer"), 8, modified_at=YOUNG)
    image(reg, "a", "young", pushed_at=YOUNG)
    referrer(reg, "a", "sig-of-young", "young")  # old itself, kept with its young subject
    image(reg, "a", "timeless", pushed_at=None)  # a missing time counts as young
    image(reg, "a", "old", layers=("young-layer",))
    image(reg, "a", "x").tag("a", "pr-young", d("x"), YOUNG)
    image(reg, "a", "y").tag("a", "pr-old", d("y"))
    image(reg, "a", "z").tag("a", "pr-timeless", d("z"), None)
    reg.upload("a", "u-young", 16, YOUNG).upload("a", "u-old", 32).upload("a", "u-timeless", 64, None)
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    assert deleted(plan) == {T("a", "pr-old"), M("a", "old"), M("a", "y"), B("old"), B("y"), B("old-blob"),
                             U("a", "u-old")}
    assert plan.summary["bytes_reclaimed"] == 100 + 100 + 4 + 32
    # grace 0s turns the protection off entirely, missing times included.
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-", grace="0s")
    every_tag = {T("a", t) for t in ("pr-young", "pr-old", "pr-timeless")}
    every_manifest = {M("a", n) for n in ("young", "sig-of-young", "timeless", "old", "x", "y", "z")}
    assert deleted(plan) == every_tag | every_manifest | {B(n[2].removeprefix("sha256:")) for n in every_manifest} | {
        B("young-blob"), B("timeless-blob"), B("old-blob"), B("young-layer"),
        U("a", "u-young"), U("a", "u-old"), U("a", "u-timeless")}


def test_rule4_locked_manifests_and_their_tags_are_kept(tmp_path: Path) -> None:
    reg = blobs(Registry(), L=1000)
    image(reg, "a", "locked-orphan", layers=("L",), locked=True)
    image(reg, "a", "locked-tagged", locked=True).tag("a", "pr-1", d("locked-tagged"))
    image(reg, "a", "open").tag("a", "pr-2", d("open"))
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    assert deleted(plan) == {T("a", "pr-2"), M("a", "open"), B("open")}
    assert plan.summary["bytes_reclaimed"] == 100
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-", include_locked=True)
    assert deleted(plan) == {T("a", "pr-1"), T("a", "pr-2"), M("a", "locked-orphan"), M("a", "locked-tagged"),
                             M("a", "open"), B("locked-orphan"), B("locked-tagged"), B("open"), B("L")}


def _mixed(reg: Registry | None = None) -> Registry:
    """A tagged image, an orphan with a layer of its own, an unreferenced blob, a stale upload."""
    reg = blobs(reg or Registry(), LA=1000, LO=2000, G=4000)
    image(reg, "a", "kept", 101, layers=("LA",)).tag("a", "latest", d("kept"))
    image(reg, "a", "orphan", 102, layers=("LO",))
    return reg.upload("a", "u", 8)


@pytest.mark.parametrize("source", ["storage", "oci"])
def test_rule5_layouts_get_blob_deletions(tmp_path: Path, source: str) -> None:
    plan = make_plan(tmp_path, _mixed(), source=source, **UNTAGGED)
    assert deleted(plan) == {M("a", "orphan"), B("orphan"), B("LO"), B("G"), U("a", "u")}
    assert plan.summary["bytes_reclaimed"] == 102 + 2000 + 4000 + 8
    assert plan.summary["bytes_estimated"] is False and plan.notes == []


@pytest.mark.parametrize("source", ["api", "ecr"])
def test_rule5_api_and_ecr_get_no_blob_deletions_and_an_estimate(tmp_path: Path, source: str) -> None:
    plan = make_plan(tmp_path, _mixed(), source=source, untagged=True, delete_tags="^latest$")
    assert deleted(plan) == {T("a", "latest"), M("a", "kept"), M("a", "orphan")}
    # The estimate: what the registry frees once the manifests go, never unreferenced garbage.
    assert plan.summary["bytes_estimated"] is True
    assert plan.summary["bytes_reclaimed"] == 101 + 102 + 1000 + 2000
    assert plan.summary["blobs"] == 0 and plan.summary["uploads"] == 0


def test_rule5_an_api_snapshot_says_untagged_finds_nothing(tmp_path: Path) -> None:
    reg = blobs(Registry(), L=1000)
    image(reg, "a", "img", layers=("L",)).tag("a", "latest", d("img"))
    plan = make_plan(tmp_path, reg, source="api", **UNTAGGED)
    assert plan.actions == [] and plan.summary["bytes_estimated"] is True
    assert any("cannot see untagged manifests" in n for n in plan.notes), plan.notes


@pytest.mark.parametrize("meta", [
    {"partial": True, "repository_filter": ["a"]},
    {"complete": False, "errors": [{"repository": "other", "message": "boom"}], "incomplete_repositories": ["other"]},
    {"complete": False},
], ids=["partial", "errors-elsewhere", "incomplete"])
def test_rule5_partial_or_failed_crawls_get_no_blob_deletions(tmp_path: Path, meta: dict) -> None:
    plan = make_plan(tmp_path, _mixed(), meta=meta, **UNTAGGED)
    assert deleted(plan) == {M("a", "orphan")}  # manifests still go where the crawl was clean
    assert plan.summary["bytes_estimated"] is True and plan.summary["bytes_reclaimed"] == 102 + 2000
    assert any("blob" in n for n in plan.notes), plan.notes  # the plan says why
    assert ("partial" in meta) is any("partial snapshot" in n for n in plan.notes)
    assert ("partial" in meta) is not any("crawl errors" in n for n in plan.notes)


@pytest.mark.parametrize("how", ["incomplete", "error_count", "snapshot-errors"])
def test_rule5_a_repository_with_crawl_errors_gets_no_deletions(tmp_path: Path, how: str) -> None:
    reg = _mixed()
    reg.tag("a", "pr-1", d("kept"))
    image(reg, "bad", "bad-orphan")
    image(reg, "bad", "bad-img").tag("bad", "pr-1", d("bad-img"))
    reg.upload("bad", "ub", 16)
    meta: dict[str, Any] = {"complete": False}  # as the crawler writes it: no blob deletions either
    if how == "incomplete":
        reg.repository("bad", complete=False)
    elif how == "error_count":
        reg.repository("bad", error_count=2)
    else:
        meta["errors"] = [{"repository": "bad", "message": "tags: 500"}]
    plan = make_plan(tmp_path, reg, meta=meta, untagged=True, delete_tags="^pr-")
    assert deleted(plan) == {T("a", "pr-1"), M("a", "orphan")}
    assert any(n.startswith("bad: no deletions") and "errors" in n for n in plan.notes), plan.notes


def test_rule5_a_repository_marked_incomplete_alone_is_left_alone(tmp_path: Path) -> None:
    # The repositories table alone says so (snapshot.json lists nothing).
    reg = _mixed().repository("a", complete=False)
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert deleted(plan) == set()  # not even the unreferenced blob: a may reference it
    assert any(n.startswith("a: no deletions") for n in plan.notes), plan.notes
    assert any("no blob deletions" in n for n in plan.notes), plan.notes


@pytest.mark.parametrize("status", ["unknown_media_type", "invalid", "missing"])
def test_rule6_an_unreadable_manifest_stops_its_repository_and_every_blob_deletion(tmp_path: Path, status: str) -> None:
    reg = _mixed()
    image(reg, "b", "b-orphan", 103)
    reg.manifest("a", d("strange"), 50, status=status)  # may reference any blob: nothing in a goes
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert deleted(plan) == {M("b", "b-orphan")}
    assert plan.summary["blobs"] == 0 and plan.summary["bytes_estimated"] is True
    assert any(n.startswith("a: no deletions") and status in n for n in plan.notes), plan.notes


# --- issue 5, "Safety rules" --------------------------------------------------------------------


def test_a_blob_shared_across_repositories_goes_only_when_every_pair_goes(tmp_path: Path) -> None:
    reg = blobs(Registry(), S=1000)
    image(reg, "a", "ia", 101, layers=("S",)).tag("a", "pr-1", d("ia"))
    image(reg, "b", "ib", 102, layers=("S",)).tag("b", "pr-1", d("ib")).tag("b", "keep-me", d("ib"))
    plan = make_plan(tmp_path, reg, delete_tags="^pr-")
    assert deleted(plan) == {T("a", "pr-1"), T("b", "pr-1"), M("a", "ia"), B("ia")}
    assert plan.summary["bytes_reclaimed"] == 101
    plan = make_plan(tmp_path, reg, delete_tags="^(pr-1|keep-me)$")
    assert B("S") in deleted(plan) and plan.summary["bytes_reclaimed"] == 101 + 102 + 1000


def test_children_and_referrers_of_kept_manifests_are_kept_at_any_depth(tmp_path: Path) -> None:
    # kept: index -> index -> image <- signature <- attestation; orphan: image <- sbom <- its signature
    reg = Registry()
    image(reg, "a", "leaf")
    referrer(reg, "a", "sig", "leaf")
    referrer(reg, "a", "att", "sig")
    index(reg, "a", "mid", ("leaf",))
    index(reg, "a", "top", ("mid",)).tag("a", "v1", d("top"))
    image(reg, "a", "lost")
    referrer(reg, "a", "sbom", "lost")
    referrer(reg, "a", "sbom-sig", "sbom")
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    gone = ("lost", "sbom", "sbom-sig")
    assert deleted(plan) == {M("a", n) for n in gone} | {B(n) for n in gone}
    assert reasons(plan)[M("a", "sbom")] == "referrer of an orphaned manifest"
    assert actions(plan).index(M("a", "sbom-sig")) < actions(plan).index(M("a", "sbom")) < actions(plan).index(
        M("a", "lost"))


def test_deleting_one_of_two_tags_deletes_only_the_tag(tmp_path: Path) -> None:
    reg = blobs(Registry(), L=1000)
    image(reg, "a", "img", layers=("L",)).tag("a", "pr-1", d("img")).tag("a", "stable", d("img"))
    referrer(reg, "a", "sig", "img")
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    assert actions(plan) == [T("a", "pr-1")]
    assert plan.summary["bytes_reclaimed"] == 0


def test_a_dangling_tag_is_a_tag_like_any_other(tmp_path: Path) -> None:
    # Its manifest is not in the repository (deleted, or never crawled): the tag goes by the
    # rules, counts for keep, and nothing else follows from it.
    reg = Registry()
    _tags(reg, "a", {"v1": 30, "v2": 20})
    reg.tag("a", "gone", d("nowhere"), TAKEN - 10 * DAY)
    plan = make_plan(tmp_path, reg, keep=2)
    assert actions(plan) == [T("a", "v1"), M("a", "a-v1"), B("a-v1")]
    assert actions(make_plan(tmp_path, reg, delete_tags="^gone$")) == [T("a", "gone")]


def test_bytes_reclaimed_counts_each_blob_once_and_only_with_its_last_reference(tmp_path: Path) -> None:
    # Three orphans list layer L (one of them twice); another repository keeps config C.
    reg = blobs(Registry(), L=1000, C=10)
    image(reg, "a", "o1", 101, layers=("L", "L"))
    image(reg, "a", "o2", 102, layers=("L",), config="C")
    image(reg, "b", "o1", 101, layers=("L", "L"))  # the same manifest in another repository
    image(reg, "c", "keeper", 103, config="C").tag("c", "latest", d("keeper"))
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert deleted(plan) == {M("a", "o1"), M("a", "o2"), M("b", "o1"), B("o1"), B("o2"), B("L")}
    assert plan.summary["bytes_reclaimed"] == 101 + 102 + 1000
    assert plan.summary["blobs"] == 3 and plan.summary["manifests"] == 3


# --- tag rules and their protections --------------------------------------------------------------


def _tags(reg: Registry, repo: str, ages: dict[str, float | None]) -> Registry:
    """One image per tag, its tag updated `ages[tag]` days before the snapshot (None: unknown)."""
    for tag, age in ages.items():
        image(reg, repo, f"{repo}-{tag}").tag(repo, tag, d(f"{repo}-{tag}"), None if age is None else TAKEN - age * DAY)
    return reg


AGES = {"v1": 50, "v2": 40, "v3": 20, "v4": 5, "pr-1": 45, "pr-2": 3, "unknown": None}


def _deleted_tags(plan: Plan) -> set[str]:
    return {a["tag"] for a in plan.actions if a["action"] == "delete_tag"}


@pytest.mark.parametrize("flags, expected", [
    ({"older_than": "30d"}, {"v1", "v2", "pr-1"}),  # an unknown age is never "older"
    ({"keep": 3}, {"v1", "v2", "pr-1"}),  # pr-2, v4, v3 stay; unknown is young (grace): not counted
    ({"keep": 0}, {"v1", "v2", "v3", "v4", "pr-1", "pr-2"}),  # unknown: a missing time is young (grace)
    ({"delete_tags": "^pr-"}, {"pr-1", "pr-2"}),
    ({"delete_tags": "[0-9]$"}, {"v1", "v2", "v3", "v4", "pr-1", "pr-2"}),  # re.search, not a full match
    ({"older_than": "30d", "delete_tags": "^v"}, {"v1", "v2"}),  # both selectors must agree
    ({"older_than": "30d", "keep": 1, "delete_tags": "^v"}, {"v1"}),  # of v1 and v2 selected, v2 stays
    ({"older_than": "30d", "keep": 2, "delete_tags": "^v"}, set()),  # keep counts the selected only
    ({"older_than": "10d", "keep": 2}, {"v1", "pr-1"}),  # of v1, pr-1, v2, v3 selected, v3 and v2 stay
    ({"keep": 3, "keep_tags": ("^v1$", "^v3")}, {"pr-1"}),  # protected tags do not count: pr-2, v4, v2 stay
    ({}, set()),
    ({"untagged": True}, set()),
], ids=lambda v: json.dumps(v) if isinstance(v, dict) else None)
def test_tag_rules(tmp_path: Path, flags: dict, expected: set[str]) -> None:
    reg = _tags(Registry(), "a", AGES)
    plan = make_plan(tmp_path, reg, **flags)
    assert _deleted_tags(plan) == expected
    assert {a["digest"] for a in plan.actions if a["action"] == "delete_manifest"} == {d(f"a-{t}") for t in expected}
    assert all(a["reason"] == "every tag deleted" for a in plan.actions if a["action"] == "delete_manifest")


def _acr_example() -> Registry:
    """acr purge's own example: v1-a 15 minutes old, v1-b a day, v1-c two days, v2 three."""
    reg = Registry()
    for tag, age in {"v1-a": timedelta(minutes=15), "v1-b": DAY, "v1-c": 2 * DAY, "v2": 3 * DAY}.items():
        image(reg, "a", tag).tag("a", tag, d(tag), TAKEN - age)
    return reg


def test_keep_spares_the_newest_of_the_selected_tags_as_acr_purge_does(tmp_path: Path) -> None:
    # acr purge --filter 'a:^v1-' --ago 30m --keep 1 deletes v1-c: v1-a is too young to be
    # selected, v1-b is the newest selected one and stays. Counting all tags instead (v1-a, the
    # newest, stays) would delete v1-b too.
    reg = _acr_example()
    plan = make_plan(tmp_path, reg, delete_tags="^v1-", older_than="30m", keep=1, grace="0s")
    assert deleted(plan) == {T("a", "v1-c"), M("a", "v1-c"), B("v1-c")}
    assert reasons(plan)[T("a", "v1-c")] == ("older than 30m, matches '^v1-', beyond the 1 most recently updated "
                                             "(command line)")
    # Only --keep: every tag is selected.
    assert _deleted_tags(make_plan(tmp_path, reg, keep=1, grace="0s")) == {"v1-b", "v1-c", "v2"}
    assert _deleted_tags(make_plan(tmp_path, reg, keep=0, grace="0s")) == {"v1-a", "v1-b", "v1-c", "v2"}


@pytest.mark.parametrize("protection", [
    {"keep_tags": ("^v1-b$",)},
    {"grace": "36h"},  # v1-b (a day old) is inside the grace period
    {"locked": "v1-b"},
    {"pulled_within": "7d", "pulled": "v1-b", "source": "ecr"},
], ids=lambda v: next(iter(v)))
def test_protected_tags_never_count_toward_keep(tmp_path: Path, protection: dict) -> None:
    # v1-b would be the one --keep 1 spares; protected, it stays and v1-c is the newest selected
    # tag: it stays too, and nothing goes.
    flags = dict(protection)
    reg = _acr_example()
    for row in reg.tables["manifests"]:
        if row["digest"] == d(flags.get("locked", "")):
            row["locked"] = True
        if row["digest"] == d(flags.get("pulled", "")):
            row["last_pulled_at"] = TAKEN - DAY
    source = flags.pop("source", "storage")
    flags.pop("locked", None), flags.pop("pulled", None)
    plan = make_plan(tmp_path, reg, source=source, delete_tags="^v1-", older_than="30m", keep=1,
                     **{"grace": "0s", **flags})
    assert _deleted_tags(plan) == set()
    # Without the protection, v1-c goes (the control).
    assert _deleted_tags(make_plan(tmp_path, _acr_example(), source=source, delete_tags="^v1-", older_than="30m",
                                   keep=1, grace="0s")) == {"v1-c"}


def test_keep_breaks_ties_by_name_and_counts_a_missing_time_as_newest(tmp_path: Path) -> None:
    reg = Registry()
    for tag, updated in {"b": TAKEN - 5 * DAY, "a": TAKEN - 5 * DAY, "c": TAKEN - 5 * DAY, "x": None}.items():
        image(reg, "r", tag).tag("r", tag, d(tag), updated)
    # The grace off, the tag without a time is a candidate, and counts as the newest.
    assert _deleted_tags(make_plan(tmp_path, reg, keep=2, grace="0s")) == {"b", "c"}
    assert _deleted_tags(make_plan(tmp_path, reg, keep=1, grace="0s")) == {"a", "b", "c"}


def test_keep_counts_per_repository(tmp_path: Path) -> None:
    reg = _tags(_tags(Registry(), "a", {"x": 10, "y": 20, "z": 30}), "b", {"x": 40, "y": 50})
    plan = make_plan(tmp_path, reg, keep=2)
    assert {t for t in actions(plan) if t[0] == "tag"} == {T("a", "z")}


def test_grace_protects_tags_whatever_the_rule(tmp_path: Path) -> None:
    reg = _tags(Registry(), "a", {"old": 50, "young": 0.5, "unknown": None})
    assert _deleted_tags(make_plan(tmp_path, reg, keep=0)) == {"old"}
    assert _deleted_tags(make_plan(tmp_path, reg, keep=0, grace="2h")) == {"old", "young"}
    assert _deleted_tags(make_plan(tmp_path, reg, keep=0, grace="0s")) == {"old", "young", "unknown"}


def test_pulled_within_needs_pull_times_and_protects(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "a", "pulled", last_pulled_at=TAKEN - 2 * DAY).tag("a", "pr-1", d("pulled"))
    image(reg, "a", "stale", last_pulled_at=TAKEN - 20 * DAY).tag("a", "pr-2", d("stale"))
    image(reg, "a", "never").tag("a", "pr-3", d("never"))
    image(reg, "a", "orphan-pulled", last_pulled_at=TAKEN - DAY)
    image(reg, "a", "orphan-stale", last_pulled_at=TAKEN - 20 * DAY)
    with pytest.raises(PolicyError, match="pull"):
        make_plan(tmp_path, reg, source="storage", untagged=True, delete_tags="^pr-", pulled_within="7d")
    plan = make_plan(tmp_path, reg, source="ecr", untagged=True, delete_tags="^pr-", pulled_within="7d")
    assert deleted(plan) == {T("a", "pr-2"), T("a", "pr-3"), M("a", "stale"), M("a", "never"),
                             M("a", "orphan-stale")}


def test_the_repository_scope_leaves_others_alone_but_judges_blobs_registry_wide(tmp_path: Path) -> None:
    reg = blobs(Registry(), S=1000, X=2000)
    image(reg, "ci/x", "ci-orphan", 101, layers=("S", "X"))
    image(reg, "apps/web", "web-orphan", 102, layers=("S",))  # outside: kept, and it keeps S
    image(reg, "apps/web", "web").tag("apps/web", "pr-1", d("web"))
    reg.upload("apps/web", "u", 8).upload("ci/x", "u", 16)
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-", repositories=("ci/*",))
    assert deleted(plan) == {M("ci/x", "ci-orphan"), B("ci-orphan"), B("X"), U("ci/x", "u")}
    assert plan.summary["bytes_reclaimed"] == 101 + 2000 + 16


def test_policy_file_rules_govern_their_repositories(tmp_path: Path) -> None:
    ci = Rule(name="ci", repositories=("ci/*",), untagged=True, keep=1)
    policy = Policy(default=Rule(name="default"), rules=(ci,))
    reg = _tags(Registry(), "ci/x", {"new": 1.5, "old": 30})
    _tags(reg, "apps/web", {"new": 1.5, "old": 30})
    image(reg, "ci/x", "ci-orphan")
    image(reg, "apps/web", "web-orphan")
    plan = make_plan(tmp_path, reg, policy)
    assert deleted(plan) == {T("ci/x", "old"), M("ci/x", "ci/x-old"), M("ci/x", "ci-orphan"), B("ci/x-old"),
                             B("ci-orphan")}
    assert {a["rule"] for a in plan.actions if "rule" in a} == {"ci"}


def test_untagged_off_keeps_orphans_but_a_manifest_whose_tags_all_go_goes(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "a", "orphan")
    referrer(reg, "a", "orphan-sig", "orphan")
    image(reg, "a", "img").tag("a", "pr-1", d("img")).tag("a", "pr-2", d("img"))
    referrer(reg, "a", "img-sig", "img")
    plan = make_plan(tmp_path, reg, delete_tags="^pr-")
    assert actions(plan) == [T("a", "pr-1"), T("a", "pr-2"), M("a", "img-sig"), M("a", "img"), B("img"),
                             B("img-sig")]
    assert reasons(plan)[M("a", "img")] == "every tag deleted"
    assert reasons(plan)[M("a", "img-sig")] == "referrer of a deleted manifest"


def test_every_tag_deleted_takes_the_children_only_it_reached(tmp_path: Path) -> None:
    reg = blobs(Registry(), L1=1000, L2=2000)
    image(reg, "a", "amd64", layers=("L1",))
    image(reg, "a", "arm64", layers=("L2",))
    index(reg, "a", "old-index", ("amd64", "arm64")).tag("a", "pr-1", d("old-index"))
    index(reg, "a", "new-index", ("arm64",)).tag("a", "latest", d("new-index"))
    plan = make_plan(tmp_path, reg, delete_tags="^pr-")
    assert actions(plan) == [T("a", "pr-1"), M("a", "old-index"), M("a", "amd64"), B("L1"), B("amd64"),
                             B("old-index")]
    assert reasons(plan)[M("a", "amd64")] == "child of a deleted index"


# --- tags on referrers ------------------------------------------------------------------------------


def test_a_tag_on_a_referrer_follows_its_subject(tmp_path: Path) -> None:
    # cosign tags its signature sha256-<digest>.sig; neither selected nor counted by keep.
    reg = Registry()
    _tags(reg, "a", {"v1": 30, "v2": 20})
    referrer(reg, "a", "sig1", "a-v1").tag("a", "sha256-v1.sig", d("sig1"), TAKEN - 29 * DAY)
    referrer(reg, "a", "sig2", "a-v2").tag("a", "sha256-v2.sig", d("sig2"), TAKEN - 19 * DAY)
    plan = make_plan(tmp_path, reg, keep=1)  # the .sig tags are newer, yet v2 is the newest tag
    assert actions(plan) == [T("a", "sha256-v1.sig"), T("a", "v1"), M("a", "sig1"), M("a", "a-v1"), B("a-v1"),
                             B("sig1")]
    assert _deleted_tags(make_plan(tmp_path, reg, delete_tags="sig")) == set()
    assert _deleted_tags(make_plan(tmp_path, reg, older_than="1d")) == {"v1", "v2", "sha256-v1.sig",
                                                                        "sha256-v2.sig"}


def test_a_protected_tag_on_a_referrer_keeps_it_and_its_subject(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "a", "img").tag("a", "pr-1", d("img"))
    referrer(reg, "a", "sig", "img").tag("a", "sha256-img.sig", d("sig"))
    referrer(reg, "a", "att", "img")
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-", keep_tags=(r"\.sig$",))
    assert actions(plan) == [T("a", "pr-1")]  # no kept referrer points at a deleted subject
    # A young .sig tag protects the same way.
    reg.tables["tags"][-1]["updated_at"] = YOUNG
    assert actions(make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")) == [T("a", "pr-1")]


def test_a_kept_referrer_keeps_an_orphaned_subject(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "a", "orphan")
    referrer(reg, "a", "young-sig", "orphan", pushed_at=YOUNG)
    referrer(reg, "a", "other-sig", "orphan")  # kept: a referrer of a kept subject
    assert actions(make_plan(tmp_path, reg, **UNTAGGED)) == []


# --- hazardous shapes (what registry GC --delete-untagged gets wrong, and more) ---------------------


def test_tagged_multi_arch_index_keeps_its_untagged_children(tmp_path: Path) -> None:
    reg = blobs(Registry(), L1=1000, L2=2000, C=10)
    image(reg, "a", "amd64", config="C", layers=("L1",))
    image(reg, "a", "arm64", config="C", layers=("L2",))
    index(reg, "a", "index", ("amd64", "arm64")).tag("a", "latest", d("index"))
    assert actions(make_plan(tmp_path, reg, untagged=True, grace="0s")) == []


def test_untagged_signature_of_a_tagged_image_is_kept(tmp_path: Path) -> None:
    reg = blobs(Registry(), S=50)
    image(reg, "a", "img").tag("a", "latest", d("img"))
    referrer(reg, "a", "sig", "img", layers=("S",))
    assert actions(make_plan(tmp_path, reg, untagged=True, grace="0s")) == []


def test_an_overwritten_tag_orphans_the_old_image_and_its_signature(tmp_path: Path) -> None:
    reg = blobs(Registry(), BASE=5000, OLD_L=1000, NEW_L=2000, S=50)
    image(reg, "a", "v-old", 101, layers=("BASE", "OLD_L"))
    referrer(reg, "a", "sig-old", "v-old", 102, layers=("S",))
    image(reg, "a", "v-new", 103, layers=("BASE", "NEW_L")).tag("a", "latest", d("v-new"))
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert actions(plan) == [M("a", "sig-old"), M("a", "v-old"), B("OLD_L"), B("S"), B("sig-old"), B("v-old")]
    assert plan.summary["bytes_reclaimed"] == 101 + 102 + 1000 + 50
    assert reasons(plan)[M("a", "v-old")] == "untagged"
    assert plan.actions[1]["bytes_freed"] == 101 + 1000  # the signature's own blobs are not its
    assert actions(make_plan(tmp_path, reg)) == []  # without --untagged, orphans stay


def test_the_same_manifest_in_two_repositories_keeps_its_blobs_while_either_holds_it(tmp_path: Path) -> None:
    reg = blobs(Registry(), L=1000)
    image(reg, "a", "img", 101, layers=("L",))
    image(reg, "b", "img", 101, layers=("L",)).tag("b", "latest", d("img"))  # a cross-repository mount
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert actions(plan) == [M("a", "img")]
    assert plan.summary["bytes_reclaimed"] == 0
    assert plan.actions[0]["bytes_freed"] == 0
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags=".")
    assert deleted(plan) == {T("b", "latest"), M("a", "img"), M("b", "img"), B("img"), B("L")}
    assert plan.summary["bytes_reclaimed"] == 101 + 1000


def test_a_layer_shared_across_repositories_stays_while_one_keeps_it(tmp_path: Path) -> None:
    reg = blobs(Registry(), SHARED=5000, OWN=1000)
    image(reg, "a", "orphan", layers=("SHARED", "OWN"))
    image(reg, "b", "app", layers=("SHARED",)).tag("b", "latest", d("app"))
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert deleted(plan) == {M("a", "orphan"), B("orphan"), B("OWN")}


def test_nested_indexes_and_referrers_of_referrers(tmp_path: Path) -> None:
    # Old release: index of indexes, each platform image signed, and the signature attested.
    reg = Registry()
    for n in ("amd64", "arm64"):
        image(reg, "a", n)
        referrer(reg, "a", f"{n}-sig", n)
        referrer(reg, "a", f"{n}-att", f"{n}-sig")
    index(reg, "a", "linux", ("amd64", "arm64"))
    index(reg, "a", "top", ("linux",)).tag("a", "pr-1", d("top"))
    referrer(reg, "a", "top-sig", "top")
    assert actions(make_plan(tmp_path, reg, untagged=True, grace="0s")) == []
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-", grace="0s")
    order = actions(plan)
    names = ("amd64", "arm64", "amd64-sig", "arm64-sig", "amd64-att", "arm64-att", "linux", "top", "top-sig")
    assert set(order) == {T("a", "pr-1")} | {M("a", n) for n in names} | {B(n) for n in names}
    before = [(M("a", "top-sig"), M("a", "top")), (M("a", "top"), M("a", "linux")), (M("a", "linux"), M("a", "amd64")),
              (M("a", "amd64-att"), M("a", "amd64-sig")), (M("a", "amd64-sig"), M("a", "amd64")),
              (M("a", "arm64-att"), M("a", "arm64-sig")), (M("a", "arm64-sig"), M("a", "arm64"))]
    assert all(order.index(x) < order.index(y) for x, y in before), order
    assert reasons(plan)[M("a", "amd64-att")] == "referrer of a deleted manifest"
    assert reasons(plan)[M("a", "linux")] == "child of a deleted index"


def test_an_orphan_cascades_through_an_index_but_not_past_a_kept_manifest(tmp_path: Path) -> None:
    # untagged index -> m1, m2; m2 is also a child of the tagged index: it stays, with its blobs.
    reg = blobs(Registry(), L1=1000, L2=2000, C=10)
    image(reg, "a", "m1", 101, config="C", layers=("L1",))
    image(reg, "a", "m2", 102, config="C", layers=("L2",))
    index(reg, "a", "orphan-index", ("m1", "m2"), 103)
    index(reg, "a", "tagged-index", ("m2",), 104).tag("a", "latest", d("tagged-index"))
    plan = make_plan(tmp_path, reg, **UNTAGGED)
    assert actions(plan) == [M("a", "orphan-index"), M("a", "m1"), B("L1"), B("m1"), B("orphan-index")]
    assert reasons(plan)[M("a", "m1")] == "child of an orphaned index"
    assert plan.summary["bytes_reclaimed"] == 101 + 103 + 1000


def test_protections_are_written_once() -> None:
    # The planner (tags and manifests) and the report's "reclaimable now" read one definition,
    # sql/plan_protections.sql: no other SQL query or module spells a protection's reason.
    root = Path(__file__).resolve().parent.parent
    sql = {p.name: re.sub(r"--[^\n]*", "", p.read_text()) for p in (root / "sql").glob("*.sql")}
    code = {p.name: p.read_text() for p in (root / "regstat").rglob("*.py")}
    for reason in ("outside the repositories the policy applies to", "younger than the grace period",
                   "protected by keep_tags", "index.json lists it", "untagged, and the rule keeps untagged manifests",
                   "pulled within", "the manifest could not be read"):
        assert [n for n, text in sql.items() if f"'{reason}" in text] == ["plan_protections.sql"], reason
        assert [n for n, text in code.items() if f'"{reason}' in text] == [], reason
    assert [n for n, text in sql.items() if "'locked'" in text] == ["plan_protections.sql"]


def test_orphans_are_worded_as_the_view_orphaned_manifests_words_them(tmp_path: Path) -> None:
    # One orphan of each kind; --untagged deletes exactly the orphans, each for the reason the
    # analysis gives it (both read the view orphan_reasons).
    reg = Registry()
    image(reg, "a", "kept").tag("a", "latest", d("kept"))
    image(reg, "a", "lost")
    referrer(reg, "a", "sbom", "lost")
    referrer(reg, "a", "dangling", "gone")
    index(reg, "a", "orphan-index", ("child",))
    image(reg, "a", "child")
    snap = snapshot(tmp_path / "s", reg.tables)
    con = analysis.connect(snap)
    orphaned = {("manifest", r, m): why for r, m, why in con.execute(
        "SELECT repository, digest, reason FROM orphaned_manifests").fetchall()}
    con.close()
    with plan_gc(snap, from_flags(untagged=True)) as plan:
        planned = {a: why for a, why in reasons(plan).items() if a[0] == "manifest"}
    assert planned == orphaned
    assert planned == {M("a", "lost"): "untagged", M("a", "sbom"): "referrer of an orphaned manifest",
                       M("a", "dangling"): "referrer of a missing subject", M("a", "orphan-index"): "untagged",
                       M("a", "child"): "child of an orphaned index"}


# --- keep_untagged -----------------------------------------------------------------------------


def _orphans(reg: Registry, repo: str, ages: dict[str, float | None]) -> Registry:
    """One orphaned image per name, pushed `ages[name]` days before the snapshot (None: unknown)."""
    for name, age in ages.items():
        image(reg, repo, f"{repo}-{name}", pushed_at=None if age is None else TAKEN - age * DAY)
    return reg


def test_keep_untagged_spares_the_newest_orphans_of_each_repository(tmp_path: Path) -> None:
    reg = _orphans(_orphans(Registry(), "a", {"x": 3, "y": 5, "z": 7}), "b", {"x": 2, "y": 4})
    image(reg, "a", "tagged", pushed_at=TAKEN - 9 * DAY).tag("a", "latest", d("tagged"))  # counts for nothing
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=1, grace="0s")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-y"), M("a", "a-z"), M("b", "b-y")}
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=2, grace="0s")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-z")}
    assert {t for t in deleted(make_plan(tmp_path, reg, untagged=True, keep_untagged=0, grace="0s"))
            if t[0] == "manifest"} == {M("a", f"a-{n}") for n in "xyz"} | {M("b", f"b-{n}") for n in "xy"}


def test_keep_untagged_counts_top_level_orphans_and_keeps_what_they_reach(tmp_path: Path) -> None:
    # An orphaned index (2 days) with a child pushed later (1 day) and a signature (1 day): the
    # child and the signature are not counted, and stay with their index.
    reg = blobs(Registry(), L1=1000, L2=2000, S=50)
    image(reg, "a", "child", layers=("L1",), pushed_at=TAKEN - DAY)
    index(reg, "a", "idx", ("child",), pushed_at=TAKEN - 2 * DAY)
    referrer(reg, "a", "idx-sig", "idx", layers=("S",), pushed_at=TAKEN - DAY)
    _orphans(reg, "a", {"o3": 3, "o4": 4})
    image(reg, "a", "shared", layers=("L2",), pushed_at=TAKEN - 5 * DAY)
    index(reg, "a", "idx-old", ("shared",), pushed_at=TAKEN - 6 * DAY)
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=2, grace="0s")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-o4"), M("a", "idx-old"), M("a", "shared")}
    assert B("L1") not in deleted(plan) and B("S") not in deleted(plan) and B("L2") in deleted(plan)
    # One spared: the index, whose child and signature stay with it.
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=1, grace="0s")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {
        M("a", "a-o3"), M("a", "a-o4"), M("a", "idx-old"), M("a", "shared")}


def test_keep_untagged_does_not_count_protected_orphans(tmp_path: Path) -> None:
    reg = _orphans(Registry(), "a", {"young": 0.5, "x": 3, "y": 5})
    reg.tables["manifests"][-1]["locked"] = True  # y: locked
    # young is inside the grace period and y is locked: neither counts, so x is spared.
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=1, grace="1d")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == set()
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=1, grace="1d", include_locked=True)
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-y")}
    # Protections off, the young one is the newest orphan: it is the one spared.
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=1, grace="0s", include_locked=True)
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-x"), M("a", "a-y")}


def test_keep_untagged_counts_a_missing_push_time_as_newest_and_ties_by_digest(tmp_path: Path) -> None:
    reg = _orphans(Registry(), "a", {"b": 3, "a": 3, "c": 3, "unknown": None})
    plan = make_plan(tmp_path, reg, untagged=True, keep_untagged=2, grace="0s")
    assert {t for t in deleted(plan) if t[0] == "manifest"} == {M("a", "a-b"), M("a", "a-c")}


def test_keep_untagged_needs_untagged() -> None:
    with pytest.raises(PolicyError, match="--keep-untagged needs --untagged"):
        from_flags(keep_untagged=2)


def test_the_action_order_tags_manifests_blobs_uploads(tmp_path: Path) -> None:
    reg = _mixed()
    reg.tag("a", "pr-1", d("orphan"))
    plan = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    kinds = [a["action"] for a in plan.actions]
    assert kinds == sorted(kinds, key=["delete_tag", "delete_manifest", "delete_blob", "delete_upload"].index)
    assert kinds == ["delete_tag", "delete_manifest", "delete_blob", "delete_blob", "delete_blob", "delete_upload"]


def test_the_plan_is_written_and_read_a_batch_at_a_time(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # At 100M descriptors a plan has tens of millions of actions: they are sorted, decoded,
    # written, rendered and sliced in batches. Batches of 2 rows must change nothing.
    reg = _mixed()
    reg.tag("a", "pr-1", d("orphan"))
    whole = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    monkeypatch.setattr(plan_module, "BATCH_ROWS", 2)
    batched = make_plan(tmp_path, reg, untagged=True, delete_tags="^pr-")
    assert pq.ParquetFile(batched.actions_file).metadata.num_row_groups == 3
    assert batched.actions == whole.actions and len(whole.actions) == 6
    assert pq.read_table(batched.actions_file).column("position").to_pylist() == list(range(6))
    assert json.loads(render_json(batched))["actions"] == whole.actions
    for limit in (1, 2, 20):  # the first actions of each kind, found from the summary's counts
        assert render_text(batched, limit=limit).splitlines()[1:] == render_text(whole, limit=limit).splitlines()[1:]
    table = pq.read_table(whole.actions_file)
    for start, length in itertools.product(range(7), range(4)):
        assert batched.slice(start, length).equals(table.slice(start, length)), (start, length)
    path = batched.actions_file
    batched.close()
    assert not path.exists() and not path.parent.exists()


def test_a_cycle_among_manifests_to_delete_is_an_error_not_a_plan(tmp_path: Path) -> None:
    # Impossible with true digests; a damaged snapshot may claim it.
    reg = Registry()
    index(reg, "a", "x", ("y",))
    index(reg, "a", "y", ("x",))
    with pytest.raises(PlanError, match="cycle"):
        make_plan(tmp_path, reg, **UNTAGGED)


# --- random registry graphs ------------------------------------------------------------------------


@settings(max_examples=70, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow, HealthCheck.data_too_large])
@given(tables=random_registries(), policy=policies(), meta=Meta, twice=st.integers(0, 4))
def test_random_registries_plans_are_safe_exact_and_pure(tables: dict, policy: Policy, meta: dict, twice: int,
                                                         tmp_path_factory: pytest.TempPathFactory) -> None:
    meta = dict(meta)
    source = meta.pop("source", "storage")
    snap = snapshot(tmp_path_factory.mktemp("plan") / "s", tables, source, **meta)
    if source == "acr" and policy.include_locked:  # regstat never unlocks what ACR locks
        with pytest.raises(PolicyError, match="az acr repository update"):
            plan_gc(snap, policy)
        return
    plan = plan_gc(snap, policy)
    check_plan(tables, snap.info.to_json(), policy, plan)
    assert_locks_held(tables, policy, plan)
    if twice == 0:  # a pure function of the snapshot and the policy (one run in five, for time)
        assert plan_gc(snap, policy).to_json() == plan.to_json()
