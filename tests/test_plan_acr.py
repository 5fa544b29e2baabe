"""plan-gc on ACR snapshots, and acr purge's options (`--filter`, `--ago`, `--keep` with
`--keep-untagged`) on every source: issue 17, "Planning for ACR".

The snapshots are built as ACR's crawl records them (tests/support/planner_graphs.SOURCES['acr']:
untagged manifests seen, no blobs, exact times, locks on tags and manifests). What acr purge
does is read from Azure/acr-cli (cmd/acr/purge.go, cmd/repository/image_functions.go): the
repository expression of a filter matches a whole name (`^REPO$`), the tag expression anywhere
in the tag; --ago selects tags whose lastUpdateTime is older and spares untagged manifests
updated more recently; --keep counts the newest of the tags selected, and with --untagged
of the untagged manifests too.
"""

from __future__ import annotations

import itertools
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from support.planner_graphs import DAY, OLD, TAKEN, YOUNG, PlanModel, Registry, d, image, index, referrer, snapshot

from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_USAGE
from regstat.plan.acr_purge import format_ago, parse_ago
from regstat.plan.plan import Plan
from regstat.plan.planner import plan_gc
from regstat.plan.policy import PolicyError, from_flags, from_json
from regstat.plan.policy_file import load, resolve

_dirs = itertools.count()
REPO = "hello-world"


def make_plan(tmp_path: Path, reg: Registry, source: str = "acr", **flags: Any) -> Plan:
    snap = snapshot(tmp_path / f"s{next(_dirs)}", reg.tables, source)
    return plan_gc(snap, from_flags(**flags))


def deleted(plan: Plan) -> tuple[set[str], set[str]]:
    """The tags and the manifests (short names) the plan deletes."""
    tags = {a["tag"] for a in plan.actions if a["action"] == "delete_tag"}
    manifests = {a["digest"].removeprefix("sha256:") for a in plan.actions if a["action"] == "delete_manifest"}
    return tags, manifests


def acr_registry() -> Registry:
    """hello-world on ACR, everything old unless said:
    - app:v1 (image app), signed by sig (a referrer, untagged): purgeable;
    - pinned:v2, a locked tag on image pinned; its signature pinsig (untagged);
    - frozen:v3 on image frozen, itself locked (deleteEnabled false);
    - multi:v4, an index (locked tag) listing the untagged children arm and amd;
    - orphan, untagged; lorphan, untagged and locked;
    - cosign: image base (tag base-1), whose untagged signature basesig is locked.
    """
    reg = Registry()
    image(reg, REPO, "app", layers=("L1",))
    referrer(reg, REPO, "sig", "app")
    reg.tag(REPO, "v1", d("app"))
    image(reg, REPO, "pinned")
    referrer(reg, REPO, "pinsig", "pinned")
    reg.tag(REPO, "v2", d("pinned"), locked=True)
    image(reg, REPO, "frozen", locked=True)
    reg.tag(REPO, "v3", d("frozen"), locked=False)
    image(reg, REPO, "arm")
    image(reg, REPO, "amd")
    index(reg, REPO, "multi", ("arm", "amd"))
    reg.tag(REPO, "v4", d("multi"), locked=True)
    image(reg, REPO, "orphan")
    image(reg, REPO, "lorphan", locked=True)
    image(reg, REPO, "base")
    reg.tag(REPO, "base-1", d("base"))
    referrer(reg, REPO, "basesig", "base", locked=True)
    reg.blob(d("L1"), 5000)
    return reg


