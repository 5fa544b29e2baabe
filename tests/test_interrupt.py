"""Ctrl-C stops an analysis command while DuckDB runs a long statement (regstat.cli._interruptible).

DuckDB runs a statement in C without the GIL, and Python handles SIGINT only in the main
thread between bytecodes: without the worker thread, the query below would run for hours.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_INTERRUPTED, EXIT_OK

REPO_ROOT = Path(__file__).resolve().parent.parent
# About 10^14 rows of cross join: far longer than the test waits.
ENDLESS = "SELECT sum(a.range * b.range) FROM range(100000000) AS a, range(1000000) AS b"


def _default_sigint() -> None:
    # A child of a shell job may inherit SIGINT ignored; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def test_sigint_stops_a_long_query(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    result = CliRunner().invoke(main, ["crawl", str(REPO_ROOT / "sample_data"), "--output", str(snapshot)])
    assert result.exit_code == EXIT_OK, result.output
    spill = tmp_path / "tmp"
    spill.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "regstat", "sql", str(snapshot), ENDLESS],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint, env={**os.environ, "TMPDIR": str(spill)},
    )
    try:
        time.sleep(3)  # past start-up, inside the statement
        assert process.poll() is None, process.communicate()
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted" in stderr
    assert list(spill.iterdir()) == []  # no spill directory left behind
