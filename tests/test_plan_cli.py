"""`regstat plan-gc` on the command line: formats, files, exit codes and what the plan says on
crawls of scenario_tree (as it is, and copies with file times set so the grace period and
`--older-than` have something definite to decide) and on small hand-built snapshots.

What the sample plan must delete is worked out here from tests/scenario_tree/EXPECTED.json (the
registry's contents, written independently of regstat), not taken from the planner.
"""

from __future__ import annotations

import json
import os
import shutil
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from support.snapshots import write_snapshot

from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE
from regstat.snapshot import FORMAT, SCHEMA_VERSION

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
EXPECTED = json.loads((SAMPLE / "EXPECTED.json").read_text())
NAMES = EXPECTED["names"]
UPLOAD = EXPECTED["uploads"][0]


def invoke(*args: str):
    return CliRunner().invoke(main, [str(a) for a in args])


def crawl(source: Path, output: Path) -> Path:
    result = invoke("crawl", source, "-o", output)
    assert result.exit_code == EXIT_OK, result.stderr
    return output


def copy_sample(destination: Path, when: datetime, *, newer: dict[str, datetime] | None = None) -> Path:
    """scenario_tree copied with every file and directory time set to `when` (and the upload's
    startedat), except the paths (relative to the repositories directory) in `newer`."""
    shutil.copytree(SAMPLE, destination)
    for started in destination.rglob("startedat"):
        started.write_text(when.strftime("%Y-%m-%dT%H:%M:%SZ"))
    stamp = when.timestamp()
    for path in sorted(destination.rglob("*"), key=lambda p: -len(p.parts)):
        os.utime(path, (stamp, stamp))
    repositories = destination / "docker" / "registry" / "v2" / "repositories"
    for relative, time in (newer or {}).items():
        os.utime(repositories / relative, (time.timestamp(), time.timestamp()))
    return destination


def fingerprint(directory: Path) -> dict[str, tuple[int, int]]:
    return {str(p.relative_to(directory)): (p.stat().st_size, p.stat().st_mtime_ns)
            for p in directory.rglob("*") if p.is_file()}


# --- what the sample must give, from EXPECTED.json ----------------------------------------------


def references(without: set[tuple[str, str]]) -> set[str]:
    """Digests that (repository, manifest) pairs other than `without` reference: the manifest
    blob itself and every descriptor (config, layers, children, subject)."""
    refs = {m["digest"] for m in EXPECTED["manifests"] if (m["repository"], m["digest"]) not in without}
    refs |= {d["digest"] for d in EXPECTED["descriptors"]
             if (d["repository"], d["manifest_digest"]) not in without}
    return refs


def cli_list_and_children() -> set[tuple[str, str]]:
    """tools/cli:v1-docker's manifest list and its children (no other manifest lists them)."""
    children = {d["digest"] for d in EXPECTED["descriptors"]
                if d["manifest_digest"] == NAMES["cli_list"] and d["role"] == "manifest"}
    assert len(children) == 2
    return {("tools/cli", d) for d in children | {NAMES["cli_list"]}}


def expected_untagged_plan() -> dict:
    """`--untagged --grace 0s` on scenario_tree: the one orphaned manifest (apps/web's web_old),
    the blobs nothing kept references, the stale upload."""
    orphan = ("apps/web", NAMES["web_old"])
    sizes = {b["digest"]: b["size"] for b in EXPECTED["blobs"]}
    stored = {b["digest"] for b in EXPECTED["blobs"] if b["stored"]}
    before, after = references(set()), references({orphan})
    unreferenced = stored - before
    released = (stored & before) - after
    only_the_orphan = references(set()) - after  # what deleting it alone frees
    return {
        "orphan": orphan,
        "unreferenced": unreferenced,
        "released": released,
        "blobs": unreferenced | released,
        "bytes_freed": sum(sizes[d] for d in only_the_orphan),
        "bytes_reclaimed": sum(sizes[d] for d in unreferenced | released) + UPLOAD["size"],
        "sizes": sizes,
    }


def test_the_expectation_is_not_trivial() -> None:
    e = expected_untagged_plan()
    assert NAMES["unreferenced_blob"] in e["unreferenced"] and NAMES["web_deleted"] in e["unreferenced"]
    assert NAMES["web_old"] in e["released"] and len(e["released"]) >= 2
    assert NAMES["base_layer"] not in e["blobs"]  # shared with kept images


