#!/usr/bin/env python3
"""Time ``regstat report`` and ``regstat plan-gc --untagged`` on DuckDB and on Spark
(``--engine spark``, local mode), side by side on one snapshot, and check that both engines
give the same report and the same plan.

    .venv/bin/python benchmarks/bench_spark.py --snapshot SNAP --no-warmup      # both commands
    .venv/bin/python benchmarks/bench_spark.py --snapshot SNAP --command report \\
        --spark-conf spark.driver.memory=12g --runs 1 --no-warmup --timeout 7200
    .venv/bin/python benchmarks/bench_spark.py --snapshot SNAP --profile --command plan-gc

Needs the `spark` extra (`pip install -e '.[spark]'`, Java 17). Snapshots come from
make_snapshot.py (bench_report.py's, or ``make_snapshot.py OUT --descriptors N``). In each
round the engines alternate, DuckDB first. A Spark run's CPU seconds and peak memory are the
whole process tree's (Python and the JVM it starts), sampled from /proc twice a second:
wait4 alone would miss a JVM that outlives its parent by a moment. The figure the capacity
plan in docs/scale.md needs is each engine's throughput: descriptors per second per core.

``--profile`` runs one command on Spark and prints, for each statement that computes
something (a table, an insert of a reachability step, a result, the plan's sorted write), its
seconds and the shuffles (Exchange nodes) in its physical plan; then the whole run's shuffle
and input bytes per descriptor from Spark's own stage metrics (its REST API on 127.0.0.1).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from dataclasses import dataclass, field

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import bench_common as common  # noqa: E402  (siblings, not a package)
import bench_crawl  # noqa: E402  (its RESULTS.md header starts a new file)
from bench_common import Run, code_env, timed  # noqa: E402

DEFAULT_TIMEOUT = 3600
ANCHOR = "<!-- bench_spark.py inserts sections below this line -->\n"
PART_HEADER = f"""\
# DuckDB vs Spark: `report` and `plan-gc` on both engines

