"""Running the CLI in a child process for the history tests (issue 19): the time a new
snapshot of a history is named by can be fixed, and the crawl can SIGKILL itself after N job
results, so same-second re-runs and interrupted crawls happen exactly where a test wants them,
whatever the machine's speed (no signal from outside, no timing)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from regstat.errors import EXIT_OK

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
SCENARIO = REPO_ROOT / "tests" / "scenario_tree"
KILLED = -9  # the return code of a process SIGKILLed

# Runs the CLI; `clock` (an ISO time or "-") fixes the time the history names the crawl by;
# `kill` > 0 SIGKILLs the process after that many job results (the journal has them: the
# tests checkpoint after every batch).
_CHILD = """
import os, signal, sys
from datetime import datetime
import regstat.crawl.driver as driver
import regstat.snapshot.history as history
clock, kill = sys.argv[1], int(sys.argv[2])
if clock != "-":  # the time the new snapshot is named by (retention still measures from now)
    named = history.new_path
    history.new_path = lambda directory, now: named(directory, datetime.fromisoformat(clock))
if kill:
    seen = [0]
    original = driver.Crawl._record
    def record(*args, **kwargs):
        value = original(*args, **kwargs)
        seen[0] += 1
        if seen[0] == kill:
            os.kill(os.getpid(), signal.SIGKILL)
        return value
    driver.Crawl._record = record
from regstat.cli import main
main(sys.argv[3:], prog_name="regstat")
"""


def regstat(*args: str | Path, clock: str = "-", kill: int = 0) -> subprocess.CompletedProcess[str]:
    """`regstat ARGS` in a child; `clock` (ISO 8601) names a new snapshot of a history."""
    env = {**os.environ, "REGSTAT_CHECKPOINT_SECONDS": "0"}
    argv = [sys.executable, "-c", _CHILD, clock, str(kill), *map(str, args)]
    return subprocess.run(argv, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=300)


def ok(done: subprocess.CompletedProcess[str], code: int = EXIT_OK) -> subprocess.CompletedProcess[str]:
    """`done`, after checking its exit code (the output in the message when it differs)."""
    assert done.returncode == code, (done.returncode, done.stdout, done.stderr)
    return done
