"""Ctrl-C stops an analysis command while DuckDB runs a long statement (regstat.cli.edge.interruptible).

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

import pytest
from click.testing import CliRunner

from regstat import interrupts
from regstat.cli import main
from regstat.crawl import CrawlOptions, crawl
from regstat.errors import EXIT_INTERRUPTED, EXIT_OK

REPO_ROOT = Path(__file__).resolve().parent.parent
SCENARIO_TREE = REPO_ROOT / "tests" / "scenario_tree"
# About 10^14 rows of cross join: far longer than the test waits.
ENDLESS = "SELECT sum(a.range * b.range) FROM range(100000000) AS a, range(1000000) AS b"


def _default_sigint() -> None:
    # A child of a shell job may inherit SIGINT ignored; a user's terminal delivers it.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _wait_inside_the_statement(process: subprocess.Popen) -> None:
    """Until DuckDB computes the endless statement: the command's threads have started (the
    main one, the command's worker, DuckDB's), then the process burned a CPU second more.
    Not a fixed sleep: start-up takes seconds more on a loaded machine, and a SIGINT during
    the imports tests nothing of the statement."""
    deadline = time.monotonic() + 120
    while len(os.listdir(f"/proc/{process.pid}/task")) < 3:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)
    started = _cpu_seconds(process.pid)
    while _cpu_seconds(process.pid) < started + 1:
        assert process.poll() is None and time.monotonic() < deadline, process.communicate()
        time.sleep(0.05)


def test_sigint_stops_a_long_query(tmp_path: Path) -> None:
    snapshot = tmp_path / "snap"
    result = CliRunner().invoke(main, ["crawl", str(SCENARIO_TREE), "--output", str(snapshot)])
    assert result.exit_code == EXIT_OK, result.output
    spill = tmp_path / "tmp"
    spill.mkdir()
    process = subprocess.Popen(
        [sys.executable, "-m", "regstat", "sql", str(snapshot), ENDLESS],
        cwd=REPO_ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        preexec_fn=_default_sigint, env={**os.environ, "TMPDIR": str(spill)},
    )
    try:
        _wait_inside_the_statement(process)
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=60)
    finally:
        process.kill()
    assert process.returncode == EXIT_INTERRUPTED, stderr
    assert "interrupted" in stderr
    assert list(spill.iterdir()) == []  # no spill directory left behind


def test_deferred_signals_are_raised_only_by_check() -> None:
    """Under interrupts.deferred a signal is recorded, not raised where it lands (inside a
    pool's bookkeeping, say); `check` raises it, and the handlers are restored after."""
    before = {number: signal.getsignal(number) for number in interrupts.SIGNALS}
    with interrupts.deferred():
        interrupts.check()  # nothing recorded: a no-op
        os.kill(os.getpid(), signal.SIGTERM)
        time.sleep(0.01)  # the handler runs between bytecodes, here
        assert interrupts.received() == "SIGTERM"
        with pytest.raises(interrupts.Interrupted, match="SIGTERM") as raised:
            interrupts.check()
        assert isinstance(raised.value, KeyboardInterrupt)  # what the crawl's callers catch
    assert {number: signal.getsignal(number) for number in interrupts.SIGNALS} == before
    assert interrupts.received() is None
    interrupts.check()


def test_a_crawl_asked_to_stop_stops_before_publishing(tmp_path: Path) -> None:
    """A signal recorded at any point of a crawl stops it before its snapshot is published:
    here it arrives before the first job, so the crawl must check while it runs."""
    out = tmp_path / "snap"
    with interrupts.deferred(), pytest.raises(interrupts.Interrupted):
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(0.01)
        crawl(str(SCENARIO_TREE), str(out), CrawlOptions())
    assert not out.exists() and not list(tmp_path.iterdir())
