"""The command line: `regstat sql` formats, partial crawls, refusing to overwrite, crash safety."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from regstat.snapshot import digest_ids
from regstat.cli import COMMANDS, main
from regstat.errors import EXIT_FAILURE, EXIT_OK, EXIT_SNAPSHOT
from regstat.snapshot import SCHEMAS, STORED_SCHEMAS, STORED_TABLES, TABLES, Snapshot

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"


@pytest.fixture(scope="module")
def snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snap") / "s"
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    return out


def sql(*args: str) -> CliRunner:
    return CliRunner().invoke(main, ["sql", *args])


def test_tables_have_the_documented_schemas(snapshot: Path) -> None:
    for name in STORED_TABLES:
        assert pq.read_schema(next((snapshot / name).glob("*.parquet"))).remove_metadata() == STORED_SCHEMAS[name], name
    for name in TABLES:  # and as readers see them: digests as text
        assert digest_ids.read(snapshot, name).schema == SCHEMAS[name], name
    meta = json.loads((snapshot / "snapshot.json").read_text())
    assert meta["counts"] == {name: pq.read_table(snapshot / name).num_rows for name in STORED_TABLES}


def test_sql_json_is_one_array_of_objects(snapshot: Path) -> None:
    query = "SELECT repository, tag, digest, updated_at FROM tags ORDER BY 1, 2"
    result = sql(str(snapshot), query, "--format", "json")
    assert result.exit_code == 0, result.stderr
    data = json.loads(result.stdout)
    expected = digest_ids.read(snapshot, "tags").to_pylist()
    assert [(r["repository"], r["tag"], r["digest"]) for r in data] == [
        (r["repository"], r["tag"], r["digest"]) for r in expected
    ]
    assert all(r["updated_at"].endswith("Z") for r in data)
    assert len(result.stdout.splitlines()) == len(data) + 2  # "[", a row a line, "]"


def test_sql_csv_and_table(snapshot: Path) -> None:
    result = sql(str(snapshot), "SELECT repository, count(*) AS tags FROM tags GROUP BY 1 ORDER BY 1", "-f", "csv")
    parsed = list(csv.reader(io.StringIO(result.stdout)))
    assert parsed[0] == ["repository", "tags"] and len(parsed) > 2
    table = sql(str(snapshot), "SELECT count(*) AS n FROM manifests").stdout
    n = pq.read_table(snapshot / "manifests").num_rows
    assert table.splitlines()[2].strip() == str(n) and "(1 row)" in table


def test_sql_from_stdin_and_errors_view(snapshot: Path) -> None:
    result = CliRunner().invoke(main, ["sql", str(snapshot), "-", "-f", "json"],
                                input="SELECT count(*) AS n FROM errors")
    assert json.loads(result.stdout) == [{"n": 0}]


def test_sql_reports_bad_queries_and_non_snapshots(snapshot: Path, tmp_path: Path) -> None:
    result = sql(str(snapshot), "SELECT nope FROM tags")
    assert result.exit_code == EXIT_FAILURE and "query failed" in result.stderr
    result = sql(str(tmp_path), "SELECT 1")
    assert result.exit_code == EXIT_SNAPSHOT and "not a regstat snapshot" in result.stderr


def test_partial_crawl(tmp_path: Path) -> None:
    out = tmp_path / "p"
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "-o", str(out), "--repository", "apps/*"])
    assert result.exit_code == EXIT_OK, result.stderr
    meta = json.loads((out / "snapshot.json").read_text())
    assert meta["partial"] is True and meta["complete"] is False
    assert meta["capabilities"]["unreferenced_blobs"] is False
    assert meta["repository_filter"] == ["apps/*"]
    repos = {r["repository"] for r in pq.read_table(out / "repositories").to_pylist()}
    assert repos and all(r.startswith("apps/") for r in repos)
    # Only apps/ was crawled; the other top-level directories were counted by name, not read.
    assert meta["source_repositories"] == len(list(SAMPLE.rglob("_manifests"))) == 4
    assert meta["counts"]["repositories"] == 2
    # A glob that any top-level directory may match lists them all: the source's count is known.
    out = tmp_path / "q"
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "-o", str(out), "--repository", "*/web"])
    assert result.exit_code == EXIT_OK, result.stderr
    meta = json.loads((out / "snapshot.json").read_text())
    assert meta["counts"]["repositories"] == 1
    assert meta["source_repositories"] == len(list(SAMPLE.rglob("_manifests"))) == 4


def test_existing_output_is_refused_unless_forced(snapshot: Path, tmp_path: Path) -> None:
    out = tmp_path / "s"
    out.mkdir()
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "-o", str(out)])
    assert result.exit_code == EXIT_SNAPSHOT and "--force" in result.stderr
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "-o", str(out), "--force", "--json"])
    assert result.exit_code == EXIT_OK
    assert json.loads(result.stdout)["complete"] is True
    Snapshot.open(out)


def big_tree(root: Path, copies: int) -> None:
    """scenario_tree with its repositories copied many times: a valid tree that takes a while."""
    shutil.copytree(SAMPLE / "docker", root / "docker")
    repositories = root / "docker/registry/v2/repositories"
    originals = [p for p in repositories.rglob("_manifests")]
    for i in range(copies):
        for manifests in originals:
            repo = manifests.parent
            shutil.copytree(repo, repositories / f"copy{i}" / repo.relative_to(repositories))


@pytest.fixture(scope="module")
def big_root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("big") / "root"
    big_tree(root, 400)
    return root


def test_killed_crawl_leaves_nothing_a_command_accepts(big_root: Path, tmp_path: Path) -> None:
    root = big_root
    out = tmp_path / "snap"
    command = [sys.executable, "-m", "regstat", "crawl", str(root), "-o", str(out)]
    killed_mid_crawl = 0
    # Kill before the crawl starts writing, then at moments after its hidden directory
    # appears: timed from that, not from the start, so a slow (loaded) machine still lands them.
    for after_start in (None, 0.0, 0.1, 0.3, 0.6):
        process = subprocess.Popen(command, stderr=subprocess.DEVNULL)
        if after_start is None:
            time.sleep(0.05)
        else:
            deadline = time.monotonic() + 60
            while not list(tmp_path.glob(".snap.regstat-partial-*")) and process.poll() is None:
                assert time.monotonic() < deadline, "the crawl never started writing"
                time.sleep(0.01)
            time.sleep(after_start)
        process.send_signal(signal.SIGKILL)
        process.wait()
        leftovers = list(tmp_path.glob(".snap*"))
        killed_mid_crawl += bool(leftovers)
        for candidate in [out, *leftovers]:
            if candidate == out and not out.exists():
                continue
            check = sql(str(candidate), "SELECT count(*) FROM manifests")
            if candidate == out:  # the kill came after the rename: then it is whole
                assert check.exit_code == 0
            else:
                assert check.exit_code == EXIT_SNAPSHOT, candidate
        if out.exists():
            shutil.rmtree(out)
    assert killed_mid_crawl, "no kill landed while the crawl was writing; make the tree bigger"
    time.sleep(0.5)
    orphans = subprocess.run(["pgrep", "-f", f"regstat crawl {root}"], capture_output=True, text=True).stdout
    assert orphans == "", "crawl workers outlived their killed crawl"
    finished = subprocess.run(command, stderr=subprocess.PIPE, text=True)
    assert finished.returncode == 0, finished.stderr
    assert not list(tmp_path.glob(".snap.regstat-partial-*"))  # leftovers of dead crawls removed
    assert Snapshot.open(out).info.complete


@pytest.mark.parametrize("number, after", [(signal.SIGTERM, 0.0), (signal.SIGTERM, 0.3), (signal.SIGINT, 0.1)])
def test_a_signal_stops_the_crawl_cleanly(big_root: Path, tmp_path: Path, number: int, after: float) -> None:
    """SIGTERM to the crawl, or Ctrl-C (SIGINT to its whole process group: the worker
    processes get it too), stops it with one line and no traceback. Signals that raised at
    once used to hang the crawl at exit (one raised inside concurrent.futures), vanish (one
    raised in a fork hook), or print the workers' KeyboardInterrupt tracebacks."""
    out = tmp_path / "snap"
    process = subprocess.Popen(
        [sys.executable, "-m", "regstat", "crawl", str(big_root), "-o", str(out)],
        stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    # Signal once the crawl has begun writing (its handler is installed by then): a fixed
    # delay can land during start-up on a loaded machine, where a signal still kills outright.
    deadline = time.monotonic() + 120  # a safety net; a loaded machine starts slowly
    while process.poll() is None and time.monotonic() < deadline:
        if list(tmp_path.glob(".snap.regstat-partial-*")):
            break
        time.sleep(0.01)
    time.sleep(after)
    if number == signal.SIGINT:
        os.killpg(process.pid, number)
    else:
        process.send_signal(number)
    _, stderr = process.communicate(timeout=60)
    assert "Traceback" not in stderr and "Exception ignored" not in stderr, stderr
    if process.returncode == 130:
        assert "interrupted" in stderr and not out.exists()
        # A crawl that had checkpointed (slow start on a loaded machine) keeps its hidden
        # directory for --resume and says so; otherwise nothing is left.
        assert "--resume" in stderr or not list(tmp_path.glob(".snap.regstat-partial-*"))
    else:  # finished before the signal arrived
        assert process.returncode == 0, stderr
        assert Snapshot.open(out).info.complete


def test_every_command_has_help_with_examples() -> None:
    for name in COMMANDS:
        result = CliRunner().invoke(main, [name, "--help"])
        assert result.exit_code == 0 and "Examples:" in result.stdout, name
        assert f"regstat {name}" in (Path(__file__).parent.parent / "README.md").read_text(), name


def _wait_for_checkpoints(out: Path, count: int, process: subprocess.Popen) -> bool:
    """Wait until the crawl to OUT has journaled `count` checkpoints (False: it ended first)."""
    deadline = time.monotonic() + 120  # a safety net; a loaded machine starts slowly
    while time.monotonic() < deadline and process.poll() is None:
        if len(list(out.parent.glob(f".{out.name}.regstat-partial-*/_staging/journal/*.json"))) >= count:
            return True
        time.sleep(0.01)
    return False


def test_sigkill_then_resume_gives_the_uninterrupted_tables(big_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "REGSTAT_CHECKPOINT_SECONDS": "0"}
    full, out = tmp_path / "full", tmp_path / "snap"
    assert subprocess.run([sys.executable, "-m", "regstat", "crawl", str(big_root), "-o", str(full)]).returncode == 0
    command = [sys.executable, "-m", "regstat", "crawl", str(big_root), "-o", str(out), "--json"]
    process = subprocess.Popen(command, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    landed = _wait_for_checkpoints(out, 20, process)
    process.send_signal(signal.SIGKILL)
    process.wait()
    assert landed, "the crawl finished before the kill; make the tree bigger"
    resumed = subprocess.run([*command, "--resume"], env=env, capture_output=True, text=True)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["work"]["jobs_reused"] > 0
    for name in STORED_TABLES:  # the same digests, numbered alike: the same tables as readers see them
        assert pq.read_table(out / name).equals(pq.read_table(full / name)), name
    assert len(Snapshot.open(out).info.resumed_at) == 1


def test_sigterm_keeps_a_crawl_that_can_be_resumed(big_root: Path, tmp_path: Path) -> None:
    env = {**os.environ, "REGSTAT_CHECKPOINT_SECONDS": "0"}
    out = tmp_path / "snap"
    command = [sys.executable, "-m", "regstat", "crawl", str(big_root), "-o", str(out)]
    process = subprocess.Popen(command, env=env, stderr=subprocess.PIPE, text=True)
    landed = _wait_for_checkpoints(out, 10, process)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert landed and process.returncode == 130, stderr
    assert "--resume" in stderr and not out.exists()
    (partial,) = tmp_path.glob(".snap.regstat-partial-*")
    assert sql(str(partial), "SELECT 1").exit_code == EXIT_SNAPSHOT
    assert subprocess.run([*command, "--resume"], env=env, capture_output=True).returncode == 0
    assert Snapshot.open(out).info.complete and not list(tmp_path.glob(".snap.regstat-*"))
