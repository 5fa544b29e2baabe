"""What bench_crawl.py and bench_report.py share.

The code being timed (the working tree, or a commit exported by ``--commit``), the
machine's description, timing a child process with wait4, medians of runs, and
inserting or replacing a section of RESULTS.md.
"""

from __future__ import annotations

import argparse
import hashlib
import os
import re
import platform
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass

HERE = os.path.dirname(os.path.abspath(__file__))
REPO_ROOT = os.path.dirname(HERE)
DEFAULT_WORK = os.path.join(HERE, "work")
DEFAULT_RESULTS = os.path.join(HERE, "RESULTS.md")
# The regstat code being timed: the working tree, or a commit exported by --commit.
CODE: dict[str, str | None] = {"dir": REPO_ROOT, "commit": None}


@dataclass
class Run:
    tool: str
    index: int  # 0 is the warm-up
    wall: float
    user: float
    sys: float
    max_rss_mb: float
    load: float  # 1-minute load average when the run started
    check: str = ""
    failed: str = ""  # why the run did not finish (timeout, error); empty when it did

    @property
    def warmup(self) -> bool:
        return self.index == 0


# -- running -------------------------------------------------------------------------


def sh(args: list[str]) -> str:
    """Output of a small informational command, or a note that it failed."""
    try:
        return subprocess.run(args, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError) as e:
        return f"({' '.join(args)} failed: {e})"


def tail(path: str, lines: int = 15) -> str:
    with open(path, errors="replace") as f:
        return "".join(f.readlines()[-lines:])


def timed(args: list[str], *, stdout: str, stderr: str, cwd: str | None = None,
          env: dict[str, str] | None = None, timeout: float | None = None,
          file_limit: int | None = None) -> tuple[int, float, float, float, float, str]:
    """Run a command; exit code, wall, user and system seconds, max RSS in MB, failure.

    Wall clock around the process, rusage from wait4. With `timeout` the command runs in
    its own session and its process group is killed after `timeout` seconds; with
    `file_limit` no file it writes may exceed that many bytes (RLIMIT_FSIZE; Python ignores
    SIGXFSZ, so DuckDB gets an error instead of filling the disk with spill files). The
    failure is empty when the command finished with exit code 0.
    """
    def limits() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (file_limit, file_limit))

    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        started = time.perf_counter()
        proc = subprocess.Popen(args, stdout=out, stderr=err, cwd=cwd, env=env,
                                preexec_fn=limits if file_limit is not None else None,
                                start_new_session=timeout is not None)
        failure = ""
        if timeout is None:
            _, status, usage = os.wait4(proc.pid, 0)
        else:
            deadline = started + timeout
            while True:
                pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
                if pid:
                    break
                if time.perf_counter() > deadline:
                    os.killpg(proc.pid, signal.SIGKILL)  # the group of the process we started
                    _, status, usage = os.wait4(proc.pid, 0)
                    failure = f"killed after {timeout:.0f} s"
                    break
                time.sleep(0.05)
        wall = time.perf_counter() - started
    proc.returncode = os.waitstatus_to_exitcode(status)
    if not failure and proc.returncode != 0:
        lines = [line for line in tail(stderr, 20).splitlines() if line.strip()]
        # The exception's own line, not the advice DuckDB prints after it.
        errors = [line for line in lines if re.match(r"[\w.]*(Error|Exception)\b", line)]
        failure = f"exit {proc.returncode}: " + ((errors or lines)[-1][:200] if lines else "no message")
    rss_mb = usage.ru_maxrss / 1024  # kilobytes on Linux
    return proc.returncode, wall, usage.ru_utime, usage.ru_stime, rss_mb, failure


def proc_status(pid: int) -> dict[str, int]:
    """VmHWM (peak RSS), VmRSS and PPid of the process `pid` from /proc (kB; Linux), or {} if
    it is gone."""
    values = {}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                key, _, rest = line.partition(":")
                if key in ("VmHWM", "VmRSS", "PPid"):
                    values[key] = int(rest.split()[0])
    except (OSError, ValueError, IndexError):
        return {}
    return values


def load_averages() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def rounds(runs: int, warmup: bool) -> range:
    """Run indexes: 0 is the warm-up (left out without `warmup`), then the counted runs."""
    return range(runs + 1) if warmup else range(1, runs + 1)


def alternate(runs: list[Run], tools: Iterable[str], run_one: Callable[[str, int], Run], *,
              count: int, warmup: bool, width: int, pause: float = 0.0) -> None:
    """Run the tools in turn, round after round (a warm-up first with `warmup`), appending each
    run to `runs` and printing it; `pause` seconds after each. A tool with an unfinished run is
    not run again: one says it, and the timeout is not spent twice."""
    for index in rounds(count, warmup):
        for tool in tools:
            if any(r.tool == tool and r.failed for r in runs):
                continue
            run = run_one(tool, index)
            runs.append(run)
            print_run(run, width)
            time.sleep(pause)


