"""The Spark engine (regstat.analysis.spark): `report` and `plan-gc` on a real Spark, in local
mode, give what DuckDB gives, byte for byte, on sample_data/, the scenario's storage tree and
random registry graphs. One Spark session serves the whole run (a session-scoped fixture);
the commands under test find it running (SparkSession.getOrCreate).

pyspark is the optional extra `regstat[spark]`; CI installs it (.ci/run), so there a missing
pyspark fails these tests instead of skipping them.
"""

from __future__ import annotations

import json
import os
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
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_USAGE
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