def test_acr_plan_keeps_every_lock_and_what_it_reaches_and_deletes_no_blob(tmp_path: Path) -> None:
    reg = acr_registry()
    plan = make_plan(tmp_path, reg, filters=(f"{REPO}:.*",), ago="1d", untagged=True)
    tags, manifests = deleted(plan)
    # Locked tags (v2, v4) and the tag of a locked manifest (v3) stay; base-1 goes, but its
    # locked signature keeps base (a kept referrer keeps its subject).
    assert tags == {"v1", "base-1"}
    assert manifests == {"app", "sig", "orphan"}
    # Nothing locked, nor what a locked tag or manifest reaches, is deleted.
    model = PlanModel(reg.tables, {})
    held = model.closure({(REPO, d(n)) for n in ("pinned", "frozen", "multi", "lorphan", "basesig")})
    assert {(REPO, d(n)) for n in ("pinsig", "arm", "amd")} <= held
    assert not {(REPO, d(m)) for m in manifests} & held
    # ACR frees blobs itself: no blob action, the bytes an estimate, and a note that says so.
    assert {a["action"] for a in plan.actions} == {"delete_tag", "delete_manifest"}
    assert plan.summary["bytes_estimated"] is True
    assert plan.summary["bytes_reclaimed"] == 5000 + 3 * 100  # L1 and the three manifest blobs
    assert any("ACR deletes a manifest's referrers with it" in n for n in plan.notes)
    # The referrer is listed, before its subject.
    order = [a["digest"] for a in plan.actions if a["action"] == "delete_manifest"]
    assert order.index(d("sig")) < order.index(d("app"))


def test_a_locked_tag_on_any_source_keeps_its_manifest_unless_include_locked(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "r", "img")
    referrer(reg, "r", "sbom", "img")
    reg.tag("r", "v1", d("img"), locked=True)
    reg.tag("r", "v1-copy", d("img"))
    plan = make_plan(tmp_path, reg, "storage", delete_tags="v1", untagged=True)
    assert deleted(plan) == ({"v1-copy"}, set())
    # Elsewhere than ACR, --include-locked still lets the plan delete it.
    plan = make_plan(tmp_path, reg, "storage", delete_tags="v1", untagged=True, include_locked=True)
    assert deleted(plan) == ({"v1", "v1-copy"}, {"img", "sbom"})


def test_include_locked_is_refused_for_acr_only(tmp_path: Path) -> None:
    reg = acr_registry()
    with pytest.raises(PolicyError, match=r"az acr repository update .*--delete-enabled true.*crawl again"):
        make_plan(tmp_path, reg, untagged=True, include_locked=True)
    result = invoke("plan-gc", snapshot(tmp_path / "acr", reg.tables, "acr").path, "--untagged", "--include-locked")
    assert result.exit_code == EXIT_USAGE
    assert "az acr repository update" in result.stderr
    # The policy file's include_locked is refused the same way.
    policy_file = tmp_path / "p.toml"
    policy_file.write_text("include_locked = true\n[default]\nuntagged = true\n")
    result = invoke("plan-gc", tmp_path / "acr", "--policy", policy_file)
    assert result.exit_code == EXIT_USAGE and "az acr repository update" in result.stderr
    for source in ("storage", "api", "ecr"):
        snap = snapshot(tmp_path / source, reg.tables, source).path
        result = invoke("plan-gc", snap, "--untagged", "--include-locked")
        assert result.exit_code == EXIT_OK, (source, result.stderr)


def two_repositories() -> Registry:
    reg = Registry()
    for repo in ("hello", "hello-world"):
        for n, tag in enumerate(("v1.2", "xv1", "v2", "V1")):
            image(reg, repo, f"{repo}-{n}")
            reg.tag(repo, tag, d(f"{repo}-{n}"))
        image(reg, repo, f"{repo}-orphan")
    return reg


@pytest.mark.parametrize(("filters", "expected"), [
    # The repository expression matches whole names: `hello` is not `hello-world`...
    (("hello:v1",), {("hello", "v1.2"), ("hello", "xv1")}),
    # ...the tag expression matches anywhere in the tag (v1.2, xv1), case-sensitively (not V1).
    (("hello.*:^v1",), {("hello", "v1.2"), ("hello-world", "v1.2")}),
    (("hello-world:v2",), {("hello-world", "v2")}),
    # Several filters on one repository select what any of them selects.
    (("hello:^v1", "hello:^v2$", "nothing:.*"), {("hello", "v1.2"), ("hello", "v2")}),
    # regstat anchors an alternation whole: `hello|x` is hello or x (acr purge's `^hello|x$`
    # would match every name starting with hello).
    (("hello|x:v2",), {("hello", "v2")}),
    # Flags in the repository half do not reach the tag half.
    (("(?i)HELLO:^V1",), {("hello", "V1")}),
])
def test_filter_anchors_the_repository_not_the_tag(tmp_path: Path, filters: tuple[str, ...],
                                                   expected: set[tuple[str, str]]) -> None:
    plan = make_plan(tmp_path, two_repositories(), filters=filters, untagged=True, grace="0s")
    got = {(a["repository"], a["tag"]) for a in plan.actions if a["action"] == "delete_tag"}
    assert got == expected
    # Outside the filtered repositories nothing is deleted, orphans included (as acr purge
    # purges only the repositories its filters name).
    orphans = {a["repository"] for a in plan.actions if a["digest"].endswith("-orphan")}
    assert orphans == {r for r in ("hello", "hello-world") if any(r2 == r for r2, _ in expected)}


