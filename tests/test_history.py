"""Snapshot histories (`crawl --into HISTORY`, issue 19): naming, `latest`, `--retain`,
`--resume` into a history, and HISTORY / HISTORY@-N / HISTORY@YYYY-MM-DD in every command.

Crawls run the real CLI in a child process over a copy of tests/scenario_tree. A child may
fix the time the history names a snapshot by (`history.new_path`), so same-second re-runs
happen whatever the machine's speed, or SIGKILL itself after N job results, so an interrupted
crawl is left exactly where the test wants it (no signal from outside, no timing).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path

import pytest

from support.histories import KILLED, SCENARIO, ok, regstat
from regstat import analysis
from regstat.errors import EXIT_INCOMPLETE, EXIT_SNAPSHOT, EXIT_SOURCE, EXIT_USAGE
from regstat.snapshot import PARTIAL_MARK, Snapshot
from regstat.snapshot import history
from regstat.snapshot.history import Retention, SelectorError

def usage_error(done: subprocess.CompletedProcess[str], *words: str) -> None:
    """Exit 2, one line on stderr, saying `words`."""
    assert done.returncode == EXIT_USAGE, (done.returncode, done.stderr)
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1, done.stderr
    for word in words:
        assert word in lines[0], lines[0]


def names(directory: Path) -> list[str]:
    """What a history shows (its hidden entries: .regstat, unfinished crawls, left out)."""
    return sorted(p.name for p in directory.iterdir() if not p.name.startswith("."))


def latest_name(directory: Path) -> str:
    link = directory / "latest"
    assert link.is_symlink() and not os.path.isabs(os.readlink(link))
    return os.readlink(link)


def snapshot_id(path: Path) -> str:
    return json.loads((path / "snapshot.json").read_text())["id"]


@pytest.fixture()
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "tree"
    shutil.copytree(SCENARIO / "docker", root / "docker")
    return root


@pytest.fixture(scope="module")
def two_nights(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[str]]:
    """A history of two snapshots a day apart (clock fixed), a tag removed in between."""
    root = tmp_path_factory.mktemp("nights")
    tree = root / "tree"
    shutil.copytree(SCENARIO / "docker", tree / "docker")
    directory = root / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-01T03:15:00+00:00"))
    shutil.rmtree(tree / "docker/registry/v2/repositories/base/alpine/_manifests/tags/3.19")
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-02T03:15:00+00:00"))
    return directory, ["20261201T031500Z", "20261202T031500Z"]


# --- naming and latest ------------------------------------------------------------------------


def test_same_second_reruns_get_suffixes_and_latest_follows(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    clock = "2026-12-07T03:15:00.250000+00:00"
    for expected in ("20261207T031500Z", "20261207T031500Z-1", "20261207T031500Z-2"):
        done = ok(regstat("crawl", tree, "--into", directory, "--quiet", clock=clock))
        assert done.stderr == ""  # --quiet: nothing on success
        assert latest_name(directory) == expected
        Snapshot.open(directory / expected)
    assert names(directory) == ["20261207T031500Z", "20261207T031500Z-1", "20261207T031500Z-2", "latest"]
    assert [e.name for e in history.snapshots(directory)] == names(directory)[:3]
    assert history.resolve(str(directory)) == directory / "20261207T031500Z-2"
    assert history.resolve(f"{directory}@-2") == directory / "20261207T031500Z"


def test_new_path_skips_names_taken_by_snapshots_and_unfinished_crawls(tmp_path: Path) -> None:
    now = datetime(2026, 12, 7, 3, 15, 0, tzinfo=UTC)
    (tmp_path / "20261207T031500Z").mkdir()
    (tmp_path / f".20261207T031500Z-1{PARTIAL_MARK}4242").mkdir()  # a crawl still writing -1
    assert history.new_path(tmp_path, now) == tmp_path / "20261207T031500Z-2"
    assert history.new_path(tmp_path, now + timedelta(seconds=1)) == tmp_path / "20261207T031501Z"
    later = datetime(2026, 12, 7, 5, 0, 0, tzinfo=timezone(timedelta(hours=1)))  # named in UTC
    assert history.new_path(tmp_path, later).name == "20261207T040000Z"


def test_latest_moves_only_when_a_snapshot_is_published(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-01T00:00:00+00:00"))
    first = latest_name(directory)
    # A crawl that cannot read its SOURCE publishes nothing: latest stays.
    ok(regstat("crawl", tmp_path / "missing", "--into", directory), EXIT_SOURCE)
    assert latest_name(directory) == first and names(directory) == [first, "latest"]
    # A crawl killed part-way publishes nothing: latest stays; only a hidden directory is left.
    killed = regstat("crawl", tree, "--into", directory, clock="2026-12-02T00:00:00+00:00", kill=2)
    assert killed.returncode == KILLED, killed.stderr
    assert latest_name(directory) == first
    assert [p.name for p in history.snapshots(directory)] == [first]
    # A snapshot with errors is published, as every crawl publishes it: latest moves.
    (tree / "docker/registry/v2/repositories/apps/web/_manifests/tags/latest/current/link").write_text("damaged")
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-03T00:00:00+00:00"), EXIT_INCOMPLETE)
    assert latest_name(directory) == "20261203T000000Z"
    assert Snapshot.open(directory / "latest").info.errors


def test_resume_into_continues_the_interrupted_crawl(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-01T00:00:00+00:00"))
    killed = regstat("crawl", tree, "--into", directory, "--json", clock="2026-12-02T00:00:00+00:00", kill=3)
    assert killed.returncode == KILLED, killed.stderr
    partial = [p for p in directory.iterdir() if PARTIAL_MARK in p.name]
    assert [p.name.split(PARTIAL_MARK)[0] for p in partial] == [".20261202T000000Z"]
    # A new night's crawl leaves the interrupted one alone, and retention never removes it.
    ok(regstat("crawl", tree, "--into", directory, "--retain", "1", clock="2026-12-03T00:00:00+00:00"))
    assert partial[0].is_dir()
    assert latest_name(directory) == "20261203T000000Z"
    # The resumed crawl writes the directory the interrupted one was writing.
    done = ok(regstat("crawl", tree, "--into", directory, "--resume", "--json"))
    work = json.loads(done.stdout)
    assert work["path"] == str(directory / "20261202T000000Z")
    assert work["work"]["resumed"] and work["work"]["jobs_reused"] >= 1
    assert latest_name(directory) == "20261202T000000Z"
    assert not any(PARTIAL_MARK in p.name for p in directory.iterdir())
    # Nothing left to resume: exit 5, one line.
    again = regstat("crawl", tree, "--into", directory, "--resume")
    assert again.returncode == EXIT_SNAPSHOT and "nothing to resume" in again.stderr


# --- retention ------------------------------------------------------------------------------------


def _plant(directory: Path, snapshot: Path, *names_: str) -> None:
    """Copies of a real snapshot under the given history names, each with an id of its own."""
    for name in names_:
        shutil.copytree(snapshot, directory / name, symlinks=True)
        metadata = json.loads((directory / name / "snapshot.json").read_text())
        metadata["id"] = f"{name}-planted"
        (directory / name / "snapshot.json").write_text(json.dumps(metadata))


def _strangers(directory: Path) -> list[Path]:
    """Things in a history that retention must never remove, named like old snapshots."""
    not_ours = directory / "20200101T000000Z"  # a directory without regstat's snapshot.json
    not_ours.mkdir()
    (not_ours / "notes.txt").write_text("mine")
    a_file = directory / "20200101T000001Z"
    a_file.write_text("a file")
    partial = directory / f".20200101T000002Z{PARTIAL_MARK}999999999"  # an interrupted crawl's
    partial.mkdir()
    (partial / "snapshot.json").write_text("{}")
    return [not_ours, a_file, partial]


def test_into_reuses_the_latest_snapshot_unless_told_otherwise(tree: Path, tmp_path: Path) -> None:
    """--into without --previous reuses what the history's latest parsed: the second night
    reads no manifest; a resumed crawl keeps the previous the interrupted one had, though a
    night published since moved latest (test_resume_into_continues_the_interrupted_crawl)."""
    directory = tmp_path / "history"
    first = json.loads(ok(regstat("crawl", tree, "--into", directory, "--json")).stdout)
    second = json.loads(ok(regstat("crawl", tree, "--into", directory, "--json")).stdout)
    assert first["manifests_reused"] == 0 and first["manifests_read"] > 0
    assert second["manifests_read"] == 0 and second["manifests_reused"] == first["manifests_read"]
    for table in ("manifests", "descriptors"):
        assert _rows(Path(first["path"]), table) == _rows(Path(second["path"]), table), table


def test_into_an_oci_layout_history_is_quiet_night_after_night(tmp_path: Path) -> None:
    """The history's latest is reused (every source reuses one) without a word on stderr (cron
    mails whatever reaches it)."""
    layout = tmp_path / "layout"
    (layout / "blobs" / "sha256").mkdir(parents=True)
    (layout / "oci-layout").write_text('{"imageLayoutVersion": "1.0.0"}')
    (layout / "index.json").write_text('{"schemaVersion": 2, "manifests": []}')
    directory = tmp_path / "history"
    nights = [ok(regstat("crawl", f"oci:{layout}", "--into", directory, "--quiet")) for _ in range(2)]
    assert [night.stderr for night in nights] == ["", ""]


def _rows(snapshot: Path, table: str) -> list[tuple]:
    con = analysis.connect(Snapshot.open(snapshot))
    try:
        return sorted(con.execute(f"SELECT * FROM {table}").fetchall(), key=repr)
    finally:
        con.close()


def test_retain_by_count_keeps_the_newest_and_never_what_is_not_a_snapshot(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2026-12-01T00:00:00+00:00"))
    seed = directory / "20261201T000000Z"
    _plant(directory, seed, "20201201T000000Z", "20211201T000000Z", "20221201T000000Z")
    stray = directory / "20191201T000000Z"  # a snapshot someone added a file to
    _plant(directory, seed, stray.name)
    (stray / "README").write_text("mine")
    strangers = _strangers(directory)
    # Summaries of the old snapshots, as report --history keeps them.
    ok(regstat("report", directory, "--history", "-f", "json"))
    summaries = directory / ".regstat" / "summaries"
    assert len(list(summaries.iterdir())) == 5
    done = ok(regstat("crawl", tree, "--into", directory, "--retain", "2", clock="2026-12-05T00:00:00+00:00"))
    assert "removed 3 older snapshots" in done.stderr
    assert names(directory) == sorted(["20191201T000000Z", "20200101T000000Z", "20200101T000001Z",
                                       "20261201T000000Z", "20261205T000000Z", "latest"])
    assert all(os.path.lexists(p) for p in strangers) and (stray / "README").exists()
    assert latest_name(directory) == "20261205T000000Z"
    # The removed snapshots' summaries went with them; the seed's (kept: the 2 newest) and the
    # stray one's stay, until a retention removes the seed.
    assert sorted(p.name.split("@")[0] for p in summaries.iterdir()) == sorted([
        snapshot_id(seed), "20191201T000000Z-planted"])
    ok(regstat("crawl", tree, "--into", directory, "--retain", "1", clock="2026-12-06T00:00:00+00:00"))
    assert not seed.exists()
    assert [p.name.split("@")[0] for p in summaries.iterdir()] == ["20191201T000000Z-planted"]
    assert all(os.path.lexists(p) for p in strangers)


def test_retain_by_age_never_removes_the_new_snapshot(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    ok(regstat("crawl", tree, "--into", directory, clock="2020-06-01T00:00:00+00:00"))
    seed = directory / "20200601T000000Z"
    recent = (datetime.now(UTC) - timedelta(hours=1)).strftime(history.TIME_FORMAT)
    _plant(directory, seed, "20200501T000000Z", recent)
    strangers = _strangers(directory)
    # The new snapshot is named by a fixed time long past: older than --retain, and kept.
    ok(regstat("crawl", tree, "--into", directory, "--retain", "2d", clock="2019-01-01T00:00:00+00:00"))
    assert names(directory) == sorted(["20190101T000000Z", "20200101T000000Z", "20200101T000001Z", recent, "latest"])
    assert all(os.path.lexists(p) for p in strangers)
    assert latest_name(directory) == "20190101T000000Z"


def test_retention_parses_counts_and_durations() -> None:
    assert Retention.parse("7") == Retention(count=7)
    assert Retention.parse("30d") == Retention(age=timedelta(days=30))
    for bad in ("0", "x", "30 days", "-1"):
        with pytest.raises(ValueError):
            Retention.parse(bad)


# --- selectors in every command --------------------------------------------------------------------


def test_every_command_takes_a_history_and_its_selectors(two_nights: tuple[Path, list[str]], tmp_path: Path) -> None:
    directory, (first, second) = two_nights
    ids = {name: snapshot_id(directory / name) for name in (first, second)}
    for given, name in ((directory, second), (f"{directory}@-1", first), (f"{directory}@0", second),
                        (f"{directory}@2026-12-01", first), (f"{directory}@2026-12-02", second),
                        (f"{directory}@2030-01-01", second), (directory / "latest", second)):
        report = json.loads(ok(regstat("report", given, "-f", "json")).stdout)
        assert report["snapshot"]["id"] == ids[name], given
        plan = json.loads(ok(regstat("plan-gc", given, "--untagged", "-f", "json")).stdout)
        assert plan["snapshot"]["id"] == ids[name], given
    tags = [int(ok(regstat("sql", given, "SELECT count(*) AS n FROM tags", "-f", "csv")).stdout.split()[1])
            for given in (f"{directory}@-1", directory)]
    assert tags[0] == tags[1] + 1  # a tag was removed between the nights
    explained = ok(regstat("explain", f"{directory}@-1", "apps/web:latest"))
    assert "apps/web" in explained.stdout
    ok(regstat("export-db", f"{directory}@2026-12-01", tmp_path / "first.duckdb", "--quiet"))
    assert (tmp_path / "first.duckdb").is_file()
    diff = json.loads(ok(regstat("diff", f"{directory}@-1", directory, "-f", "json")).stdout)
    assert (diff["old"]["id"], diff["new"]["id"]) == (ids[first], ids[second])


@pytest.mark.parametrize("command", [
    ["report"], ["plan-gc", "--untagged"], ["sql", "SELECT 1"], ["explain", "apps/web:latest"],
    ["export-db", "{tmp}/out.duckdb"], ["diff", "{tmp}"],
])
def test_a_selector_naming_nothing_is_a_one_line_usage_error(two_nights: tuple[Path, list[str]],
                                                             command: list[str], tmp_path: Path) -> None:
    directory, _ = two_nights
    command = [arg.replace("{tmp}", str(tmp_path)) for arg in command]
    for selector, words in (("@-2", ("1 snapshot before its latest",)), ("@2026-11-30", ("on or before 2026-11-30",)),
                            ("@yesterday", ("not a selector",)), ("@2026-02-30", ("not a date",))):
        usage_error(regstat(command[0], f"{directory}{selector}", *command[1:]), f"{directory}{selector}", *words)
    empty = tmp_path / "empty"
    (empty / ".regstat").mkdir(parents=True)
    usage_error(regstat(command[0], empty, *command[1:]), "holding no snapshot")


def test_resolve_leaves_snapshots_and_other_paths_alone(two_nights: tuple[Path, list[str]], tmp_path: Path) -> None:
    directory, (first, _) = two_nights
    assert history.resolve(str(directory / first)) == directory / first
    odd = tmp_path / "odd@-1"  # a real directory with @ in its name is itself
    odd.mkdir()
    assert history.resolve(str(odd)) == odd
    assert history.resolve(str(tmp_path / "nothing@-1")) == tmp_path / "nothing@-1"
    with pytest.raises(SelectorError):
        history.resolve(f"{directory}@-9")


def test_into_usage_errors(tree: Path, tmp_path: Path) -> None:
    directory = tmp_path / "history"
    for args, words in (
        (["--into", directory, "--output", tmp_path / "snap"], "mutually exclusive"),
        (["--retain", "3", "--output", tmp_path / "snap"], "--retain needs --into"),
        (["--into", directory, "--retain", "0"], "--retain"),
        (["--into", directory, "--retain", "soon"], "--retain"),
        (["--into", directory, "--force"], "--force"),
        ([], "--output"),
    ):
        done = regstat("crawl", tree, *args)
        assert done.returncode == EXIT_USAGE and words in done.stderr, (args, done.stderr)
    assert not directory.exists()
    ok(regstat("crawl", tree, "--output", tmp_path / "snap"))
    refused = regstat("crawl", tree, "--into", tmp_path / "snap")  # a snapshot is no history
    assert refused.returncode == EXIT_SNAPSHOT and "not a history" in refused.stderr
