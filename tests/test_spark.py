"""The Spark engine (regstat.analysis.spark): `report` and `plan-gc` on a real Spark, in local
mode, give what DuckDB gives, byte for byte, on sample_data/, the scenario's storage tree and
random registry graphs; a snapshot given as a file:// URL is read by Spark as its path is;
Spark's failures are one line; a new driver prints nothing on stderr with -q. One Spark
session serves the whole run (a session-scoped fixture); the commands under test find it
running (SparkSession.getOrCreate), but for those of the one test that starts JVMs of its own.

pyspark is the optional extra `regstat[spark]`; CI installs it (.ci/run), so there a missing
pyspark fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from support.crawls import crawl_ok, sample_copy
from support.planner_checks import check_plan, policies
from support.planner_graphs import Meta, random_registries, snapshot
from support.snapshots import SAMPLE as SCENARIO_TREE

from regstat.analysis.engine import SparkOptions
from regstat.cli import main
from regstat.errors import EXIT_FAILURE, EXIT_INCOMPLETE, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE
from regstat.plan.planner import plan_gc
from regstat.plan.policy import Policy, PolicyError, from_flags
from regstat.snapshot import Snapshot

if not os.environ.get("CI"):
    pytest.importorskip("pyspark", reason="the spark extra is not installed: pip install -e '.[spark]'")

# Small data: two cores, two shuffle partitions, no UI; no code generation nor adaptive
# re-planning, which cost more than they save on a few hundred rows (a sixth of the CPU).
MASTER = "local[2]"
CONF = {"spark.sql.shuffle.partitions": "2", "spark.default.parallelism": "2", "spark.ui.enabled": "false",
        "spark.sql.codegen.wholeStage": "false", "spark.sql.codegen.factoryMode": "NO_CODEGEN",
        "spark.sql.adaptive.enabled": "false"}
SPARK_ARGS = ("--engine", "spark", "--spark-master", MASTER,
              *(arg for key, value in CONF.items() for arg in ("--spark-conf", f"{key}={value}")))

POLICIES = (
    ("--untagged", "--grace", "0s"),
    ("--older-than", "1d", "--keep", "1", "--untagged", "--keep-untagged", "1", "--grace", "0s"),
    ("--delete-tags", ".", "--keep-tags", "^latest$", "--grace", "0s"),
)
POLICY = {
    POLICIES[1]: from_flags(older_than="1d", keep=1, untagged=True, keep_untagged=1, grace="0s"),
    POLICIES[2]: from_flags(delete_tags=".", keep_tags=("^latest$",), grace="0s"),
}


@pytest.fixture(scope="session")
def spark() -> Iterator[SparkOptions]:
    """The run's one Spark session, started here and stopped at the end."""
    from regstat.analysis.spark import open_spark

    options = SparkOptions(MASTER, CONF)
    engine = open_spark(options)
    yield options
    engine.session.stop()


@pytest.fixture(scope="module")
def snapshots(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """sample_data/ (aged as the README's first command ages it) and the scenario's tree, crawled."""
    base = tmp_path_factory.mktemp("spark")
    out = {}
    for name, tree in (("sample_data", sample_copy(base / "sample_tree")), ("scenario", SCENARIO_TREE)):
        crawl_ok(tree, base / name)
        out[name] = base / name
    return out


def run(*args: str) -> str:
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code in (EXIT_OK, EXIT_INCOMPLETE), result.output
    return result.stdout


def error(*args: str) -> tuple[int, str]:
    """A command that fails: its exit code and its stderr, which must be one line."""
    result = CliRunner().invoke(main, list(args))
    assert result.exit_code not in (EXIT_OK, EXIT_INCOMPLETE), result.output
    assert result.stderr.count("\n") == 1 and " at org.apache" not in result.stderr, result.stderr
    return result.exit_code, result.stderr


@pytest.mark.parametrize("name", ["sample_data", "scenario"])
def test_report_is_duckdbs(spark: SparkOptions, snapshots: dict[str, Path], name: str) -> None:
    snap = str(snapshots[name])
    duckdb = json.loads(run("report", snap, "--format", "json"))
    assert duckdb["orphaned_manifests"] and duckdb["reclaimable_now_bytes"]  # figures worth comparing
    assert json.loads(run("report", snap, "--format", "json", *SPARK_ARGS)) == duckdb


@pytest.mark.parametrize("name", ["sample_data", "scenario"])
def test_plans_are_duckdbs_byte_for_byte(spark: SparkOptions, snapshots: dict[str, Path], name: str) -> None:
    snap = str(snapshots[name])
    # The command, once: its JSON (actions, positions, summary, checksum) is DuckDB's.
    duckdb = run("plan-gc", snap, *POLICIES[0], "--format", "json")
    assert run("plan-gc", snap, *POLICIES[0], "--format", "json", *SPARK_ARGS) == duckdb
    opened = Snapshot.open(snap)
    # One more policy on each snapshot (for time): tag rules with keep and kept orphans, or
    # a tag regex against protected tags.
    for flags in POLICIES[1:2] if name == "sample_data" else POLICIES[2:]:
        with plan_gc(opened, POLICY[flags]) as a, plan_gc(opened, POLICY[flags], engine_name="spark", spark=spark) as b:
            assert a.actions, flags  # a plan with actions to order and number
            assert b.to_json() == a.to_json(), flags
            # The actions file itself: same rows, positions, schema and bytes.
            assert b.actions_file.read_bytes() == a.actions_file.read_bytes(), flags


@settings(max_examples=2, derandomize=True, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow,
                                 HealthCheck.data_too_large])