`regstat report SNAPSHOT --format json` and `regstat plan-gc SNAPSHOT --untagged --grace 0s
-f parquet`, each with the default engine (DuckDB) and with `--engine spark` (Spark local
mode on this machine's cores), on a snapshot written by `benchmarks/make_snapshot.py`; timed
by `benchmarks/bench_spark.py`. Both engines must give the same report (JSON equal) and the
same plan (Parquet equal byte for byte). Spark on one 2-core machine is expected to be slower:
the figure that matters is its throughput per core, from which docs/scale.md plans clusters.

{ANCHOR}"""
SECTION_START = "<!-- spark-result {key} -->"
SECTION_END = "<!-- /spark-result -->"
COMMANDS = ("report", "plan-gc")
ENGINES = ("duckdb", "spark")


@dataclass
class Bench:
    snapshot: str
    descriptors: int
    args: dict[str, list[str]]  # tool ("duckdb report", ...) -> command line
    out: dict[str, str]  # tool -> output file
    work: str
    timeout: float
    cores: int  # cores Spark's local master uses
    reference: dict[str, str] = field(default_factory=dict)  # command -> DuckDB's output digest
    runs: list[Run] = field(default_factory=list)


def tools(command: str) -> list[str]:
    return [f"{engine} {c}" for c in COMMANDS if command in (c, "both") for engine in ENGINES]


# -- the process tree ----------------------------------------------------------------


class TreeSampler:
    """CPU seconds and peak resident memory of every process descending from this one,
    summed over the tree, sampled from /proc until stopped."""

    def __init__(self, interval: float = 0.5) -> None:
        self.interval = interval
        self.cpu: dict[int, float] = {}  # pid -> last seen user + system seconds
        self.peak_rss_mb = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._tick = os.sysconf("SC_CLK_TCK")
        self._page_mb = os.sysconf("SC_PAGE_SIZE") / 2**20

    def __enter__(self) -> TreeSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()

    @property
    def cpu_seconds(self) -> float:
        return sum(self.cpu.values())

    def _loop(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def _sample(self) -> None:
        stats = {}
        for name in os.listdir("/proc"):
            if name.isdigit():
                try:
                    with open(f"/proc/{name}/stat") as f:
                        fields = f.read().rsplit(")", 1)[1].split()
                except OSError:
                    continue  # it ended between listing and reading
                # after "pid (comm)": state ppid ... utime(12) stime(13) ... rss(22)
                stats[int(name)] = (int(fields[1]), (int(fields[11]) + int(fields[12])) / self._tick,
                                    int(fields[21]) * self._page_mb)
        tree, frontier = set(), {os.getpid()}
        while frontier:
            frontier = {pid for pid, (ppid, _, _) in stats.items() if ppid in frontier} - tree
            tree |= frontier
        for pid in tree:
            self.cpu[pid] = max(self.cpu.get(pid, 0.0), stats[pid][1])
        self.peak_rss_mb = max(self.peak_rss_mb, sum(stats[pid][2] for pid in tree))


# -- runs ----------------------------------------------------------------------------


def digest_of(tool: str, path: str) -> str:
    """What must be equal between the engines: the report's JSON, the plan's bytes."""
    if tool.endswith("report"):
        with open(path) as f:
            text = json.dumps(json.load(f), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def check(bench: Bench, tool: str) -> str:
    engine, command = tool.split(" ", 1)
    try:
        got = digest_of(tool, bench.out[tool])
    except (OSError, ValueError) as e:
        return f"unreadable output: {e}"
    if engine == "duckdb":
        first = bench.reference.setdefault(command, got)
        return f"sha256 {got[:12]}" + ("" if got == first else " (DIFFERS from the first run)")
    reference = bench.reference.get(command)
    if reference is None:
        return f"sha256 {got[:12]} (no DuckDB output to compare)"
    return f"sha256 {got[:12]} " + ("(equals DuckDB's)" if got == reference else "(DIFFERS from DuckDB's)")


def run_tool(bench: Bench, tool: str, index: int) -> Run:
    if os.path.exists(bench.out[tool]):
        os.remove(bench.out[tool])
    name = tool.replace(" ", "-")
    cwd = os.path.join(bench.work, f"{name}-cwd")  # DuckDB spills into .tmp here
    shutil.rmtree(cwd, ignore_errors=True)
    os.makedirs(cwd)
    load = os.getloadavg()[0]
    try:
        with TreeSampler() as tree:
            _, wall, user, system, rss, failed = timed(
                bench.args[tool], stdout=os.path.join(bench.work, f"{name}.stdout"),
                stderr=os.path.join(bench.work, f"{name}.stderr"), cwd=cwd, env=code_env(),
                timeout=bench.timeout)
    finally:
        shutil.rmtree(cwd, ignore_errors=True)
    # The tree's figures when the sampler saw more than wait4 did (the JVM).
    user = max(user + system, tree.cpu_seconds) - system
    rss = max(rss, tree.peak_rss_mb)
    if failed:
        return Run(tool, index, wall, user, system, rss, load, f"DID NOT FINISH ({failed})", failed)
    return Run(tool, index, wall, user, system, rss, load, check(bench, tool))


# -- results -------------------------------------------------------------------------


def summary_lines(bench: Bench, markdown: bool = False) -> list[str]:
    """Per command: Spark / DuckDB, and each engine's throughput: descriptors per second of
    wall time per core it had, and per CPU second it used (less disturbed by a busy machine)."""
    med = common.medians(bench.runs, bench.args)
    bold = "**" if markdown else ""
    lines = []
    for command in COMMANDS:
        duck, spark = med.get(f"duckdb {command}"), med.get(f"spark {command}")
        failed = [r for r in bench.runs if r.failed and r.tool.endswith(command)]
        if failed:
            lines += [f"{bold}{r.tool} did not finish{bold} ({r.failed})." for r in failed]
        if not (duck and spark):
            continue
        rates = []
        for engine, cores in (("duckdb", os.cpu_count() or 1), ("spark", bench.cores)):
            tool = f"{engine} {command}"
            cpu = statistics.median(r.user + r.sys for r in common.counted(bench.runs, tool))
            rates.append(f"{engine} {bench.descriptors / (med[tool] * cores):,.0f} per core-second "
                         f"of wall time, {bench.descriptors / cpu:,.0f} per CPU second")
        lines.append(f"{bold}{command}: Spark / DuckDB = {spark / duck:.1f}{bold} (median DuckDB "
                     f"{duck:.1f} s, Spark {spark:.1f} s); descriptors: " + "; ".join(rates) + ".")
    return lines or ["No figures: no run finished."]


def render_section(env: dict[str, str], bench: Bench, args: argparse.Namespace, key: str) -> str:
    lines = [SECTION_START.format(key=key),
             f"## {env['date']} — {env['host']} — {bench.descriptors:,} descriptors", ""]
    lines += [line + "  " for line in summary_lines(bench, markdown=True)]
    lines += ["", "| | |", "|---|---|"]
    lines += common.environment_rows(env, ("libraries", "libraries"))
    lines.append(f"| load average | {env['load_start']} at the start, {env['load_end']} at the "
                 "end (1, 5, 15 min) |")
    if env.get("changed"):
        lines.append(f"| WARNING | {env['changed']} |")
    lines.append(f"| snapshot | `{os.path.basename(bench.snapshot)}`, counts "
                 f"{json.dumps(snapshot_counts(bench.snapshot))} |")
    for tool in bench.args:
        shown = " ".join(a for a in bench.args[tool][1:] if a != bench.snapshot)
        lines.append(f"| {tool} | `python {shown}` |")
    warmup = "no warm-up, " if args.no_warmup else "one warm-up of each (not counted), then "
    lines.append(f"| method | {warmup}{args.runs} counted run(s) of each, engines alternating, "
                 "DuckDB first; wall clock per process; CPU and peak RSS of the whole process "
                 "tree (sampled from /proc every 0.5 s); a run is stopped after "
                 f"{args.timeout:g} s |")
    lines.append("")
    lines += common.run_rows(bench.runs, common.medians(bench.runs, bench.args), "command")
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def snapshot_counts(snapshot: str) -> dict[str, int]:
    """The rows of each table, as the snapshot's snapshot.json counts them."""
    with open(os.path.join(snapshot, "snapshot.json")) as f:
        return json.load(f)["counts"]


def library_versions() -> str:
    try:
        import duckdb
        import pyspark
    except ImportError as e:
        return f"({e})"
    java = common.sh(["sh", "-c", "java -version 2>&1 | head -1"])
    return f"duckdb {duckdb.__version__}, pyspark {pyspark.__version__}, {java}"


# -- profile -------------------------------------------------------------------------


def profile(args: argparse.Namespace, snapshot: str) -> int:
    """Profile one command on Spark in a child process importing the code being timed."""
    child = [sys.executable, os.path.abspath(__file__), "--profile-child", "--snapshot", snapshot,
             "--command", args.command, "--work", args.work, "--spark-master", args.spark_master,
             *(f"--spark-conf={conf}" for conf in args.spark_conf)]
    return subprocess.run(child, cwd=args.work, env=code_env()).returncode


def profile_child(args: argparse.Namespace, snapshot: str, spark: list[str]) -> int:
    """Run the command here, timing each Spark method that computes something; only the
    outermost call is timed (an insert checkpoints its rows, then its table)."""
    from regstat.analysis import spark as engine
    from regstat.cli import main as regstat_main

    timings: list[tuple[str, float, int]] = []
    depth = [0]
    sessions = []  # the session regstat made (kept once), whose UI reports the stages

    def shuffles(frame) -> int:
        plan = frame._jdf.queryExecution().executedPlan().toString()
        return plan.count("Exchange ")

    def timed_method(name, label):
        original = getattr(engine.Spark, name)

        def wrapper(self, *a, **k):
            if not sessions:
                sessions.append(self.session)
            depth[0] += 1
            exchanges = shuffles(a[1]) if name == "_table" and depth[0] == 1 else 0
            started = time.perf_counter()
            try:
                return original(self, *a, **k)
            finally:
                depth[0] -= 1
                if depth[0] == 0:
                    timings.append((label(a), time.perf_counter() - started, exchanges))
        setattr(engine.Spark, name, wrapper)

    timed_method("_table", lambda a: f"table {a[0]}")
    timed_method("insert", lambda a: f"insert into {a[0]}")
    timed_method("arrow", lambda a: "result " + " ".join(a[0].split())[:60])
    timed_method("write_numbered", lambda a: f"sorted write of {a[0]}")
    out = os.path.join(args.work, "profile-out")
    command = {"report": ["report", snapshot, "-f", "json", "-o", out + ".json"],
               "plan-gc": ["plan-gc", snapshot, "--untagged", "--grace", "0s", "-f", "parquet",
                           "-o", out + ".parquet"]}[args.command]
    spark = [*spark, "--spark-conf", "spark.ui.enabled=true"]
    started = time.perf_counter()
    regstat_main([*command, *spark], standalone_mode=False)
    total = time.perf_counter() - started

    context = sessions[0].sparkContext
    port = context.uiWebUrl.rsplit(":", 1)[1]
    url = f"http://127.0.0.1:{port}/api/v1/applications/{context.applicationId}/stages"
    stages = json.load(urllib.request.urlopen(url))
    descriptors = snapshot_counts(snapshot)["descriptors"]
    print(f"\n{'seconds':>8} {'shuffles':>8}  statement")
    for label, seconds, exchanges in sorted(timings, key=lambda t: -t[1]):
        print(f"{seconds:8.2f} {exchanges:8d}  {label}")
    shuffled = sum(s.get("shuffleWriteBytes", 0) for s in stages)
    read = sum(s.get("inputBytes", 0) for s in stages)
    task_seconds = sum(s.get("executorRunTime", 0) for s in stages) / 1000
    print(f"\n{args.command} on Spark: {total:.1f} s wall, {len(timings)} timed calls "
          f"({sum(t[1] for t in timings):.1f} s), {len(stages)} stages, tasks {task_seconds:.1f} s; "
          f"shuffle write {shuffled / 2**20:,.0f} MiB ({shuffled / descriptors:.1f} B/descriptor), "
          f"input {read / 2**20:,.0f} MiB ({read / descriptors:.1f} B/descriptor)")
    return 0


# -- main ----------------------------------------------------------------------------


def local_cores(master: str) -> int:
    """The cores a local master runs on: local[N], else all of them."""
    found = re.fullmatch(r"local\[(\d+)\]", master)
    return min(os.cpu_count() or 1, int(found.group(1))) if found else os.cpu_count() or 1


def spark_options(args: argparse.Namespace) -> list[str]:
    options = ["--engine", "spark", "--spark-master", args.spark_master]
    for conf in args.spark_conf:
        options += ["--spark-conf", conf]
    return options


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--snapshot", required=True, help="the snapshot (make_snapshot.py's)")
    parser.add_argument("--command", choices=(*COMMANDS, "both"), default="both")
    parser.add_argument("--spark-master", default="local[2]")
    parser.add_argument("--spark-conf", action="append", default=[], metavar="KEY=VALUE",
                        help="passed to regstat's --spark-conf (repeatable), e.g. "
                             "spark.driver.memory=8g")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--profile", action="store_true",
                      help="time each statement of one command on Spark, with its shuffles")
    only.add_argument("--profile-child", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument("--runs", type=int, default=1, help="counted runs of each (default 1)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT,
                        help=f"seconds before a run is killed (default {DEFAULT_TIMEOUT})")
    common.add_commit_option(parser)
    common.add_common_options(parser)
    args = parser.parse_args(argv)
    if args.record is None:
        args.record = True
    if args.profile_child:
        return profile_child(args, args.snapshot, spark_options(args))
    args.work = os.path.abspath(os.path.join(args.work, "spark"))
    os.makedirs(args.work, exist_ok=True)
    snapshot = os.path.abspath(args.snapshot)
    if not os.path.isfile(os.path.join(snapshot, "snapshot.json")):
        raise SystemExit(f"{snapshot}: not a snapshot (no snapshot.json)")
    if args.commit:
        common.export_commit(args.commit, args.work)
    spark = spark_options(args)
    if args.profile:
        if args.command == "both":
            parser.error("--profile profiles one command: --command report or --command plan-gc")
        return profile(args, snapshot)
    descriptors = snapshot_counts(snapshot)["descriptors"]
    argv_of = {"report": ["report", snapshot, "--format", "json", "--output"],
               "plan-gc": ["plan-gc", snapshot, "--untagged", "--grace", "0s", "-f", "parquet", "-o"]}
    suffix = {"report": "json", "plan-gc": "parquet"}
    out, commands = {}, {}
    for tool in tools(args.command):
        engine, command = tool.split(" ", 1)
        out[tool] = os.path.join(args.work, f"{engine}-{command}.{suffix[command]}")
        commands[tool] = [sys.executable, "-m", "regstat", *argv_of[command], out[tool],
                          *(spark if engine == "spark" else [])]
    cores = local_cores(args.spark_master)
    bench = Bench(snapshot, descriptors, commands, out, args.work, args.timeout, cores)

    env = common.environment(platform.node(), common.git_commit(("regstat", "sql"), "regstat/ or sql/"))
    env["libraries"] = library_versions()
    env["load_start"] = common.load_averages()
    for tool, command in commands.items():
        print(f"{tool + ':':<16} {' '.join(command)}")
    # A second's pause after each run: the JVM's last pages go before the next run is sampled.
    common.alternate(bench.runs, commands, lambda tool, index: run_tool(bench, tool, index),
                     count=args.runs, warmup=not args.no_warmup, width=15, pause=1.0)
    print()
    for line in summary_lines(bench):
        print(line)
    if args.record:
        env["load_end"] = common.load_averages()
        key = (f"host={env['host']} snapshot={os.path.basename(snapshot)} "
               f"commands={args.command} master={args.spark_master} regstat={common.regstat_key(env)}")
        common.record(args.results, render_section(env, bench, args, key),
                      start_marker=SECTION_START.format(key=key), end_marker=SECTION_END,
                      anchor=ANCHOR, new_file=bench_crawl.RESULTS_HEADER, new_part=PART_HEADER)
        print(f"recorded in {os.path.relpath(args.results)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
