"""The README's nightly job (issue 19), run as cron would run it, twice.

The crontab line is read from README.md (the block after the `nightly-cron` marker), its
paths moved into a temporary directory, and run by /bin/sh with the test's regstat first on
PATH, on a `cp -a` copy of sample_data/ dated as scripts/restore_sample_ages.py dates it. A
tag is removed between the two nights. Then: the history holds two snapshots, `latest` points
at the newer, the Prometheus textfile parses and says what the second crawl saw, and the diff
says the tag went.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from regstat.errors import EXIT_OK, EXIT_USAGE
from regstat.snapshot import history

REPO_ROOT = Path(__file__).resolve().parent.parent
MARKER = "<!-- nightly-cron: tests/test_nightly.py runs this line -->"
PATHS = {  # as README.md writes them -> under the test's directory
    "/var/lib/registry": "registry",
    "/srv/regstat": "srv",
    "/var/lib/prometheus/node-exporter": "textfile",
}
REMOVED_TAG = "docker/registry/v2/repositories/apps/web/_manifests/tags/v1.0.0"


def cron_line() -> str:
    readme = (REPO_ROOT / "README.md").read_text()
    block = readme.split(MARKER, 1)[1]
    match = re.search(r"```crontab\n(.*?)\n```", block, re.S)
    assert match, "README.md: no crontab block after the nightly-cron marker"
    line = match.group(1).strip()
    assert "\n" not in line, "the nightly job is one crontab line"
    return line


def command_of(line: str, root: Path) -> str:
    """The command of a crontab line (its five time fields dropped), paths under `root`."""
    fields = line.split(None, 5)
    assert len(fields) == 6 and all(re.fullmatch(r"[\d*/,-]+", f) for f in fields[:5]), line
    command = fields[5]
    assert "%" not in command  # cron would turn it into a line break
    for path, under in PATHS.items():
        assert path in command, path
        command = command.replace(path, str(root / under))
    return command


def night(command: str) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}
    return subprocess.run(["/bin/sh", "-c", command], capture_output=True, text=True, env=env, timeout=600)


def test_the_readme_nightly_job_runs_twice(tmp_path: Path) -> None:
    tree = tmp_path / "registry"
    subprocess.run(["cp", "-a", str(REPO_ROOT / "sample_data"), str(tree)], check=True)
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts/restore_sample_ages.py"), str(tree)], check=True,
                   capture_output=True)
    assert (tree / REMOVED_TAG).is_dir()
    (tmp_path / "textfile").mkdir()
    command = command_of(cron_line(), tmp_path)
    directory = tmp_path / "srv" / "history"

    first = night(command)
    # The first night has no night before: only the diff's one line says so.
    assert first.returncode == EXIT_USAGE, first.stderr
    assert first.stdout == ""
    assert first.stderr.strip().splitlines() == [
        f"regstat: error: {directory}@-1: the history holds 0 snapshots before its latest "
        f"({history.latest(directory).name}), not 1"]  # type: ignore[union-attr]
    assert (tmp_path / "srv" / "report.html").is_file() and (tmp_path / "textfile" / "regstat.prom").is_file()

    shutil.rmtree(tree / REMOVED_TAG)
    second = night(command)
    assert (second.returncode, second.stdout, second.stderr) == (EXIT_OK, "", "")  # cron mails nothing

    snapshots = history.snapshots(directory)
    assert len(snapshots) == 2
    assert os.readlink(directory / "latest") == snapshots[-1].name
    metrics = {f.name: f.samples for f in text_string_to_metric_families(
        (tmp_path / "textfile" / "regstat.prom").read_text())}
    newer = json.loads((snapshots[-1].path / "snapshot.json").read_text())
    assert metrics["regstat_snapshot_info"][0].labels["id"] == newer["id"]
    assert metrics["regstat_crawl_errors"][0].value == 0
    assert metrics["regstat_tags"][0].value == 159  # sample_data's 160, less the one removed
    changes = (tmp_path / "srv" / "changes.md").read_text()
    assert "tags: 0 added, 1 removed, 0 moved" in changes
    assert "apps/web" in changes and "v1.0.0" in changes