def print_run(run: Run, width: int) -> None:
    label = "warm-up" if run.warmup else f"run {run.index}"
    print(f"  {label:<8} {run.tool:<{width}} {run.wall:8.2f} s wall {run.user:8.2f} s user "
          f"{run.sys:7.2f} s sys {run.max_rss_mb:6.0f} MB  load {run.load:4.1f}  {run.check}",
          flush=True)


def counted(runs: list[Run], tool: str) -> list[Run]:
    """The runs of `tool` that count: no warm-up, none unfinished."""
    return [r for r in runs if r.tool == tool and not r.warmup and not r.failed]


def medians(runs: list[Run], tools: Iterable[str]) -> dict[str, float]:
    result = {}
    for tool in tools:
        walls = [r.wall for r in counted(runs, tool)]
        if walls:
            result[tool] = statistics.median(walls)
    return result


# -- the code being timed ------------------------------------------------------------


def code_env() -> dict[str, str]:
    """Environment that makes `python -m regstat` import the code being timed."""
    env = dict(os.environ)
    old = env.get("PYTHONPATH")
    env["PYTHONPATH"] = str(CODE["dir"]) + (os.pathsep + old if old else "")
    return env


def export_commit(rev: str, work: str) -> None:
    """Time REV's regstat instead of the working tree (which others may be editing)."""
    commit = subprocess.run(["git", "-C", REPO_ROOT, "rev-parse", "--short", rev],
                            capture_output=True, text=True, check=True).stdout.strip()
    target = os.path.join(work, f"regstat-{commit}")
    if not os.path.isdir(target):
        partial = target + ".partial"
        shutil.rmtree(partial, ignore_errors=True)
        os.makedirs(partial)
        archive = subprocess.run(["git", "-C", REPO_ROOT, "archive", commit, "regstat", "sql"],
                                 capture_output=True, check=True).stdout
        subprocess.run(["tar", "-x", "-C", partial], input=archive, check=True)
        # pyproject maps the package regstat.sql to the top-level sql/ directory.
        if os.path.isdir(os.path.join(partial, "sql")) and \
                not os.path.exists(os.path.join(partial, "regstat", "sql")):
            os.symlink(os.path.join("..", "sql"), os.path.join(partial, "regstat", "sql"))
        os.rename(partial, target)
    CODE["dir"], CODE["commit"] = target, commit
    probe = subprocess.run(
        [sys.executable, "-c", "import regstat, importlib.resources as r; "
         "print(regstat.__file__); print(r.files('regstat.sql'))"],
        capture_output=True, text=True, cwd=target, env=code_env(),
    )
    if not probe.stdout.startswith(target):
        raise SystemExit(f"cannot import the exported regstat from {target}:\n"
                         f"{probe.stdout}{probe.stderr}")
    print(f"timing regstat at {commit}, exported to {os.path.relpath(target)}")


def git_commit(paths: tuple[str, ...], changes: str) -> str:
    """The commit being timed; `changes` names `paths` when they have uncommitted changes."""
    if CODE["commit"]:
        return f"{CODE['commit']}, exported with --commit"
    commit = sh(["git", "-C", REPO_ROOT, "rev-parse", "--short", "HEAD"])
    dirty = sh(["git", "-C", REPO_ROOT, "status", "--porcelain", "--", *paths])
    return commit + (f" + uncommitted changes in {changes}" if dirty else "")


def regstat_fingerprint() -> str:
    """Hash of the crawler's source (regstat/ and sql/), to tell which code was timed."""
    h = hashlib.sha256()
    for top in ("regstat", "sql"):
        for dirpath, dirnames, filenames in os.walk(os.path.join(str(CODE["dir"]), top)):
            dirnames[:] = sorted(d for d in dirnames if d != "__pycache__")
            for name in sorted(filenames):
                if name.endswith((".py", ".sql")):
                    path = os.path.join(dirpath, name)
                    h.update(os.path.relpath(path, str(CODE["dir"])).encode() + b"\0")
                    with open(path, "rb") as f:
                        h.update(f.read() + b"\0")
    return h.hexdigest()[:12]


def regstat_version() -> str:
    proc = subprocess.run(
        [sys.executable, "-c", "import regstat; print(regstat.__version__)"],
        capture_output=True, text=True, cwd=CODE["dir"], env=code_env(),
    )
    return proc.stdout.strip() or "unknown"


