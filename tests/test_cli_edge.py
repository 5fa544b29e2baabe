"""The CLI's edge (issue 16): options that mean the same in every command (-f/-o,
--memory-limit, -r/--repository, -q/--quiet), one map from an error to its message, kind and
exit code, JSON errors for --json and --format json, usage errors in click's style, and
-r GLOB on every command that takes repositories. On a crawl of tests/scenario_tree."""

from __future__ import annotations

import fnmatch
import importlib
import inspect
import json
import pkgutil
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

import regstat
from regstat.cli import COMMANDS, main
from regstat.cli import command as cli_command
from regstat.cli.edge import OUTCOMES, outcome
from regstat.errors import (
    EXIT_FAILURE,
    EXIT_OK,
    EXIT_SNAPSHOT,
    EXIT_SOURCE,
    EXIT_USAGE,
    RegstatError,
)

TREE = Path(__file__).resolve().parent / "scenario_tree"
NAMES = json.loads((TREE / "EXPECTED.json").read_text())["names"]
REPOSITORY_COMMANDS = ("crawl", "plan-gc", "report", "sql", "explain")


def invoke(*args: object, input: str | None = None):
    return CliRunner().invoke(main, [str(a) for a in args], input=input)


@pytest.fixture(scope="module")
def snap(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("edge") / "snap"
    result = invoke("crawl", TREE, "-o", path)
    assert result.exit_code == EXIT_OK, result.stderr
    return path


def rows(snap: Path, sql: str, *extra: object) -> list[dict]:
    result = invoke("sql", snap, sql, "-f", "json", *extra)
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


# --- one map from an error to its kind and exit code ------------------------------------------


def regstat_errors() -> list[type[RegstatError]]:
    found = []
    for info in pkgutil.walk_packages(regstat.__path__, "regstat."):
        if not info.name.endswith("__main__"):
            module = importlib.import_module(info.name)
            found += [c for _, c in inspect.getmembers(module, inspect.isclass)
                      if issubclass(c, RegstatError) and c.__module__ == info.name]
    return found


def test_every_regstat_error_has_its_own_outcome() -> None:
    """A new RegstatError class is a decision: its kind and exit code, in OUTCOMES."""
    mapped = [cls for cls, _, _ in OUTCOMES]
    missing = [c.__name__ for c in regstat_errors() if c not in mapped and c is not RegstatError
               and not any(issubclass(c, m) and m is not RegstatError for m in mapped)]
    assert not missing, f"add these to regstat.cli.edge.OUTCOMES: {missing}"
    # Most specific first: no entry is shadowed by an earlier, more general one.
    for i, (cls, _, _) in enumerate(OUTCOMES):
        assert not any(issubclass(cls, earlier) for earlier, _, _ in OUTCOMES[:i]), cls
    assert OUTCOMES[-1][0] is RegstatError


def test_the_help_lists_every_kind() -> None:
    listed = " ".join((main.help or "").split()).split("kind is one of ", 1)[1]
    for _, kind, _ in OUTCOMES:
        assert kind in listed, kind
    for kind in ("usage", "interrupted", "internal"):  # click's usage errors, signals, crashes
        assert kind in listed, kind


def test_outcomes_keep_the_documented_exit_codes() -> None:
    from regstat.errors import OutputRefusedError, SnapshotError, SourceError
    from regstat.plan.policy import PolicyError

    assert outcome(SourceError("x")) == ("source", EXIT_SOURCE)
    assert outcome(SnapshotError("x")) == ("snapshot", EXIT_SNAPSHOT)
    assert outcome(OutputRefusedError("x")) == ("output", EXIT_SNAPSHOT)
    assert outcome(PolicyError("x")) == ("usage", EXIT_USAGE)
    assert outcome(RegstatError("x")) == ("error", EXIT_FAILURE)


# --- shared options -----------------------------------------------------------------------------


def options_of(name: str) -> dict[str, click.Option]:
    command = cli_command(name)
    return {p.name: p for p in command.params if isinstance(p, click.Option)}


def test_every_command_has_quiet_and_the_shared_options_where_they_apply() -> None:
    for name in COMMANDS:
        opts = options_of(name)
        assert opts["quiet"].opts == ["-q", "--quiet"], name
        if "fmt" in opts:
            assert opts["fmt"].opts == ["-f", "--format"] and opts["output"].opts == ["-o", "--output"], name
            assert "text" in opts["fmt"].type.choices, name  # the plain format has one name
    for name in REPOSITORY_COMMANDS:
        opts = options_of(name)
        assert opts["repositories"].opts == ["-r", "--repository"] and opts["repositories"].multiple, name
        assert opts["repositories"].metavar == "GLOB", name
    for name in ("sql", "report", "plan-gc", "explain", "export-db"):
        assert options_of(name)["memory_limit"].metavar == "SIZE", name


# --- --quiet ------------------------------------------------------------------------------------


def test_quiet_leaves_stderr_empty_when_all_goes_well(snap: Path, tmp_path: Path) -> None:
    loud = invoke("crawl", TREE, "-o", tmp_path / "loud")
    assert loud.exit_code == EXIT_OK and "snapshot" in loud.stderr
    quiet = invoke("crawl", TREE, "-o", tmp_path / "quiet", "-q", "--progress")
    assert quiet.exit_code == EXIT_OK and quiet.stderr == "", quiet.stderr
    plan = invoke("plan-gc", snap, "--untagged", "-o", tmp_path / "plan.json", "--quiet")
    assert plan.exit_code == EXIT_OK and plan.stderr == "" and (tmp_path / "plan.json").exists()
    assert "wrote" in invoke("plan-gc", snap, "--untagged", "-o", tmp_path / "plan2.json").stderr
    export = invoke("export-db", snap, tmp_path / "snap.duckdb", "-q")
    assert export.exit_code == EXIT_OK and export.stderr == ""
    for args in (("report", snap), ("sql", snap, "SELECT 1 AS one"), ("explain", snap, NAMES["web_new"])):
        result = invoke(*args, "-q")
        assert result.exit_code == EXIT_OK and result.stderr == "" and result.stdout, args


def test_quiet_still_reports_what_went_wrong(snap: Path) -> None:
    result = invoke("sql", snap, "SELECT nothing FROM nowhere", "-q")
    assert result.exit_code == EXIT_FAILURE and result.stderr.startswith("regstat: error: query failed")


def test_duckdb_out_of_memory_is_one_line_saying_what_to_do(snap: Path) -> None:
    # A real DuckDB under a limit no statement fits in: its exception's several lines of SET
    # commands become one line naming regstat's own options, and no traceback.
    for args in (("report", snap, "-f", "json"), ("plan-gc", snap, "--untagged", "-f", "json"),
                 ("sql", snap, "SELECT * FROM repository_usage", "-f", "json")):
        result = invoke(*args, "--memory-limit", "1MB")
        assert result.exit_code == EXIT_FAILURE, (args, result.stderr)
        assert json_error(result)["kind"] == "memory", args
        lines = result.stderr.splitlines()
        assert len(lines) == 1 and lines[0].startswith("regstat: error: DuckDB ran out of memory ("), lines
        assert "--memory-limit" in lines[0] and "SET " not in lines[0], lines


# --- errors as JSON, usage errors in click's style -----------------------------------------------


def json_error(result) -> dict:
    payload = json.loads(result.stdout)
    assert set(payload) == {"error", "kind", "exit_code"} and payload["exit_code"] == result.exit_code
    return payload


def test_a_fatal_error_prints_json_on_stdout_with_json_formats(snap: Path, tmp_path: Path) -> None:
    missing = tmp_path / "missing"
    for args in (("report", missing, "-f", "json"), ("sql", missing, "SELECT 1", "--format", "json"),
                 ("explain", missing, NAMES["web_new"], "-f", "json"),
                 ("plan-gc", missing, "--untagged", "-f", "json")):
        result = invoke(*args)
        assert result.exit_code == EXIT_SNAPSHOT, (args, result.stderr)
        payload = json_error(result)
        assert payload["kind"] == "snapshot" and str(missing) in payload["error"], args
        assert result.stderr.startswith("regstat: error: "), args  # stderr says it too
    crawled = invoke("crawl", tmp_path / "no-such-storage", "-o", tmp_path / "out", "--json")
    assert crawled.exit_code == EXIT_SOURCE and json_error(crawled)["kind"] == "source"
    # Without a JSON format, stdout stays empty.
    plain = invoke("report", missing)
    assert plain.exit_code == EXIT_SNAPSHOT and plain.stdout == ""


def test_usage_errors_exit_2_in_clicks_style_and_as_json(snap: Path, tmp_path: Path) -> None:
    cases = [
        ("plan-gc", snap, "--older-than", "ten days", "-f", "json"),  # a PolicyError
        ("explain", snap, "not a digest", "-f", "json"),  # a TargetFormError
        ("sql", snap, "SELECT 1 AS one", "-r", "apps/*", "-f", "json"),  # a QueryScopeError
        ("sql", snap, "SELECT 1", "-f", "json", "--no-such-option"),  # click's own, while parsing
    ]
    for args in cases:
        result = invoke(*args)
        assert result.exit_code == EXIT_USAGE, (args, result.stderr)
        assert result.stderr.startswith("Usage: ") and "\nError: " in result.stderr, (args, result.stderr)
        assert json_error(result)["kind"] == "usage", args


def test_username_without_password_stdin_is_a_usage_error(tmp_path: Path) -> None:
    for extra in (["--username", "ci"], ["--password-stdin"]):
        result = invoke("crawl", "https://127.0.0.1:9", "-o", tmp_path / "snap", *extra, input="secret\n")
        assert result.exit_code == EXIT_USAGE, (extra, result.stderr)
        assert result.stderr.startswith("Usage: ") and "--password-stdin" in result.stderr
        assert not (tmp_path / "snap").exists()


# --- -r/--repository GLOB -----------------------------------------------------------------------


def test_sql_repository_keeps_the_rows_whose_repository_matches(snap: Path, tmp_path: Path) -> None:
    every = rows(snap, "SELECT repository, tag FROM tags ORDER BY 1, 2")
    assert {r["repository"] for r in every} >= {"apps/web", "base/alpine"}
    chosen = rows(snap, "SELECT repository, tag FROM tags ORDER BY 1, 2", "-r", "apps/*", "-r", "tools/cli")
    assert chosen == [r for r in every
                      if fnmatch.fnmatchcase(r["repository"], "apps/*") or r["repository"] == "tools/cli"]
    assert chosen and len(chosen) < len(every)
    # Parquet goes through the same filter.
    out = tmp_path / "tags.parquet"
    result = invoke("sql", snap, "SELECT repository, tag FROM tags", "-f", "parquet", "-o", out, "-r", "apps/*")
    assert result.exit_code == EXIT_OK, result.stderr
    import pyarrow.parquet as pq

    assert sorted(pq.read_table(out).column("repository").to_pylist()) == sorted(
        r["repository"] for r in every if r["repository"].startswith("apps/"))
    refused = invoke("sql", snap, "SELECT count(*) AS n FROM tags", "-r", "apps/*")
    assert refused.exit_code == EXIT_USAGE and "repository column" in refused.stderr and refused.stdout == ""


def test_sql_text_is_the_plain_format_and_table_its_alias(snap: Path) -> None:
    query = "SELECT repository, count(*) AS tags FROM tags GROUP BY 1 ORDER BY 1"
    text, table = invoke("sql", snap, query, "-f", "text"), invoke("sql", snap, query, "-f", "table")
    assert text.exit_code == table.exit_code == EXIT_OK
    assert text.stdout == table.stdout == invoke("sql", snap, query).stdout and "apps/web" in text.stdout


def test_report_repository_limits_the_repository_rows_only(snap: Path) -> None:
    whole = json.loads(invoke("report", snap, "-f", "json").stdout)
    result = invoke("report", snap, "-f", "json", "-r", "apps/*")
    assert result.exit_code == EXIT_OK, result.stderr
    scoped = json.loads(result.stdout)
    assert {r["repository"] for r in scoped["repositories"]} == {
        r["repository"] for r in whole["repositories"] if r["repository"].startswith("apps/")}
    assert len(scoped["repositories"]) < len(whole["repositories"])
    for row in scoped["top"]["orphaned_by_repository"] or []:
        assert row["repository"].startswith("apps/")
    for figure in ("reclaimable_now_bytes", "physical_bytes", "logical_bytes", "orphaned_manifests"):
        assert scoped[figure] == whole[figure], figure  # registry-wide
    assert scoped["top"]["largest_layers"] == whole["top"]["largest_layers"]
    assert scoped["repository_scope"] == ["apps/*"] and whole["repository_scope"] is None
    assert any("registry-wide" in w for w in scoped["warnings"])
    text = invoke("report", snap, "-r", "apps/*").stdout
    assert "registry-wide" in text and "base/alpine" not in text.split("registry-wide", 1)[1].split("\n\n", 1)[0]


def test_explain_repository_takes_globs(snap: Path) -> None:
    def explained(*extra: str) -> dict:
        result = invoke("explain", snap, NAMES["base_layer"], "-f", "json", *extra)
        assert result.exit_code == EXIT_OK, result.stderr
        return json.loads(result.stdout)

    every = explained()
    assert len({r["repository"] for r in every["references"]}) > 1
    apps = explained("-r", "apps/*")
    assert {r["repository"] for r in apps["references"]} == {
        r["repository"] for r in every["references"] if r["repository"].startswith("apps/")} != set()
    assert apps["blob"] == every["blob"] and apps["repository_scope"] == ["apps/*"]
    text = invoke("explain", snap, NAMES["base_layer"], "-r", "apps/*").stdout
    assert "registry-wide" in text and "base/alpine@" not in text


# --- one emit: every -o checked the same way -----------------------------------------------------


def test_every_output_is_refused_inside_the_snapshot(snap: Path) -> None:
    inside = snap / "out.txt"
    for args in (("report", snap), ("sql", snap, "SELECT 1 AS one"), ("plan-gc", snap, "--untagged"),
                 ("explain", snap, NAMES["web_new"])):
        result = invoke(*args, "-o", inside)
        assert result.exit_code == EXIT_SNAPSHOT, (args, result.stderr)
        assert not inside.exists()


def test_explain_writes_its_output_file(snap: Path, tmp_path: Path) -> None:
    out = tmp_path / "why.json"
    result = invoke("explain", snap, NAMES["web_new"], "-f", "json", "-o", out)
    assert result.exit_code == EXIT_OK and result.stdout == ""
    assert json.loads(out.read_text())["digest"] == NAMES["web_new"]