@given(tables=random_registries(), policy=policies(), meta=Meta)
def test_random_registries_plan_as_on_duckdb(spark: SparkOptions, tables: dict, policy: Policy, meta: dict,
                                             tmp_path_factory: pytest.TempPathFactory) -> None:
    meta = dict(meta)
    source = meta.pop("source", "storage")
    snap = snapshot(tmp_path_factory.mktemp("plan") / "s", tables, source, **meta)
    try:
        duckdb = plan_gc(snap, policy)
    except PolicyError:
        with pytest.raises(PolicyError):
            plan_gc(snap, policy, engine_name="spark", spark=spark)
        return
    with duckdb, plan_gc(snap, policy, engine_name="spark", spark=spark) as on_spark:
        check_plan(tables, snap.info.to_json(), policy, on_spark)
        assert on_spark.to_json() == duckdb.to_json()


def test_without_pyspark_the_error_says_how_to_install_it(snapshots: dict[str, Path],
                                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # As where the extra is not installed: importing pyspark (or any module of it) fails.
    for name in [n for n in sys.modules if n == "pyspark" or n.startswith("pyspark.")] + ["pyspark"]:
        monkeypatch.setitem(sys.modules, name, None)
    monkeypatch.delitem(sys.modules, "regstat.analysis.spark", raising=False)
    for command in (("report",), ("plan-gc", "--untagged")):
        result = CliRunner().invoke(main, [command[0], str(snapshots["scenario"]), *command[1:], "--engine", "spark"])
        assert result.exit_code == EXIT_USAGE, "".join(traceback.format_exception(*result.exc_info))
        assert result.stderr.count("\n") == 1 and "pip install 'regstat[spark]'" in result.stderr, result.stderr


def test_a_snapshot_at_a_url_is_read_by_spark(spark: SparkOptions, snapshots: dict[str, Path], tmp_path: Path) -> None:
    snap = snapshots["sample_data"]
    url = snap.as_uri()  # file:///...: read through Spark's Hadoop filesystem, as hdfs:// or s3a:// would be
    assert url.startswith("file:///")
    assert run("report", url, "--format", "json", *SPARK_ARGS) == run("report", str(snap), "--format", "json")
    # The plan is written where -o says, on this machine: not at the URL.
    plan = tmp_path / "plan.json"
    run("plan-gc", url, *POLICIES[0], "-o", str(plan), *SPARK_ARGS)
    assert plan.read_text() == run("plan-gc", str(snap), *POLICIES[0], "--format", "json")
    # A file:// URL is a local directory: an output inside it is refused, as inside a path.
    assert error("plan-gc", url, "--untagged", "-o", str(snap / "plan.json"), *SPARK_ARGS)[0] == EXIT_SNAPSHOT
    # Not a snapshot: the error a local path gets, naming the URL.
    (tmp_path / "empty").mkdir()
    for where in (tmp_path / "empty", tmp_path / "nowhere"):
        local = error("report", str(where), *SPARK_ARGS)
        assert error("report", where.as_uri(), *SPARK_ARGS) == (local[0], local[1].replace(str(where), where.as_uri()))
        assert local[0] == EXIT_SNAPSHOT
    # DuckDB reads no URL but s3:// (downloaded): a usage error says to use Spark.
    for command in (("report",), ("plan-gc", "--untagged")):
        code, message = error(command[0], url, *command[1:])
        assert code == EXIT_USAGE and "--engine spark" in message, message


def test_a_spark_failure_is_one_line(spark: SparkOptions, snapshots: dict[str, Path]) -> None:
    # A real failure in the running session: a setting Spark refuses.
    args = ("report", str(snapshots["scenario"]), *SPARK_ARGS, "--spark-conf", "spark.sql.shuffle.partitions=0")
    code, message = error(*args)
    assert code == EXIT_FAILURE
    assert message.startswith("regstat: error: Spark failed: [INVALID_CONF_VALUE.REQUIREMENT] ")
    assert "spark.sql.shuffle.partitions" in message and "SQLSTATE" not in message
    result = CliRunner().invoke(main, [*args, "--format", "json"])
    assert json.loads(result.stdout) == {"error": message.removeprefix("regstat: error: ").rstrip("\n"),
                                         "kind": "spark", "exit_code": EXIT_FAILURE}


# What Java itself prints on stderr when Spark's launcher starts it with the incubating module
# Spark 4 asks for: before any log configuration applies, so regstat cannot silence it.
JVM_LINES = {"WARNING: Using incubator modules: jdk.incubator.vector"}


def test_a_new_driver_is_quiet_and_its_failures_are_one_line(snapshots: dict[str, Path]) -> None:
    """In a process of its own: a new JVM, whose start and log lines the test sees."""
    snap = str(snapshots["scenario"])

    def regstat(*args: str) -> tuple[subprocess.CompletedProcess[str], list[str]]:
        done = subprocess.run([sys.executable, "-m", "regstat", "report", snap, "-q", "--engine", "spark",
                               "--spark-master", MASTER, "--spark-conf", "spark.sql.shuffle.partitions=2", *args],
                              capture_output=True, text=True, timeout=600)
        return done, [line for line in done.stderr.splitlines() if line not in JVM_LINES]

    done, lines = regstat("--format", "json")
    assert done.returncode == EXIT_OK and lines == [], done.stderr
    assert json.loads(done.stdout)["reclaimable_now_bytes"]
    # Spark's own out-of-memory error, on a driver given almost no execution memory: one line
    # (no task's log, no stack trace), with the hint.
    done, lines = regstat("--spark-conf", "spark.memory.fraction=0.0001")
    assert done.returncode == EXIT_FAILURE and len(lines) == 1, done.stderr
    assert lines[0].startswith("regstat: error: Spark failed: SparkOutOfMemoryError: [UNABLE_TO_ACQUIRE_MEMORY] ")
    assert "--spark-conf spark.driver.memory=8g" in lines[0]