# -- environment ---------------------------------------------------------------------


def cpu_model() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def memory_total() -> str:
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemTotal:"):
                    return f"{int(line.split()[1]) / 1024**2:.1f} GiB"
    except OSError:
        pass
    return "unknown"


def filesystem_of(path: str) -> str:
    path = os.path.realpath(path)
    best = ("", "unknown", "unknown")
    try:
        with open("/proc/mounts") as f:
            for line in f:
                device, mount, fstype = line.split()[:3]
                if (path == mount or path.startswith(mount.rstrip("/") + "/")) and \
                        len(mount) >= len(best[0]):
                    best = (mount, fstype, device)
    except OSError:
        pass
    return f"{best[1]} on {best[2]} (mounted at {best[0]})"


def environment(host: str, git: str) -> dict[str, str]:
    """The machine and the code being timed; `git` is git_commit()'s description."""
    affinity = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None
    return {
        "date": sh(["date", "-u"]),
        "host": host,
        "uname": sh(["uname", "-a"]),
        "cpu": cpu_model(),
        "cores": f"{os.cpu_count()} logical" + (f", {affinity} usable" if affinity else ""),
        "ram": memory_total(),
        "python": f"{platform.python_version()} ({sys.executable})",
        "regstat": f"{regstat_version()} (git {git}; source sha256 "
                   f"{regstat_fingerprint()})",
    }


# -- RESULTS.md ----------------------------------------------------------------------


def regstat_key(env: dict[str, str]) -> str:
    """The commit timed, for a section key; with the source hash when it was uncommitted."""
    commit = env["regstat"].split("git ", 1)[-1].split()[0].rstrip(";,")
    if "uncommitted" in env["regstat"]:
        commit += "+" + env["regstat"].rsplit("sha256 ", 1)[-1].rstrip(")")
    return commit


def environment_rows(env: dict[str, str], last: tuple[str, str]) -> list[str]:
    """The section's table rows describing the machine, then `last` (label, key)."""
    lines = []
    for label, k in (("date (`date -u`)", "date"), ("machine (`uname -a`)", "uname"),
                     ("CPU", "cpu"), ("cores", "cores"), ("RAM", "ram"),
                     ("python", "python"), ("regstat", "regstat"), last):
        lines.append(f"| {label} | `{env[k]}` |" if k == "uname" else f"| {label} | {env[k]} |")
    return lines


def run_rows(runs: list[Run], med: dict[str, float], tool_column: str) -> list[str]:
    """The section's table of runs, then the medians."""
    lines = [f"| run | {tool_column} | wall s | user s | sys s | max RSS MB | load | output check |",
             "|---|---|---:|---:|---:|---:|---:|---|"]
    for run in runs:
        label = "warm-up" if run.warmup else str(run.index)
        lines.append(f"| {label} | {run.tool} | {run.wall:.2f} | {run.user:.2f} | "
                     f"{run.sys:.2f} | {run.max_rss_mb:.0f} | {run.load:.1f} | {run.check} |")
    for tool, value in med.items():
        lines.append(f"| median | {tool} | **{value:.2f}** | | | | | |")
    return lines


def record(path: str, section: str, *, start_marker: str, end_marker: str, anchor: str,
           new_file: str, new_part: str) -> None:
    """Replace the section that starts with `start_marker`, or insert it below `anchor`.

    A missing file starts as `new_file`; a file without `anchor` gets `new_part` (which
    ends with the anchor) appended.
    """
    text = open(path).read() if os.path.exists(path) else new_file
    if start_marker in text:
        start = text.index(start_marker)
        end = text.index(end_marker, start) + len(end_marker)
        if text[end:end + 1] == "\n":
            end += 1
        text = text[:start] + section + text[end:]
    else:
        if anchor not in text:
            text = text.rstrip("\n") + "\n\n" + new_part
        at = text.index(anchor) + len(anchor)
        text = text[:at] + "\n" + section + text[at:]
    with open(path, "w") as f:
        f.write(text)


# -- command line --------------------------------------------------------------------


def add_commit_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--commit", metavar="REV",
                        help="time regstat as of this commit (exported into the work "
                             "directory) instead of the working tree")


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """--no-warmup, --work, --results and --record/--no-record."""
    parser.add_argument("--no-warmup", action="store_true")
    parser.add_argument("--work", default=DEFAULT_WORK, help="scratch directory (gitignored)")
    parser.add_argument("--results", default=DEFAULT_RESULTS)
    record_group = parser.add_mutually_exclusive_group()
    record_group.add_argument("--record", action="store_true", default=None,
                              help="write RESULTS.md (the default except with --quick)")
    record_group.add_argument("--no-record", dest="record", action="store_false")
