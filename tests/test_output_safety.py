"""Writing never destroys what regstat did not write (DESIGN safety rule 8).

`crawl --force` replaces only a regstat snapshot or an empty directory; no command writes
inside a snapshot or a local SOURCE. Every refusal exits 5 and leaves the whole working
directory as it was: each test hashes the tree (files, directories, links, modes, times)
before and after, so a hidden directory left beside DIR counts as a change too.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_SNAPSHOT, OutputRefusedError
from regstat.crawl.publish import PendingSnapshot
from regstat.snapshot import SCHEMA_VERSION, STORED_TABLES, Snapshot, SnapshotInfo

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"


def tree(directory: Path) -> dict[str, str]:
    """Every entry below `directory`: its kind, mode, modification time, and content or target."""
    entries = {}
    for parent, names, files in os.walk(directory):
        for name in names + files:
            path = Path(parent, name)
            st = path.lstat()
            if path.is_symlink():
                what = "link " + os.readlink(path)
            elif path.is_dir():
                what = "dir"
            else:
                what = hashlib.sha256(path.read_bytes()).hexdigest()
            entries[str(path.relative_to(directory))] = f"{st.st_mode:o} {st.st_mtime_ns} {what}"
    return entries


def regstat(*args: str | Path) -> Result:
    return CliRunner().invoke(main, [str(a) for a in args])


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """A copy of tests/scenario_tree (a registry's storage root): the tests point DIR at it."""
    root = tmp_path / "registry"
    subprocess.run(["cp", "-a", str(SAMPLE), str(root)], check=True)
    return root


@pytest.fixture
def snap(tmp_path: Path, storage: Path) -> Path:
    out = tmp_path / "snap"
    result = regstat("crawl", storage, "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    return out


def oci_layout(directory: Path) -> Path:
    """An empty but valid OCI image layout."""
    (directory / "blobs" / "sha256").mkdir(parents=True)
    (directory / "oci-layout").write_text(json.dumps({"imageLayoutVersion": "1.0.0"}))
    (directory / "index.json").write_text(json.dumps({"schemaVersion": 2, "manifests": []}))
    return directory


def assert_refused(tmp_path: Path, args: list[str | Path], why: str) -> None:
    before = tree(tmp_path)
    result = regstat(*args)
    assert result.exit_code == EXIT_SNAPSHOT, result.output
    assert why in result.stderr and "Traceback" not in result.stderr, result.stderr
    assert tree(tmp_path) == before


# --- crawl: what --force may replace ---------------------------------------------------------------


def test_the_storage_root_itself_is_never_replaced(tmp_path: Path, storage: Path) -> None:
    assert_refused(tmp_path, ["crawl", storage, "-o", storage, "--force"], "is the SOURCE")
    assert_refused(tmp_path, ["crawl", f"file://{storage}", "-o", storage, "--force"], "is the SOURCE")
    assert_refused(tmp_path, ["crawl", storage, "-o", storage / "docker" / "..", "--force"], "is the SOURCE")
    (tmp_path / "link").symlink_to(storage)  # the same directory by another path
    assert_refused(tmp_path, ["crawl", tmp_path / "link", "-o", storage, "--force"], "is the SOURCE")
    assert_refused(tmp_path, ["crawl", storage, "-o", tmp_path / "link" / ".", "--force"], "is the SOURCE")


def test_a_storage_root_is_not_a_snapshot_whatever_the_source(tmp_path: Path, storage: Path) -> None:
    other = tmp_path / "other"
    subprocess.run(["cp", "-a", str(SAMPLE), str(other)], check=True)
    assert_refused(tmp_path, ["crawl", other, "-o", storage, "--force"], "is not a regstat snapshot")


def test_nothing_is_written_inside_the_source(tmp_path: Path, storage: Path) -> None:
    for force in ([], ["--force"]):
        assert_refused(tmp_path, ["crawl", storage, "-o", storage / "snap", *force], "lies inside the SOURCE")
        assert_refused(tmp_path, ["crawl", storage, "-o", storage / "docker", *force], "lies inside the SOURCE")
        assert_refused(tmp_path, ["crawl", storage, "-o", storage / "new" / "snap", *force], "lies inside the SOURCE")
    # --resume too, before it looks for an interrupted crawl there
    assert_refused(tmp_path, ["crawl", storage, "-o", storage / "snap", "--resume"], "lies inside the SOURCE")


def test_a_directory_holding_the_source_is_never_replaced(tmp_path: Path) -> None:
    outer = tmp_path / "outer"
    outer.mkdir()
    subprocess.run(["cp", "-a", str(SAMPLE), str(outer / "registry")], check=True)
    assert_refused(tmp_path, ["crawl", outer / "registry", "-o", outer, "--force"], "holds the SOURCE")


def test_oci_layouts_are_sources_too(tmp_path: Path) -> None:
    layout = oci_layout(tmp_path / "layout")
    assert_refused(tmp_path, ["crawl", f"oci:{layout}", "-o", layout, "--force"], "is the SOURCE")
    assert_refused(tmp_path, ["crawl", f"oci:{layout}", "-o", layout / "snap"], "lies inside the SOURCE")
    assert_refused(tmp_path, ["crawl", f"oci:{layout / 'blobs'}/..", "-o", tmp_path, "--force"], "holds the SOURCE")


def test_force_refuses_what_is_not_a_snapshot(tmp_path: Path, storage: Path) -> None:
    unrelated = tmp_path / "photos"
    (unrelated / "2024").mkdir(parents=True)
    (unrelated / "2024" / "beach.jpg").write_bytes(b"\xff\xd8 not really")
    # Refused before the crawl starts: even what a dead crawl to DIR left beside it stays.
    dead = subprocess.run(["sh", "-c", "echo $$"], capture_output=True, text=True, check=True).stdout.strip()
    (tmp_path / f".photos.regstat-partial-{dead}").mkdir()
    assert_refused(tmp_path, ["crawl", storage, "-o", unrelated, "--force"], "is not a regstat snapshot")
    plain = tmp_path / "notes.txt"
    plain.write_text("keep me\n")
    assert_refused(tmp_path, ["crawl", storage, "-o", plain, "--force"], "is a file, not a regstat snapshot")
    lookalike = tmp_path / "lookalike"
    lookalike.mkdir()
    (lookalike / "snapshot.json").write_text(json.dumps({"format": "something else"}))
    assert_refused(tmp_path, ["crawl", storage, "-o", lookalike, "--force"], "is not a regstat snapshot")


def test_force_refuses_a_snapshot_holding_what_regstat_did_not_write(tmp_path: Path, storage: Path, snap: Path) -> None:
    (snap / "report.html").write_text("<p>written by hand</p>")
    assert_refused(tmp_path, ["crawl", storage, "-o", snap, "--force"], "holds report.html")
    (snap / "report.html").unlink()
    (snap / "tags" / "notes.txt").write_text("mine")
    assert_refused(tmp_path, ["crawl", storage, "-o", snap, "--force"], "holds tags/notes.txt")


def test_force_refuses_a_symbolic_link_even_to_a_snapshot(tmp_path: Path, storage: Path, snap: Path) -> None:
    (tmp_path / "latest").symlink_to(snap)
    assert_refused(tmp_path, ["crawl", storage, "-o", tmp_path / "latest", "--force"], "is a symbolic link")


def test_nothing_is_written_inside_a_snapshot(tmp_path: Path, storage: Path, snap: Path) -> None:
    for force in ([], ["--force"]):
        assert_refused(tmp_path, ["crawl", storage, "-o", snap / "again", *force], "inside the snapshot")


def test_force_replaces_a_snapshot(tmp_path: Path, storage: Path) -> None:
    out = tmp_path / "snap"
    assert regstat("crawl", storage, "-o", out, "--repository", "apps/*").exit_code == EXIT_OK
    assert Snapshot.open(out).info.partial is True
    result = regstat("crawl", storage, "-o", out, "--force")
    assert result.exit_code == EXIT_OK, result.stderr
    assert Snapshot.open(out).info.partial is False
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry", "snap"]  # nothing left beside it


def test_force_replaces_an_empty_directory(tmp_path: Path, storage: Path) -> None:
    out = tmp_path / "empty"
    out.mkdir()
    result = regstat("crawl", storage, "-o", out, "--force")
    assert result.exit_code == EXIT_OK, result.stderr
    assert Snapshot.open(out).info.complete


def test_publishing_checks_again_what_it_replaces(tmp_path: Path) -> None:
    """What --force replaces is checked as the crawl begins, and again when it is replaced:
    a file put into the empty directory while the crawl ran is not deleted."""
    out = tmp_path / "out"
    out.mkdir()
    pending = PendingSnapshot(out, force=True)
    for name in STORED_TABLES:
        pending.table(name).close()
    (out / "arrived meanwhile").write_text("keep me")
    with pytest.raises(OutputRefusedError, match="is not a regstat snapshot"):
        pending.publish(SnapshotInfo(schema_version=SCHEMA_VERSION))
    assert (out / "arrived meanwhile").read_text() == "keep me"
    pending.discard()


# --- files written from a snapshot ------------------------------------------------------------------


def test_report_is_never_written_inside_a_snapshot(tmp_path: Path, storage: Path, snap: Path) -> None:
    assert_refused(tmp_path, ["report", snap, "-o", snap / "report.html", "-f", "html"], "inside the snapshot")
    assert_refused(tmp_path, ["report", snap, "-o", snap / "tags" / "report.txt"], "inside the snapshot")
    other = tmp_path / "other"
    assert regstat("crawl", storage, "-o", other).exit_code == EXIT_OK
    assert_refused(tmp_path, ["report", snap, "-o", other / "report.txt"], "inside the snapshot")
    (tmp_path / "into").symlink_to(snap)
    assert_refused(tmp_path, ["report", snap, "-o", tmp_path / "into" / "report.txt"], "inside the snapshot")


def test_report_is_never_written_inside_the_local_source(tmp_path: Path, storage: Path, snap: Path) -> None:
    assert_refused(tmp_path, ["report", snap, "-o", storage / "report.txt"], "the SOURCE the snapshot was crawled from")


def test_report_replaces_an_existing_file(tmp_path: Path, snap: Path) -> None:
    out = tmp_path / "report.html"
    out.write_text("yesterday's report")
    result = regstat("report", snap, "-f", "html", "-o", out)
    assert result.exit_code == EXIT_OK, result.stderr
    assert out.read_text().startswith("<!DOCTYPE html>")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["registry", "report.html", "snap"]


def test_a_device_or_a_pipe_is_written_in_place_never_replaced(tmp_path: Path, snap: Path) -> None:
    """`-o /dev/null` once renamed a regular file over the system's /dev/null (a test ran as
    root). A named pipe stands in for a device here: it must stay a pipe, and get the report."""
    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    received: list[bytes] = []
    reader = threading.Thread(target=lambda: received.append(pipe.read_bytes()), daemon=True)
    reader.start()
    result = regstat("report", snap, "-f", "json", "-o", pipe)
    assert result.exit_code == EXIT_OK, result.stderr
    assert stat.S_ISFIFO(pipe.lstat().st_mode)
    reader.join(60)
    assert json.loads(received[0])["snapshot"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["pipe", "registry", "snap"]


def test_a_symbolic_link_stays_and_the_file_it_names_is_replaced(tmp_path: Path, snap: Path) -> None:
    published = tmp_path / "www" / "report.html"
    published.parent.mkdir()
    published.write_text("yesterday's report")
    link = tmp_path / "report.html"
    link.symlink_to(published)
    result = regstat("report", snap, "-f", "html", "-o", link)
    assert result.exit_code == EXIT_OK, result.stderr
    assert link.is_symlink() and published.read_text().startswith("<!DOCTYPE html>")
    assert [p.name for p in published.parent.iterdir()] == ["report.html"]


def test_a_directory_is_not_a_file_to_replace(tmp_path: Path, snap: Path) -> None:
    folder = tmp_path / "reports"
    (folder / "old").mkdir(parents=True)
    assert_refused(tmp_path, ["report", snap, "-o", folder], "is a directory")
    assert_refused(tmp_path, ["export-db", snap, folder, "--force"], "is a directory")


def test_plan_gc_sql_and_export_db_keep_out_of_snapshots_and_the_source(
    tmp_path: Path, storage: Path, snap: Path
) -> None:
    other = tmp_path / "other"
    assert regstat("crawl", storage, "-o", other).exit_code == EXIT_OK
    for where, why in ((other, "inside the snapshot"), (storage, "the SOURCE the snapshot was crawled from")):
        assert_refused(tmp_path, ["plan-gc", snap, "--untagged", "-o", where / "plan.json"], why)
        assert_refused(tmp_path, ["sql", snap, "SELECT 1", "-o", where / "result.csv", "-f", "csv"], why)
        assert_refused(tmp_path, ["export-db", snap, where / "snap.duckdb", "--force"], why)


def test_a_bind_mount_of_the_source_is_the_source(tmp_path: Path, storage: Path) -> None:
    """Paths are compared by inode as well: through the storage root mounted a second time
    elsewhere (in a mount namespace of its own: no privileges needed), DIR is still inside it."""
    alias = tmp_path / "alias"
    alias.mkdir()
    before = tree(tmp_path)
    mount = 'mount --bind "$1" "$2"'
    try:
        probe = subprocess.run(["unshare", "-rm", "sh", "-c", mount, "sh", storage, alias],
                               capture_output=True, timeout=60)
    except FileNotFoundError:
        pytest.skip("no unshare")
    if probe.returncode != 0:
        pytest.skip(f"no mount namespace here: {probe.stderr.decode(errors='replace').strip()}")
    script = f'{mount} && exec "$3" -m regstat crawl "$1" -o "$2/snap"'
    argv = ["unshare", "-rm", "sh", "-c", script, "sh", str(storage), str(alias), sys.executable]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert result.returncode == EXIT_SNAPSHOT and "lies inside the SOURCE" in result.stderr, result.stderr
    assert tree(tmp_path) == before