def test_ago_selects_tags_and_spares_younger_manifests(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "r", "three")
    reg.tag("r", "three-days", d("three"), TAKEN - 3 * DAY)
    image(reg, "r", "one")
    reg.tag("r", "one-day", d("one"), TAKEN - DAY)
    # Orphans: updated_at (ACR's lastUpdateTime) decides, else the push time; unknown: kept.
    image(reg, "r", "stale", pushed_at=OLD, updated_at=TAKEN - 3 * DAY)
    image(reg, "r", "touched", pushed_at=OLD, updated_at=TAKEN - DAY)
    image(reg, "r", "pushed-old", pushed_at=OLD)
    image(reg, "r", "pushed-new", pushed_at=TAKEN - DAY)
    image(reg, "r", "unknown", pushed_at=None)
    plan = make_plan(tmp_path, reg, ago="2d", untagged=True, grace="0s")
    assert deleted(plan) == ({"three-days"}, {"three", "stale", "pushed-old"})
    assert plan.policy["default"]["ago"] == "2d"
    # A tag older than D whose manifest was updated since: the tag goes, the manifest stays.
    reg.tables["manifests"] = [{**m, "updated_at": TAKEN - DAY} if m["digest"] == d("three") else m
                               for m in reg.tables["manifests"]]
    plan = make_plan(tmp_path, reg, ago="2d", untagged=True, grace="0s")
    assert deleted(plan) == ({"three-days"}, {"stale", "pushed-old"})
    reasons = {a["digest"]: a["reason"] for a in plan.actions if a["action"] == "delete_tag"}
    assert reasons[d("three")] == "older than 2d (ago) (command line)"
    # --ago 0: every tag with a time is selected.
    plan = make_plan(tmp_path, reg, ago="0", grace="0s")
    assert deleted(plan)[0] == {"three-days", "one-day"}


def test_keep_and_keep_untagged_as_acr_purge_keep_with_untagged(tmp_path: Path) -> None:
    """acr purge --filter 'r:.*' --ago 1d --untagged --keep 2: of the selected tags the 2 most
    recently updated stay, and of the untagged manifests the 2 most recently updated."""
    reg = Registry()
    for n in range(4):
        image(reg, "r", f"t{n}")
        reg.tag("r", f"tag{n}", d(f"t{n}"), TAKEN - (n + 2) * DAY)
    for n in range(4):  # updated_at orders them, not the push time
        image(reg, "r", f"u{n}", pushed_at=OLD + n * DAY, updated_at=TAKEN - (n + 2) * DAY)
    plan = make_plan(tmp_path, reg, filters=("r:.*",), ago="1d", untagged=True, keep=2, keep_untagged=2)
    assert deleted(plan) == ({"tag2", "tag3"}, {"t2", "t3", "u2", "u3"})


@pytest.mark.parametrize(("args", "message"), [
    (["--filter", "r:.*", "-r", "r"], "--filter and --repository cannot be combined"),
    (["--filter", "r:.*", "--delete-tags", "x"], "--filter and --delete-tags cannot be combined"),
    (["--ago", "1d", "--older-than", "1d"], "--ago and --older-than cannot be combined"),
    (["--ago", "2w"], "not a duration as acr purge writes it"),
    (["--filter", "r"], "not REPO_REGEX:TAG_REGEX"),
    (["--filter", "r:("], "not a (Python) regular expression"),
    (["--filter", "r:[[:digit:]]"], "POSIX classes"),
    (["--filter", "r:(?U)v.*"], "Go's ungreedy flag"),
    (["--filter", r"r:\p{L}"], "not a (Python) regular expression"),
])
def test_clashing_or_bad_acr_purge_options_are_usage_errors(tmp_path: Path, args: list[str], message: str) -> None:
    snap = snapshot(tmp_path / "s", acr_registry().tables, "acr").path
    result = invoke("plan-gc", snap, *args)
    assert result.exit_code == EXIT_USAGE, result.output
    assert message in result.stderr