# --- snapshots -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl of scenario_tree as it is."""
    return crawl(SAMPLE, tmp_path_factory.mktemp("plan") / "sample")


@pytest.fixture(scope="module")
def fresh(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl of a copy of scenario_tree whose every file is two hours old."""
    base = tmp_path_factory.mktemp("fresh")
    two_hours_ago = datetime.now(UTC) - timedelta(hours=2)
    return crawl(copy_sample(base / "tree", two_hours_ago), base / "snap")


@pytest.fixture(scope="module")
def aged(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl of a copy of scenario_tree 60 days old, but for apps/web:latest, moved 2 days ago."""
    base = tmp_path_factory.mktemp("aged")
    now = datetime.now(UTC)
    tree = copy_sample(base / "tree", now - timedelta(days=60),
                       newer={"apps/web/_manifests/tags/latest/current/link": now - timedelta(days=2)})
    return crawl(tree, base / "snap")


@pytest.fixture(scope="module")
def incomplete(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The sample crawl, as if the crawl had met an error in apps/web."""
    copy = tmp_path_factory.mktemp("incomplete") / "snap"
    shutil.copytree(sample, copy)
    meta = json.loads((copy / "snapshot.json").read_text())
    meta.update(complete=False, incomplete_repositories=["apps/web"],
                errors=[{"repository": "apps/web", "path": "apps/web/_manifests/tags", "kind": "read_error",
                         "message": "Permission denied"}])
    (copy / "snapshot.json").write_text(json.dumps(meta))
    return copy


def plan_json(*args) -> dict:
    result = invoke("plan-gc", *args, "-f", "json")
    assert result.exit_code in (EXIT_OK, EXIT_INCOMPLETE), result.stderr
    return json.loads(result.stdout)


def kinds(plan: dict, action: str) -> list[dict]:
    return [a for a in plan["actions"] if a["action"] == action]


# --- help ---------------------------------------------------------------------------------------


def test_help_has_examples() -> None:
    result = invoke("plan-gc", "--help")
    assert result.exit_code == EXIT_OK
    text = result.stdout
    examples = [line.strip() for line in text[text.index("Examples:"):].splitlines()[1:] if line.strip()]
    examples = [e for e in examples if e.startswith("regstat plan-gc")]
    assert len(examples) >= 4, text
    joined = "\n".join(examples)
    for option in ("--untagged", "--grace 0s", "-o plan.json", "--older-than", "--keep ", "--keep-tags",
                   "--repository", "--policy", "-f parquet"):
        assert option in joined, option
    assert "Exit code 3" in text and "delete nothing" in text.lower()
    for option in ("--policy FILE", "--grace DURATION", "--format", "--output FILE", "--include-locked"):
        assert option in text, option


# --- the sample: --untagged --grace 0s ------------------------------------------------------------


def test_untagged_deletes_exactly_the_orphan_and_unreferenced_blobs(sample: Path, tmp_path: Path) -> None:
    expected = expected_untagged_plan()
    out = tmp_path / "plan.json"
    result = invoke("plan-gc", sample, "--untagged", "--grace", "0s", "--output", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == ""
    plan = json.loads(out.read_text())
    meta = json.loads((sample / "snapshot.json").read_text())

    assert plan["format"] == "regstat.plan/1"
    assert {k: plan["snapshot"][k] for k in ("id", "source", "taken_at", "complete")} == {
        "id": meta["id"], "source": meta["source"], "taken_at": meta["finished_at"], "complete": True}
    assert plan["policy"]["source"] == "command line" and plan["policy"]["grace"] == "0s"
    assert plan["policy"]["default"]["untagged"] is True and plan["policy"]["rules"] == []

    (manifest,) = kinds(plan, "delete_manifest")
    assert (manifest["repository"], manifest["digest"]) == expected["orphan"]
    assert manifest["reason"] == "untagged" and manifest["size"] == expected["sizes"][NAMES["web_old"]]
    assert manifest["bytes_freed"] == expected["bytes_freed"]
    assert "tag" not in manifest or manifest["tag"] is None
    assert kinds(plan, "delete_tag") == []
    blobs = kinds(plan, "delete_blob")
    assert {b["digest"] for b in blobs} == expected["blobs"]
    for b in blobs:
        assert b["size"] == expected["sizes"][b["digest"]] and "repository" not in b
        assert b["reason"] == ("unreferenced" if b["digest"] in expected["unreferenced"] else "last reference deleted")
    (upload,) = kinds(plan, "delete_upload")
    assert (upload["repository"], upload["uuid"], upload["size"]) == (UPLOAD["repository"], UPLOAD["uuid"],
                                                                      UPLOAD["size"])
    # Order: manifests, then blobs, then uploads.
    assert [a["action"] for a in plan["actions"]] == ["delete_manifest"] + ["delete_blob"] * len(blobs) + [
        "delete_upload"]

    s = plan["summary"]
    assert (s["tags"], s["manifests"], s["blobs"], s["uploads"]) == (0, 1, len(expected["blobs"]), 1)
    assert s["bytes_reclaimed"] == expected["bytes_reclaimed"] and s["bytes_estimated"] is False
    (web,) = s["repositories"]
    assert web["repository"] == "apps/web"
    assert (web["tags"], web["manifests"], web["uploads"]) == (0, 1, 1)
    assert 0 < web["blobs"] <= s["blobs"] and 0 < web["bytes_reclaimed"] <= s["bytes_reclaimed"]
    assert plan["notes"] == []
    assert result.stderr == (f"regstat: plan: 0 tags, 1 manifest, {len(expected['blobs'])} blobs, 1 upload, "
                             f"{expected['bytes_reclaimed']:,} bytes; wrote {out}\n")


def test_default_format_is_readable_text_on_stdout(sample: Path) -> None:
    expected = expected_untagged_plan()
    result = invoke("plan-gc", sample, "--untagged", "--grace", "0s")
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stderr == ""  # the one-line summary is only for --output
    lines = result.stdout.splitlines()
    meta = json.loads((sample / "snapshot.json").read_text())
    taken = datetime.fromisoformat(meta["finished_at"].replace("Z", "+00:00")).strftime("%Y-%m-%d %H:%M UTC")
    assert lines[0] == f"regstat plan for snapshot {meta['id']} (storage-layout, taken {taken})"
    assert lines[1].strip() == "policy: command line; grace 0s; locked protected; untagged"
    text = result.stdout
    assert f"delete 0 tags, 1 manifest, {len(expected['blobs'])} blobs, 1 upload" in text
    assert "frees 6.3 KiB" in text and "~" not in text
    assert "By repository:" in text and any(line.split()[:1] == ["apps/web"] for line in lines)
    assert "Manifests (1):" in text and f"apps/web@{NAMES['web_old'][:19]}  untagged, frees" in text
    assert f"Blobs ({len(expected['blobs'])}):" in text
    for digest in expected["blobs"]:
        assert f"  {digest[:19]}  " in text
    assert f"Uploads (1):\n  apps/web upload {UPLOAD['uuid']}  700 B" in text
    assert "Tags (" not in text and "Notes:" not in text and "Nothing to delete" not in text
    assert invoke("plan-gc", sample, "--untagged", "--grace", "0s", "-f", "text").stdout == result.stdout


def test_text_lists_the_first_20_actions_of_each_kind(sample: Path) -> None:
    result = invoke("plan-gc", sample, "--keep", "0", "--grace", "0s")
    assert result.exit_code == EXIT_OK, result.stderr
    plan = plan_json(sample, "--keep", "0", "--grace", "0s")
    blobs = kinds(plan, "delete_blob")
    assert len(blobs) > 20
    text = result.stdout
    assert f"Blobs ({len(blobs)}, first 20):" in text
    section = text[text.index("Blobs ("):].split("\n\n")[0].splitlines()[1:]
    assert [line.split()[0] for line in section] == [b["digest"][:19] for b in blobs[:20]]
    assert f"Tags ({len(kinds(plan, 'delete_tag'))}):" in text
    assert "apps/web:latest -> " in text and "beyond the 0 most recently updated (command line)" in text


def test_json_on_stdout_is_the_plan_written_with_output(sample: Path, tmp_path: Path) -> None:
    args = (sample, "--untagged", "--grace", "0s")
    out = tmp_path / "p.json"
    assert invoke("plan-gc", *args, "-o", out).exit_code == EXIT_OK
    stdout = invoke("plan-gc", *args, "-f", "json")
    assert stdout.exit_code == EXIT_OK and stdout.stderr == ""
    assert json.loads(stdout.stdout) == json.loads(out.read_text())
    # -f text with -o writes text to the file.
    text_out = tmp_path / "p.txt"
    assert invoke("plan-gc", *args, "-f", "text", "-o", text_out).exit_code == EXIT_OK
    assert text_out.read_text() == invoke("plan-gc", *args).stdout


def test_parquet_holds_the_same_actions_in_the_same_order(sample: Path, tmp_path: Path) -> None:
    args = (sample, "--keep", "1", "--grace", "0s", "--untagged")
    out = tmp_path / "actions.parquet"
    result = invoke("plan-gc", *args, "-f", "parquet", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert result.stdout == "" and result.stderr.startswith("regstat: plan: ") and f"wrote {out}" in result.stderr
    table = pq.read_table(out)
    assert {"position", "action", "repository", "tag", "digest", "uuid", "size", "bytes_freed", "reason",
            "rule"} <= set(table.column_names)
    rows = table.to_pylist()
    actions = plan_json(*args)["actions"]
    assert len(rows) == len(actions) and {a["action"] for a in actions} >= {
        "delete_tag", "delete_manifest", "delete_blob", "delete_upload"}
    for i, (row, action) in enumerate(zip(rows, actions, strict=True)):
        assert row["position"] == i
        for key in ("action", "repository", "tag", "digest", "uuid", "size", "bytes_freed", "reason", "rule"):
            assert row[key] == action.get(key), (i, key)


def test_parquet_without_output_is_a_usage_error(sample: Path, tmp_path: Path) -> None:
    result = invoke("plan-gc", sample, "-f", "parquet")
    assert result.exit_code == EXIT_USAGE
    assert "--output" in result.stderr and result.stdout == ""


def test_output_inside_the_snapshot_is_refused(sample: Path) -> None:
    before = fingerprint(sample)
    for fmt, name in (("json", "plan.json"), ("parquet", "tags/actions.parquet"), ("text", "plan.txt")):
        result = invoke("plan-gc", sample, "--untagged", "-f", fmt, "-o", sample / name)
        assert result.exit_code == EXIT_SNAPSHOT, result.stderr
        assert "inside the snapshot" in result.stderr and "Traceback" not in result.stderr
    assert fingerprint(sample) == before


# --- exit codes ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "args, message",
    [
        (["--older-than", "3x"], "--older-than: '3x' is not a duration"),
        (["--grace", "forever"], "--grace: 'forever' is not a duration"),
        (["--grace", "999999w"], "--grace: '999999w' is longer than"),  # used to overflow (exit 1)
        (["--pulled-within", "soon"], "--pulled-within: 'soon' is not a duration"),
        (["--delete-tags", "(unclosed"], "--delete-tags: '(unclosed' is not a regular expression"),
        (["--keep-tags", "[", "--untagged"], "--keep-tags: '[' is not a regular expression"),
        (["--keep", "-1"], "-1 is not in the range"),
        (["--keep-untagged", "1"], "--keep-untagged needs --untagged"),
        (["--untagged", "--keep-untagged", "-1"], "-1 is not in the range"),
        (["--delete-tags", "^pr-", "--keep-tags", "^pr-"], "protects exactly the tags"),
        (["--pulled-within", "7d"], "pulled_within needs pull times"),  # storage trees record no pulls
        (["--policy", "{policy}", "--untagged"], "--untagged cannot be combined with --policy"),
        (["--policy", "{policy}", "--keep", "0"], "--keep cannot be combined with --policy"),
        (["--policy", "{policy}", "--keep-untagged", "0"], "--keep-untagged cannot be combined with --policy"),
        (["--policy", "{missing}"], "cannot read the policy file"),
        (["--policy", "{bad}"], "bad.toml:3: [default]: keep = -1"),
        (["-f", "yaml"], "Invalid value for '-f' / '--format'"),
    ],
)
def test_policy_and_option_errors_exit_2(sample: Path, tmp_path: Path, args: list[str], message: str) -> None:
    (tmp_path / "policy.toml").write_text("[default]\nuntagged = true\n")
    (tmp_path / "bad.toml").write_text("[default]\nuntagged = true\nkeep = -1\n")
    paths = {"policy": tmp_path / "policy.toml", "missing": tmp_path / "missing.toml", "bad": tmp_path / "bad.toml"}
    result = invoke("plan-gc", sample, *[a.format(**paths) for a in args], "-o", tmp_path / "plan.json")
    assert result.exit_code == EXIT_USAGE, (result.exit_code, result.stderr)
    assert message in result.stderr, result.stderr
    assert "Traceback" not in result.stderr and result.stdout == ""
    assert not (tmp_path / "plan.json").exists()


@pytest.mark.parametrize("what", ["empty directory", "missing", "a file", "unfinished"])
def test_a_path_that_is_not_a_snapshot_exits_5(tmp_path: Path, what: str) -> None:
    path = tmp_path / "thing"
    if what == "empty directory":
        path.mkdir()
    elif what == "a file":
        path.write_text("{}")
    elif what == "unfinished":
        path.mkdir()
        (path / "snapshot.json").write_text(json.dumps({"format": FORMAT, "schema_version": SCHEMA_VERSION}))
    result = invoke("plan-gc", path, "--untagged")
    assert result.exit_code == EXIT_SNAPSHOT, result.stderr
    assert result.stderr.startswith(f"regstat: error: {path}") and result.stdout == ""


def test_an_incomplete_snapshot_exits_3_with_a_restricted_plan(incomplete: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = invoke("plan-gc", incomplete, "--untagged", "--grace", "0s", "-o", out)
    assert result.exit_code == EXIT_INCOMPLETE, result.stderr
    plan = json.loads(out.read_text())
    assert plan["snapshot"]["complete"] is False
    # apps/web, where the error is, gets no deletions: its orphan stays; no blob or upload goes.
    assert all(a.get("repository") != "apps/web" for a in plan["actions"])
    assert kinds(plan, "delete_blob") == [] and kinds(plan, "delete_upload") == []
    assert plan["summary"]["bytes_estimated"] is True
    assert any(n.startswith("apps/web: no deletions") for n in plan["notes"])
    assert any("incomplete" in n for n in plan["notes"])
    assert "(estimate); wrote" in result.stderr
    text = invoke("plan-gc", incomplete, "--untagged", "--grace", "0s")
    assert text.exit_code == EXIT_INCOMPLETE
    assert "Notes:\n  - " in text.stdout and "apps/web: no deletions" in text.stdout
    assert "frees ~" in text.stdout and "see the notes" in text.stdout
    assert "the registry frees blobs itself" not in text.stdout  # it does not: this is a storage tree


def test_an_incomplete_snapshot_still_plans_other_repositories(incomplete: Path) -> None:
    plan = plan_json(incomplete, "--delete-tags", "^v1-docker$", "--grace", "0s")
    assert [(a["repository"], a.get("tag")) for a in kinds(plan, "delete_tag")] == [("tools/cli", "v1-docker")]
    manifests = [(a["repository"], a["digest"]) for a in kinds(plan, "delete_manifest")]
    assert set(manifests) == cli_list_and_children() and manifests[0] == ("tools/cli", NAMES["cli_list"])


# --- the grace period and time rules ---------------------------------------------------------------


def test_the_default_grace_protects_everything_on_a_fresh_crawl(fresh: Path) -> None:
    for args in ([], ["--untagged"], ["--untagged", "--keep", "0"], ["--older-than", "1h", "--untagged"]):
        plan = plan_json(fresh, *args)
        assert plan["actions"] == [], args
        assert plan["policy"]["grace"] == "1d"
        s = plan["summary"]
        assert (s["tags"], s["manifests"], s["blobs"], s["uploads"], s["bytes_reclaimed"]) == (0, 0, 0, 0, 0)
        assert s["repositories"] == []
    text = invoke("plan-gc", fresh, "--untagged").stdout
    assert "Nothing to delete." in text and "grace period, 1d" in text and "--grace 0s" in text


def test_a_grace_shorter_than_the_files_age_lets_them_go(fresh: Path) -> None:
    expected = expected_untagged_plan()
    plan = plan_json(fresh, "--untagged", "--grace", "1h")
    assert [(a["repository"], a["digest"]) for a in kinds(plan, "delete_manifest")] == [expected["orphan"]]
    assert {a["digest"] for a in kinds(plan, "delete_blob")} == expected["blobs"]
    assert len(kinds(plan, "delete_upload")) == 1
    # Three hours: the two-hour-old files are young again.
    assert plan_json(fresh, "--untagged", "--grace", "3h")["actions"] == []


def test_garbage_goes_without_any_rule_once_past_the_grace(aged: Path) -> None:
    expected = expected_untagged_plan()
    plan = plan_json(aged)
    assert kinds(plan, "delete_tag") == [] and kinds(plan, "delete_manifest") == []
    assert {a["digest"] for a in kinds(plan, "delete_blob")} == expected["unreferenced"]
    assert [a["uuid"] for a in kinds(plan, "delete_upload")] == [UPLOAD["uuid"]]


def test_older_than_with_protections_from_the_command_line(aged: Path) -> None:
    plan = plan_json(aged, "--older-than", "30d", "--keep-tags", r"^3\.19$")
    deleted = {(a["repository"], a["tag"]): a["reason"] for a in kinds(plan, "delete_tag")}
    signature_tag = next(t["tag"] for t in EXPECTED["tags"] if t["digest"] == NAMES["signature"])
    assert set(deleted) == {("apps/api", "v1"), ("apps/api", signature_tag), ("apps/web", "v2"),
                            ("base/alpine", "latest"), ("tools/cli", "v1"), ("tools/cli", "v1-docker")}
    assert deleted[("apps/web", "v2")] == "older than 30d (command line)"
    manifests = {(a["repository"], a["digest"]) for a in kinds(plan, "delete_manifest")}
    # apps/web:latest moved 2 days ago and base/alpine:3.19 is protected: their manifests stay.
    assert ("apps/web", NAMES["web_new"]) not in manifests and ("base/alpine", NAMES["base"]) not in manifests
    assert {("apps/api", NAMES["api_v1"]), ("apps/api", NAMES["signature"]), ("tools/cli", NAMES["cli_index"]),
            ("tools/cli", NAMES["cli_list"])} <= manifests
    assert plan["policy"]["default"]["keep_tags"] == [r"^3\.19$"]
    # --repository: the same rule, only for tools/*.
    scoped = plan_json(aged, "--older-than", "30d", "--repository", "tools/*")
    assert {a["repository"] for a in scoped["actions"] if a["action"] != "delete_blob"} == {"tools/cli"}
    assert scoped["policy"]["repositories"] == ["tools/*"]


# --- policy files ---------------------------------------------------------------------------------


def test_a_policy_file_with_flags_on_top(sample: Path, tmp_path: Path) -> None:
    policy = tmp_path / "retention.toml"
    policy.write_text('grace = "30d"\n'
                      "[default]\n"
                      "[[rules]]\n"
                      'repositories = ["tools/*"]\n'
                      'delete_tags = "^v1-docker$"\n'
                      "[[rules]]\n"
                      'repositories = ["apps/*"]\n'
                      "untagged = true\n")
    plan = plan_json(sample, "--policy", policy, "--grace", "0s")
    assert plan["policy"]["source"] == str(policy) and plan["policy"]["grace"] == "0s"
    assert [r["name"] for r in plan["policy"]["rules"]] == ["rule 1 (tools/*)", "rule 2 (apps/*)"]
    tags = kinds(plan, "delete_tag")
    assert [(a["repository"], a["tag"], a["rule"]) for a in tags] == [("tools/cli", "v1-docker", "rule 1 (tools/*)")]
    assert {(a["repository"], a["digest"]) for a in kinds(plan, "delete_manifest")} == cli_list_and_children() | {
        ("apps/web", NAMES["web_old"])}
    # The file's grace (30d) holds without --grace: scenario_tree's files are younger.
    assert plan_json(sample, "--policy", policy)["policy"]["grace"] == "30d"
    # --keep-tags protects on top of the file's rules.
    kept = plan_json(sample, "--policy", policy, "--grace", "0s", "--keep-tags", "docker")
    assert kinds(kept, "delete_tag") == [] and {a["digest"] for a in kinds(kept, "delete_manifest")} == {
        NAMES["web_old"]}
    # --repository narrows what the rules apply to.
    narrowed = plan_json(sample, "--policy", policy, "--grace", "0s", "--repository", "apps/*")
    assert kinds(narrowed, "delete_tag") == [] and narrowed["policy"]["repositories"] == ["apps/*"]


# --- --keep as acr purge counts it: v1-a (15 min), v1-b (1 day), v1-c (2 days), v2 (3 days) -------

TAKEN = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)  # write_snapshot's finished_at
ACR_AGES = {"v1-a": timedelta(minutes=15), "v1-b": timedelta(days=1), "v1-c": timedelta(days=2),
            "v2": timedelta(days=3)}


@pytest.fixture(scope="module")
def acr_example(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One repository, one image per tag of acr purge's example, and two orphaned images."""
    image = {tag: "sha256:" + f"{i:x}" * 64 for i, tag in enumerate([*ACR_AGES, "o1", "o2"], start=1)}
    old = TAKEN - timedelta(days=10)
    tables = {
        "repositories": [{"repository": "a", "complete": True, "error_count": 0}],
        "tags": [{"repository": "a", "tag": t, "digest": image[t], "updated_at": TAKEN - age}
                 for t, age in ACR_AGES.items()],
        "manifests": [{"repository": "a", "digest": d, "media_type": "application/vnd.oci.image.manifest.v1+json",
                       "size": 10, "status": "ok", "pushed_at": old - timedelta(days=i)}
                      for i, d in enumerate(image.values())],
        "blobs": [{"digest": d, "size": 10, "stored": True, "modified_at": old} for d in image.values()],
    }
    return write_snapshot(tmp_path_factory.mktemp("acr") / "snap", tables).path


def test_keep_counts_the_selected_tags_like_acr_purge(acr_example: Path, tmp_path: Path) -> None:
    plan = plan_json(acr_example, "--delete-tags", "^v1-", "--older-than", "30m", "--keep", "1", "--grace", "1h")
    assert [a["tag"] for a in kinds(plan, "delete_tag")] == ["v1-c"]
    assert plan["policy"]["default"]["keep"] == 1
    # The same rule in a policy file.
    policy = tmp_path / "retention.toml"
    policy.write_text('grace = "1h"\n[default]\ndelete_tags = "^v1-"\nolder_than = "30m"\nkeep = 1\n')
    from_file = plan_json(acr_example, "--policy", policy)
    assert [a["tag"] for a in kinds(from_file, "delete_tag")] == ["v1-c"]
    assert [a["rule"] for a in kinds(from_file, "delete_tag")] == ["default"]
    # --keep alone selects every tag: the newest stays.
    assert [a["tag"] for a in kinds(plan_json(acr_example, "--keep", "1", "--grace", "0s"), "delete_tag")] == [
        "v1-b", "v1-c", "v2"]


def test_keep_untagged_from_the_command_line_and_a_policy_file(acr_example: Path, tmp_path: Path) -> None:
    plan = plan_json(acr_example, "--untagged", "--keep-untagged", "1", "--grace", "1h")
    # o1 (pushed a day after o2) stays.
    assert [a["digest"] for a in kinds(plan, "delete_manifest")] == ["sha256:" + "6" * 64]
    assert plan["policy"]["default"]["untagged"] is True and plan["policy"]["default"]["keep_untagged"] == 1
    assert plan_json(acr_example, "--untagged")["policy"]["default"]["keep_untagged"] is None
    policy = tmp_path / "retention.toml"
    policy.write_text('grace = "1h"\n[default]\nuntagged = true\nkeep_untagged = 1\n')
    from_file = plan_json(acr_example, "--policy", policy)
    assert [a["digest"] for a in kinds(from_file, "delete_manifest")] == ["sha256:" + "6" * 64]
    assert from_file["policy"]["default"]["keep_untagged"] == 1
    # explain says why the spared orphan stays.
    out = tmp_path / "plan.json"
    out.write_text(json.dumps(plan))
    result = invoke("explain", acr_example, "sha256:" + "5" * 64, "--plan", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert "plan: kept: protected (kept by keep_untagged: among the most recently updated orphans)" in result.stdout


# --- hostile names ------------------------------------------------------------------------------

EVIL_REPO = "evil\x1b]0;owned\x07/app"
EVIL_TAG = "t\x1b[31mred"
BROKEN_REPO = "broken\x1b[2J"
OLD = datetime(2025, 1, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Path:
    m, layer = "sha256:" + "a" * 64, "sha256:" + "b" * 64
    bad = "sha256:" + "c" * 64
    tables = {
        "repositories": [{"repository": r, "complete": True, "error_count": 0} for r in (EVIL_REPO, BROKEN_REPO)],
        "tags": [{"repository": EVIL_REPO, "tag": EVIL_TAG, "digest": m, "updated_at": OLD},
                 {"repository": BROKEN_REPO, "tag": "x", "digest": bad, "updated_at": OLD}],
        "manifests": [{"repository": EVIL_REPO, "digest": m, "media_type": "application/vnd.oci.image.manifest.v1+json",
                       "size": 10, "status": "ok", "pushed_at": OLD},
                      {"repository": BROKEN_REPO, "digest": bad, "media_type": "x\x1b", "size": 5,
                       "status": "unknown_media_type", "pushed_at": OLD}],
        "descriptors": [{"repository": EVIL_REPO, "manifest_digest": m, "role": "layer", "position": 0,
                         "digest": layer, "media_type": "l", "size": 100}],
        "blobs": [{"digest": d, "size": s, "stored": True, "modified_at": OLD} for d, s in ((m, 10), (layer, 100),
                                                                                           (bad, 5))],
        "repository_blobs": [{"repository": EVIL_REPO, "digest": layer, "linked_at": OLD}],
        "uploads": [{"repository": EVIL_REPO, "uuid": "u\x1b[1m", "started_at": OLD, "size": 7, "modified_at": OLD}],
    }
    return write_snapshot(tmp_path_factory.mktemp("hostile") / "snap", tables).path


def test_text_escapes_control_characters_in_names(hostile: Path) -> None:
    result = invoke("plan-gc", hostile, "--delete-tags", ".", "--grace", "0s")
    assert result.exit_code == EXIT_OK, result.stderr
    text = result.stdout
    assert not any(c in text for c in "\x1b\x07\x00"), repr(text)
    assert "evil\\x1b]0;owned\\x07/app:t\\x1b[31mred -> sha256:aaaaaaaaaaaa" in text
    assert "evil\\x1b]0;owned\\x07/app@sha256:aaaaaaaaaaaa" in text
    assert "broken\\x1b[2J: no deletions" in text  # the notes name repositories too
    assert "upload u\\x1b[1m" not in text  # a manifest that cannot be read stops blob and upload deletions
    # JSON and Parquet keep the names exactly.
    plan = plan_json(hostile, "--delete-tags", ".", "--grace", "0s")
    assert [(a["repository"], a.get("tag")) for a in plan["actions"]] == [(EVIL_REPO, EVIL_TAG), (EVIL_REPO, None)]
    assert any(n.startswith(BROKEN_REPO + ": no deletions") for n in plan["notes"])


def test_parquet_keeps_hostile_names_exactly(hostile: Path, tmp_path: Path) -> None:
    out = tmp_path / "a.parquet"
    result = invoke("plan-gc", hostile, "--delete-tags", ".", "--grace", "0s", "-f", "parquet", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    rows = pq.read_table(out).to_pylist()
    assert [(r["action"], r["repository"], r["tag"]) for r in rows] == [
        ("delete_tag", EVIL_REPO, EVIL_TAG), ("delete_manifest", EVIL_REPO, None)]


def test_a_partial_crawl_says_why_no_blob_goes_once(tmp_path: Path) -> None:
    """A partial crawl of a storage tree sees no unreferenced blobs (its capabilities say so),
    but the reason is the repositories left out, never a registry that frees blobs itself."""
    snap = tmp_path / "part"
    assert invoke("crawl", str(SAMPLE), "-o", str(snap), "-r", "apps/*").exit_code == EXIT_OK
    out = tmp_path / "plan.json"
    result = invoke("plan-gc", str(snap), "--untagged", "--grace", "0s", "-o", str(out))
    assert result.exit_code == EXIT_INCOMPLETE, result.stderr
    plan = json.loads(out.read_text())
    assert kinds(plan, "delete_blob") == [] and kinds(plan, "delete_manifest")
    assert [n for n in plan["notes"] if "partial snapshot" in n] and plan["summary"]["bytes_estimated"]
    assert not [n for n in plan["notes"] if "frees blobs itself" in n], plan["notes"]