def test_filter_and_ago_with_a_policy_file(tmp_path: Path) -> None:
    policy_file = tmp_path / "p.toml"
    policy_file.write_text('[default]\nuntagged = true\n\n[[rules]]\nrepositories = ["ci/*"]\nago = "2d3h6m"\n')
    policy = load(str(policy_file))
    assert policy.rules[0].ago == timedelta(days=2, hours=3, minutes=6)
    for flags, message in (({"filters": ("a:b",)}, "--filter cannot be combined with --policy"),
                           ({"ago": "1d"}, "--ago cannot be combined with --policy")):
        with pytest.raises(PolicyError, match=message):
            resolve(str(policy_file), **flags)
    policy_file.write_text('[default]\nago = "1d"\nolder_than = "1d"\n')
    with pytest.raises(PolicyError, match=r"p.toml:2: \[default\]: ago and older_than cannot both be set"):
        load(str(policy_file))
    policy_file.write_text('[default]\nago = "1w"\n')
    with pytest.raises(PolicyError, match=r"p.toml:2: .*not a duration as acr purge writes it"):
        load(str(policy_file))


def test_a_plans_policy_reads_back_with_its_filters_and_ago(tmp_path: Path) -> None:
    policy = from_flags(filters=("hello:v1", "h.*:^x"), ago="2d3h6m", untagged=True)
    back = from_json(json.loads(json.dumps(policy.to_json())))
    assert back.to_json() == policy.to_json()
    assert back.rule_for("hello") == policy.rule_for("hello")
    assert back.rule_for("hello").filter_tags == ("v1", "^x")  # type: ignore[union-attr]
    assert back.rule_for("other") is None
    # explain --plan reads the same decisions back.
    snap = snapshot(tmp_path / "s", two_repositories().tables, "acr").path
    result = invoke("plan-gc", snap, "--filter", "hello:v1", "--ago", "0", "--grace", "0s", "-o", tmp_path / "p.json")
    assert result.exit_code == EXIT_OK, result.stderr
    result = invoke("explain", snap, "hello:v2", "--plan", tmp_path / "p.json")
    assert result.exit_code == EXIT_OK, result.stderr
    assert "plan: kept: tag hello:v2" in result.stdout  # the plan's policy, read back, keeps it
    reasons = {a["tag"]: a["reason"] for a in json.loads((tmp_path / "p.json").read_text())["actions"]
               if a["action"] == "delete_tag"}
    assert reasons == {t: "older than 0 (ago), matches --filter tag expression 'v1' (command line)"
                       for t in ("v1.2", "xv1")}


def test_young_tags_are_not_selected_by_ago(tmp_path: Path) -> None:
    reg = Registry()
    image(reg, "r", "img")
    reg.tag("r", "new", d("img"), YOUNG)
    plan = make_plan(tmp_path, reg, ago="0", grace="0s")
    assert deleted(plan) == ({"new"}, {"img"})
    plan = make_plan(tmp_path, reg, ago="2h", grace="0s")
    assert deleted(plan) == (set(), set())


def invoke(*args: Any):
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.mark.parametrize(("text", "expected"), [
    ("30d", timedelta(days=30)), ("2d3h6m", timedelta(days=2, hours=3, minutes=6)), ("1.5h", timedelta(minutes=90)),
    ("90s", timedelta(seconds=90)), ("0", timedelta(0)), ("2d0", timedelta(days=2)), ("500ms", timedelta(seconds=0.5)),
])
def test_ago_reads_acr_purges_durations_and_writes_them_back(text: str, expected: timedelta) -> None:
    assert parse_ago(text) == expected
    assert parse_ago(format_ago(expected)) == expected


@pytest.mark.parametrize("text", ["", "d", "2w", "-1d", "1.5d", "30 days", "h", "00", "36501d"])
def test_ago_refuses_what_acr_purge_would_misread(text: str) -> None:
    with pytest.raises(PolicyError, match="--ago"):
        from_flags(ago=text)
