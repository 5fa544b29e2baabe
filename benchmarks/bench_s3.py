#!/usr/bin/env python3
"""Time ``regstat crawl`` + ``regstat plan-gc`` against the registry's own GC on S3.

The same storage tree (make_tree.py's generator) is written into a bucket of a local
``moto_server``; both tools reach it through benchmarks/latency_proxy.py, which adds a fixed
delay to every request (0 ms, then 20 ms: a stand-in for a real S3 round trip) and counts
the requests. regstat: ``regstat crawl s3://BUCKET/PREFIX --endpoint-url PROXY -o SNAP``
then ``regstat plan-gc SNAP --untagged --grace 0s -o plan.json``. The registry:
``docker-registry garbage-collect --dry-run --delete-untagged CONFIG`` with its s3 driver on
the same proxy. Targets (issue 6): regstat >= 10x faster without added latency, >= 100x
with 20 ms.

    .venv/bin/python benchmarks/bench_s3.py            # ~680 manifests, records RESULTS.md
    .venv/bin/python benchmarks/bench_s3.py --quick    # 20 repositories, records nothing

Per latency the tools alternate, gc first (gc, regstat, then the remaining regstat runs);
one regstat warm-up (not counted) comes first. A gc run longer than --gc-timeout is killed
and recorded as a lower bound.

Issue 20's figures come from the same runs: regstat's marginal CPU per request (each regstat
run also crawls a smaller tree, --small-repositories, in a bucket of its own; the crawls' CPU
difference over their requests' difference leaves start-up and imports out), and the crawl's
wall time less moto_server's CPU during it against the floor (requests / concurrency x
latency). --baseline REV times regstat as of REV beside the code being timed, run for run,
so that the two compare in one run (ratios).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import socket
import statistics
import subprocess
import sys
from dataclasses import dataclass, field
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import bench_common as common  # noqa: E402  (siblings, not a package)
import make_tree  # noqa: E402
from bench_common import CODE, code_env, timed  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402
from support.components import MotoServer, S3Storage, isolated_env  # noqa: E402  (tests/support)

# ~680 manifests and ~7,600 keys: of the generator's trees the closest to issue 6's
# 668-manifest, 9,300-key registry (the generator makes ~11 keys per manifest, not 14).
FULL = {"repositories": 91, "seed": 10}
QUICK = {"repositories": 20, "seed": 1}
BUCKET = "regstat-bench"
SMALL_BUCKET = "regstat-bench-small"  # its own bucket: moto scans a whole bucket per listing
GC_SUMMARY = re.compile(r"(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion")
TARGETS = {0: 10.0, 20: 100.0}  # added latency (ms) -> required speed-up
ANCHOR = "<!-- bench_s3.py inserts sections below this line -->\n"
PART_HEADER = f"""\
# S3: `regstat crawl` + `plan-gc` vs the registry's GC

`regstat crawl s3://…` then `regstat plan-gc --untagged --grace 0s` against
`docker-registry garbage-collect --dry-run --delete-untagged` with its s3 driver, on the same
tree in a local `moto_server`, both through a proxy adding a fixed latency to every request;
timed by `benchmarks/bench_s3.py` (see `README.md`). **Targets (issue 6): gc / regstat >= 10
without added latency, >= 100 with 20 ms.** Newest section first; a rerun on the same
machine, tree and commit replaces its section.

{ANCHOR}"""
SECTION_START = "<!-- s3-result {key} -->"
SECTION_END = "<!-- /s3-result -->"


@dataclass
class S3Run:
    tool: str  # "gc" or "regstat"
    latency_ms: float
    index: int  # 0 is the warm-up
    wall: float  # gc: its wall; regstat: crawl + plan
    small: bool = False  # regstat's crawl of the small tree (no plan)
    crawl_cpu: float = 0.0  # user + sys of the crawl alone
    crawl: float = 0.0
    plan: float = 0.0
    user: float = 0.0
    sys: float = 0.0
    max_rss_mb: float = 0.0
    load: float = 0.0
    requests: dict[str, object] = field(default_factory=dict)
    moto_cpu: float = 0.0  # CPU seconds moto_server spent during the run
    proxy_cpu: float = 0.0  # CPU seconds of this process (the proxy's threads) during the run
    check: str = ""
    failed: str = ""

    @property
    def warmup(self) -> bool:
        return self.index == 0

    @property
    def total_requests(self) -> int:
        return int(self.requests.get("total", 0))  # type: ignore[call-overload]


def process_cpu(pid: int) -> float:
    """User + system CPU seconds of a running process (from /proc)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            fields = f.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")
    except (OSError, IndexError, ValueError):
        return 0.0


def self_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


class Bench:
    def __init__(self, args: argparse.Namespace, moto: MotoServer, proxy: LatencyProxy,
                 summary: dict, location: str, prefix: str) -> None:
        self.args = args
        self.moto = moto
        self.proxy = proxy
        self.summary = summary
        self.location = location
        self.work = os.path.join(args.work, "s3")
        os.makedirs(self.work, exist_ok=True)
        self.snapshot = os.path.join(self.work, "snap")
        self.plan = os.path.join(self.work, "plan.json")
        self.config = os.path.join(self.work, "registry.yml")
        storage = S3Storage(endpoint_url=proxy.endpoint_url, bucket=BUCKET, rootdirectory="/" + prefix)
        with open(self.config, "w") as f:  # JSON is YAML
            json.dump({"version": "0.1", "log": {"level": "error"},
                       "storage": {"s3": storage.driver_config()}}, f, indent=2)
        self.env = isolated_env()  # dummy credentials; no AWS_CA_BUNDLE (the s3 driver panics)
        self.regstat_env = dict(code_env(), **{k: v for k, v in self.env.items()
                                                if k.startswith(("AWS_", "NO_PROXY", "no_proxy"))})
        for name in ("AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
            self.regstat_env.pop(name, None)
        self.crawl_args = self.crawl_argv(location)
        self.small_location = f"s3://{SMALL_BUCKET}/{prefix}"
        self.small_summary: dict = {}
        self.code = {"regstat": str(CODE["dir"])}  # tool -> the regstat it imports
        self.plan_args = [sys.executable, "-m", "regstat", "plan-gc", self.snapshot, "--untagged",
                          "--grace", "0s", "-o", self.plan]
        self.gc_args = ["docker-registry", "garbage-collect", "--dry-run", "--delete-untagged",
                        self.config]
        self.runs: list[S3Run] = []

    def compile(self) -> None:
        """Byte-compile each regstat being timed, as installing it does: with
        PYTHONDONTWRITEBYTECODE set (as on the benchmark machine) every run would compile
        its ~100 modules again, ~0.4 s of CPU that no installed regstat spends."""
        for code in self.code.values():
            subprocess.run([sys.executable, "-m", "compileall", "-q", os.path.join(code, "regstat")],
                           check=True, stdout=subprocess.DEVNULL)

    def crawl_argv(self, location: str) -> list[str]:
        argv = [sys.executable, "-m", "regstat", "crawl", location, "--endpoint-url",
                self.proxy.endpoint_url, "-o", self.snapshot]
        if self.args.concurrency:
            argv += ["--concurrency", str(self.args.concurrency)]
        return argv

    def _start(self) -> tuple[float, float, float]:
        self.proxy.counts.reset()
        return os.getloadavg()[0], process_cpu(self.moto._process.popen.pid), self_cpu()  # type: ignore[union-attr]

    def _finish(self, run: S3Run, moto0: float, self0: float) -> None:
        run.requests = self.proxy.counts.snapshot()
        run.moto_cpu = process_cpu(self.moto._process.popen.pid) - moto0  # type: ignore[union-attr]
        run.proxy_cpu = self_cpu() - self0

    def run_gc(self, latency_ms: float, index: int) -> S3Run:
        out, err = os.path.join(self.work, "gc.stdout"), os.path.join(self.work, "gc.stderr")
        load, moto0, self0 = self._start()
        rc, wall, user, system, rss, failure = timed(self.gc_args, stdout=out, stderr=err,
                                                     env=self.env, timeout=self.args.gc_timeout)
        run = S3Run("gc", latency_ms, index, wall, user=user, sys=system, max_rss_mb=rss,
                    load=load, failed=failure)
        self._finish(run, moto0, self0)
        run.check = self.check_gc(out) if not failure else f"not finished: {failure}"
        return run

    def run_regstat(self, latency_ms: float, index: int, tool: str = "regstat",
                    small: bool = False) -> S3Run:
        shutil.rmtree(self.snapshot, ignore_errors=True)
        if os.path.exists(self.plan):
            os.remove(self.plan)
        code = self.code[tool]
        env = dict(self.regstat_env, PYTHONPATH=code)
        out, err = os.path.join(self.work, "crawl.stdout"), os.path.join(self.work, "crawl.stderr")
        argv = self.crawl_argv(self.small_location) if small else self.crawl_args
        load, moto0, self0 = self._start()
        rc, crawl, u1, s1, r1, failure = timed(argv, stdout=out, stderr=err, cwd=code, env=env)
        run = S3Run(tool, latency_ms, index, crawl, small=small, crawl_cpu=u1 + s1, crawl=crawl,
                    user=u1, sys=s1, max_rss_mb=r1, load=load)
        self._finish(run, moto0, self0)
        if failure:
            run.failed = f"crawl: {failure}"
            run.check = common.tail(err, 3).strip()
            return run
        if small:
            run.check = self.check_snapshot(self.small_summary)
            return run
        pout, perr = os.path.join(self.work, "plan.stdout"), os.path.join(self.work, "plan.stderr")
        rc, plan, u2, s2, r2, failure = timed(self.plan_args, stdout=pout, stderr=perr,
                                              cwd=code, env=env)
        run.plan, run.wall = plan, crawl + plan
        run.user, run.sys, run.max_rss_mb = u1 + u2, s1 + s2, max(r1, r2)
        if failure:
            run.failed = f"plan-gc: {failure}"
        run.check = self.check_regstat()
        return run

    def check_gc(self, stdout: str) -> str:
        match = None
        with open(stdout, errors="replace") as f:
            for line in f:
                match = GC_SUMMARY.search(line) or match
        if match is None:
            return "no summary line"
        marked, blobs, manifests = (int(g) for g in match.groups())
        said = f"{marked} marked, {blobs} blobs + {manifests} manifests eligible"
        expected = self.summary["gc_dry_run_delete_untagged"]
        got = {"blobs_marked": marked, "blobs_eligible": blobs, "manifests_eligible": manifests}
        return said + (" (as expected)" if got == expected else f" (EXPECTED {expected})")

    def check_regstat(self) -> str:
        said = self.check_snapshot(self.summary)
        try:
            with open(self.plan) as f:
                plan = json.load(f)["summary"]
            said += (f"; plan: {plan['manifests']} manifests, {plan['blobs']} blobs, "
                     f"{plan['uploads']} uploads")
        except (OSError, ValueError, KeyError) as e:
            said += f"; no plan: {e}"
        return said

    def check_snapshot(self, s: dict) -> str:
        try:
            with open(os.path.join(self.snapshot, "snapshot.json")) as f:
                meta = json.load(f)
        except (OSError, ValueError) as e:
            return f"no snapshot.json: {e}"
        counts = meta.get("counts", {})
        expected = {"repositories": s["repositories"], "manifests": s["manifests"],
                    "tags": s["tags"], "blobs": s["blobs"], "repository_blobs": s["layer_links"]}
        wrong = [f"{k} {counts.get(k)}!={v}" for k, v in expected.items() if counts.get(k) != v]
        if meta.get("complete") is not True:
            wrong.append("not complete")
        return (f"snapshot complete, {counts.get('manifests')} manifests, {counts.get('blobs')} blobs"
                if not wrong else "snapshot MISMATCH: " + "; ".join(wrong))


# -- numbers -------------------------------------------------------------------------


def counted(runs: list[S3Run], tool: str, latency: float, finished: bool = True,
            small: bool = False) -> list[S3Run]:
    return [r for r in runs if r.tool == tool and r.latency_ms == latency and not r.warmup
            and r.small == small and (not finished or not r.failed)]


def median_run(runs: list[S3Run]) -> S3Run | None:
    """The run with the median wall time (the lower middle one for an even count)."""
    if not runs:
        return None
    ordered = sorted(runs, key=lambda r: r.wall)
    return ordered[(len(ordered) - 1) // 2]


def comparison(runs: list[S3Run], latency: float, concurrency: int,
               summary: dict, tool: str = "regstat") -> dict[str, object]:
    """gc against regstat at one latency: medians, ratio (or its lower bound), rates, floor,
    moto's share, the marginal CPU per request."""
    gcs = counted(runs, "gc", latency, finished=False)
    regs = counted(runs, tool, latency)
    out: dict[str, object] = {"latency_ms": latency, "tool": tool}
    if regs:
        med = statistics.median(r.wall for r in regs)
        crawl = statistics.median(r.crawl for r in regs)
        rep = median_run(regs)
        assert rep is not None
        requests = rep.total_requests
        floor = requests / concurrency * latency / 1000
        out.update({
            "regstat": med, "crawl": crawl, "plan": statistics.median(r.plan for r in regs),
            "requests": requests, "floor": floor,
            "keys_per_s": summary["files"] / crawl, "manifests_per_s": summary["manifests"] / crawl,
            "in_flight": float(rep.requests["busy_seconds"]) / rep.crawl,  # type: ignore[arg-type]
            "moto_cpu": rep.moto_cpu,
            # moto_server's CPU is part of the wall time on two cores; real S3's is not
            "without_moto": statistics.median(r.crawl - r.moto_cpu for r in regs),
            "crawl_cpu": statistics.median(r.crawl_cpu for r in regs),
        })
        smalls = counted(runs, tool, latency, small=True)
        if smalls and requests != smalls[0].total_requests:
            small_cpu = statistics.median(r.crawl_cpu for r in smalls)
            out.update({"small_cpu": small_cpu, "small_requests": smalls[0].total_requests,
                        "marginal_ms": 1000 * (float(out["crawl_cpu"]) - small_cpu)  # type: ignore[arg-type]
                        / (requests - smalls[0].total_requests)})
    finished = [r for r in gcs if not r.failed]
    if finished:
        out["gc"] = statistics.median(r.wall for r in finished)
        out["gc_bound"] = False
    elif gcs:
        out["gc"] = max(r.wall for r in gcs)
        out["gc_bound"] = True  # killed: a lower bound
    if gcs:
        g = median_run(finished) or max(gcs, key=lambda r: r.wall)
        out["gc_requests"] = g.total_requests
        out["gc_moto_cpu"] = g.moto_cpu
    if "gc" in out and "regstat" in out:
        out["ratio"] = float(out["gc"]) / float(out["regstat"])  # type: ignore[arg-type]
    return out


def verdict(c: dict[str, object]) -> str:
    latency = float(c["latency_ms"])  # type: ignore[arg-type]
    target = TARGETS.get(int(latency))
    if "ratio" not in c:
        return "no ratio (one tool only)"
    ratio = float(c["ratio"])  # type: ignore[arg-type]
    bound = "≥ " if c.get("gc_bound") else ""
    text = (f"**gc / regstat = {bound}{ratio:.1f}** (gc {bound}{c['gc']:.1f} s"
            f"{' (killed: lower bound)' if c.get('gc_bound') else ''}, regstat "
            f"{c['regstat']:.2f} s = crawl {c['crawl']:.2f} s + plan {c['plan']:.2f} s)")
    if target is None:
        return text + "."
    if ratio >= target:
        return text + f": target met (target ≥ {target:g})."
    if c.get("gc_bound"):
        return text + f": target ≥ {target:g} not shown (the gc was cut short)."
    return text + f": TARGET MISSED (target ≥ {target:g})."


def describe(c: dict[str, object], concurrency: int) -> str:
    if "regstat" not in c:
        return ""
    latency = float(c["latency_ms"])  # type: ignore[arg-type]
    text = (f"{c['tool']} made {c['requests']} requests (gc: {c.get('gc_requests', '?')}); "
            f"{c['keys_per_s']:.0f} keys/s listed and {c['manifests_per_s']:.0f} manifests/s "
            f"fetched (over the whole crawl); {c['in_flight']:.1f} requests in flight on average")
    if latency:
        floor = float(c["floor"])  # type: ignore[arg-type]
        text += (f"; floor = {c['requests']} / {concurrency} × {latency:g} ms = {floor:.2f} s, "
                 f"the crawl takes {float(c['crawl']) / floor:.1f}× it, "  # type: ignore[arg-type]
                 f"{float(c['without_moto']) / floor:.1f}× it less moto's CPU "  # type: ignore[arg-type]
                 f"({c['without_moto']:.2f} s)")
    text += (f"; moto_server used {c['moto_cpu']:.1f} CPU s during the crawl"
             + (f", {c['gc_moto_cpu']:.1f} during the gc" if "gc_moto_cpu" in c else ""))
    text += f"; the crawl's CPU (user + sys) {c['crawl_cpu']:.2f} s"
    if "marginal_ms" in c:
        text += (f", {c['small_cpu']:.2f} s for the small tree's {c['small_requests']} requests: "
                 f"**{c['marginal_ms']:.2f} ms of CPU per request** at the margin")
    return text + "."


def versus(new: dict[str, object], old: dict[str, object]) -> str:
    """The code being timed against the --baseline, from the same run."""
    if "regstat" not in new or "regstat" not in old:
        return ""
    parts = [f"crawl + plan {float(new['regstat']) / float(old['regstat']):.2f}×",  # type: ignore[arg-type]
             f"crawl CPU {float(new['crawl_cpu']) / float(old['crawl_cpu']):.2f}×"]  # type: ignore[arg-type]
    if "marginal_ms" in new and "marginal_ms" in old:
        parts.append(f"marginal CPU per request {float(new['marginal_ms']) / float(old['marginal_ms']):.2f}×")  # type: ignore[arg-type]
    return f"{new['tool']} / {old['tool']} at +{new['latency_ms']:g} ms: " + ", ".join(parts) + "."


# -- RESULTS.md ----------------------------------------------------------------------


def environment() -> dict[str, str]:
    env = common.environment(socket.gethostname(), common.git_commit(("regstat", "sql"), "regstat/ or sql/"))
    env["registry"] = common.sh(["docker-registry", "--version"])
    moto_version = common.sh([sys.executable, "-c", "import moto; print(moto.__version__)"])
    boto_version = common.sh([sys.executable, "-c", "import boto3; print(boto3.__version__)"])
    env["moto"] = f"moto {moto_version} (moto_server), boto3 {boto_version}"
    return env


def render(env: dict[str, str], bench: Bench, comparisons: list[dict[str, object]], key: str,
           concurrency: int) -> str:
    s = bench.summary
    args = bench.args
    lines = [SECTION_START.format(key=key),
             f"## {env['date']} — {env['host']} — {s['manifests']} manifests, {s['files']} keys", ""]
    for c in comparisons:
        lines.append(f"- **+{c['latency_ms']:g} ms per request, {c['tool']}:** " + verdict(c) + " "
                     + describe(c, concurrency))
    lines += [f"- {line}" for line in versions(comparisons)]
    lines += ["", "| | |", "|---|---|"]
    lines += common.environment_rows(env, ("docker-registry", "registry"))
    lines.append(f"| S3 | {env['moto']}, on 127.0.0.1, in memory; requests through "
                 "`benchmarks/latency_proxy.py` (threads, keep-alive both ways) |")
    lines.append(f"| load average | {env['load_start']} at the start, {env['load_end']} at the "
                 "end (1, 5, 15 min) |")
    if env.get("changed"):
        lines.append(f"| WARNING | {env['changed']} |")
    lines.append(f"| tree | `make_tree.py s3://{BUCKET}/PREFIX --repositories "
                 f"{s['parameters']['repositories']} --pushes {s['parameters']['pushes']} "
                 f"--seed {s['parameters']['seed']} --base-images {s['parameters']['base_images']}` |")
    lines.append(f"| tree size | {s['repositories']} repositories, {s['manifests']} manifests "
                 f"({s['untagged_manifests']} untagged), {s['tags']} tags, {s['blobs']} blobs, "
                 f"{s['layer_links']} layer links, {s['files']} keys ({s['directories']} "
                 "directories on disk); layer data is a placeholder of a few dozen bytes "
                 "(sizes differ from the declared ones: this measures listing and reading "
                 "requests, not bytes) |")
    if bench.small_summary:
        t = bench.small_summary
        lines.append(f"| small tree (marginal CPU) | `--repositories {t['parameters']['repositories']}`"
                     f" in bucket {SMALL_BUCKET}: {t['repositories']} repositories, {t['manifests']} "
                     f"manifests, {t['files']} keys; crawled after each regstat run, no plan |")
    for tool, code in bench.code.items():
        if tool != "regstat":
            lines.append(f"| {tool} | `--baseline`: regstat as of {tool.split('@')[1]}, exported to "
                         f"`{os.path.relpath(code)}`, run for run beside the code being timed |")
    lines.append(f"| regstat | `regstat crawl s3://{BUCKET}/PREFIX --endpoint-url PROXY -o SNAP"
                 f"{' --concurrency ' + str(args.concurrency) if args.concurrency else ''}` "
                 f"(concurrency {concurrency}), then `regstat plan-gc SNAP --untagged --grace 0s "
                 "-o plan.json` |")
    lines.append("| gc | `docker-registry garbage-collect --dry-run --delete-untagged CONFIG` "
                 "(s3 driver: regionendpoint PROXY, forcepathstyle, rootdirectory /PREFIX; "
                 f"killed after {args.gc_timeout:g} s) |")
    lines.append(f"| method | per latency: gc and regstat alternate, gc first, {args.gc_runs} gc "
                 f"run(s) and {args.runs} regstat run(s) (crawl then plan-gc, timed apart); one "
                 "regstat warm-up first, not counted; medians; requests counted in the proxy; "
                 "moto and proxy CPU from /proc and getrusage; regstat byte-compiled first, as "
                 "an install does |")
    lines += ["", "| run | latency | tool | wall s | crawl s | plan s | user s | sys s | max RSS MB "
              "| requests (list/get/head/other) | max in flight | moto CPU s | proxy CPU s | load "
              "| output check |",
              "|---|---:|---|---:|---:|---:|---:|---:|---:|---|---:|---:|---:|---:|---|"]
    for r in bench.runs:
        q = r.requests.get("requests", {})  # type: ignore[union-attr]
        kinds = "/".join(str(q.get(k, 0)) for k in ("list", "get", "head")) + \
            f"/{int(q.get('put', 0)) + int(q.get('other', 0))}"  # type: ignore[union-attr, call-overload]
        label = "warm-up" if r.warmup else str(r.index)
        crawl = f"{r.crawl:.2f}" if r.tool != "gc" else ""
        plan = f"{r.plan:.2f}" if r.tool != "gc" and r.plan else ""
        check = r.check + (f" — {r.failed}" if r.failed and r.failed not in r.check else "")
        tool = r.tool + (" (small tree)" if r.small else "")
        lines.append(f"| {label} | {r.latency_ms:g} ms | {tool} | {r.wall:.2f} | {crawl} | {plan} "
                     f"| {r.user:.2f} | {r.sys:.2f} | {r.max_rss_mb:.0f} | {r.total_requests} "
                     f"({kinds}) | {r.requests.get('max_inflight', '')} | {r.moto_cpu:.1f} "
                     f"| {r.proxy_cpu:.1f} | {r.load:.1f} | {check} |")
    if args.notes:
        lines += ["", Path(args.notes).read_text().rstrip()]
    lines += ["", SECTION_END]
    return "\n".join(lines) + "\n"


def versions(comparisons: list[dict[str, object]]) -> list[str]:
    """`versus` lines for each latency that has a --baseline."""
    lines = []
    for new in comparisons:
        if new["tool"] == "regstat":
            for old in comparisons:
                if old["tool"] != "regstat" and old["latency_ms"] == new["latency_ms"]:
                    lines.append(versus(new, old))
    return [line for line in lines if line]


def record(path: str, key: str, section: str) -> None:
    import bench_crawl
    common.record(path, section, start_marker=SECTION_START.format(key=key),
                  end_marker=SECTION_END, anchor=ANCHOR, new_file=bench_crawl.RESULTS_HEADER,
                  new_part=PART_HEADER)


# -- main ----------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help=f"{QUICK['repositories']} repositories, one run each, gc timeout "
                             "300 s, nothing recorded unless --record")
    parser.add_argument("--repositories", type=int, default=None)
    parser.add_argument("--pushes", type=float, default=8.0)
    parser.add_argument("--base-images", type=int, default=20)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--latencies-ms", default="0,20",
                        help="added latency per request, comma-separated (default 0,20)")
    parser.add_argument("--runs", type=int, default=None,
                        help="counted regstat runs per latency (default 3, 1 with --quick)")
    parser.add_argument("--gc-runs", type=int, default=1, help="gc runs per latency (default 1)")
    parser.add_argument("--gc-timeout", type=float, default=None,
                        help="kill a gc run after this many seconds and record a lower bound "
                             "(default 1500, 300 with --quick)")
    parser.add_argument("--concurrency", type=int, default=None,
                        help="regstat crawl --concurrency (default: regstat's, 32 on S3)")
    only = parser.add_mutually_exclusive_group()
    only.add_argument("--gc-only", action="store_true")
    only.add_argument("--regstat-only", action="store_true")
    parser.add_argument("--small-repositories", type=int, default=None,
                        help="the small tree crawled after each regstat run, for the marginal CPU "
                             "per request (default 30, 8 with --quick; 0: none)")
    parser.add_argument("--baseline", metavar="REV",
                        help="also time regstat as of REV, run for run beside the code being timed")
    parser.add_argument("--notes", metavar="FILE", help="Markdown appended to the recorded section")
    common.add_commit_option(parser)
    common.add_common_options(parser)
    args = parser.parse_args(argv)
    preset = QUICK if args.quick else FULL
    args.repositories = args.repositories or preset["repositories"]
    args.seed = preset["seed"] if args.seed is None else args.seed
    args.runs = args.runs if args.runs is not None else (1 if args.quick else 3)
    args.gc_timeout = args.gc_timeout or (300.0 if args.quick else 1500.0)
    if args.record is None:
        args.record = not args.quick
    latencies = [float(x) for x in args.latencies_ms.split(",") if x.strip()]
    # SIGTERM unwinds like Ctrl-C, so that moto_server and the proxy are stopped.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    if shutil.which("docker-registry") is None and not args.regstat_only:
        raise SystemExit("docker-registry is not installed (Debian: apt-get install docker-registry)")
    os.makedirs(args.work, exist_ok=True)
    baseline = None
    if args.baseline:  # exported like --commit, without changing which code is timed
        timed_code = dict(CODE)
        common.export_commit(args.baseline, args.work)
        baseline = (f"regstat@{CODE['commit']}", str(CODE["dir"]))
        CODE.update(timed_code)
    if args.commit:
        common.export_commit(args.commit, args.work)
    if args.small_repositories is None:
        args.small_repositories = 8 if args.quick else 30
    env = environment() if args.record else {}
    if env:
        env["load_start"] = common.load_averages()

    # boto3 in this process (the upload) gets the dummy credentials, never real ones.
    for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL",
                 "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in isolated_env().items() if k.startswith("AWS_")})
    log_dir = Path(args.work) / "s3"
    log_dir.mkdir(parents=True, exist_ok=True)
    prefix = f"tree-r{args.repositories}-p{args.pushes:g}-s{args.seed}"
    location = f"s3://{BUCKET}/{prefix}"
    concurrency = args.concurrency or 32
    with MotoServer(log_dir) as moto:
        moto.create_bucket(BUCKET)
        print(f"moto_server {moto.endpoint_url}; writing {location} "
              f"({args.repositories} repositories, seed {args.seed}) ...", flush=True)
        summary = make_tree.make_bucket(location, endpoint_url=moto.endpoint_url, seed=args.seed,
                                        repositories=args.repositories, pushes=args.pushes,
                                        base_images=args.base_images, jobs=32)
        make_tree.print_summary(summary)
        small_summary = {}
        if args.small_repositories and not args.gc_only:
            moto.create_bucket(SMALL_BUCKET)
            small_summary = make_tree.make_bucket(
                f"s3://{SMALL_BUCKET}/{prefix}", endpoint_url=moto.endpoint_url, seed=args.seed,
                repositories=args.small_repositories, pushes=args.pushes,
                base_images=args.base_images, jobs=32)
            print(f"small tree: {small_summary['manifests']} manifests, {small_summary['files']} keys")
        with LatencyProxy(moto.endpoint_url) as proxy:
            bench = Bench(args, moto, proxy, summary, location, prefix)
            bench.small_summary = small_summary
            if baseline:
                bench.code[baseline[0]] = baseline[1]
            bench.compile()
            print(f"regstat: {' '.join(bench.crawl_args)}\n         {' '.join(bench.plan_args)}")
            print(f"gc:      {' '.join(bench.gc_args)}", flush=True)
            first = True
            for latency in latencies:
                proxy.delay = latency / 1000
                if first and not args.no_warmup and not args.gc_only:
                    run = bench.run_regstat(latency, 0)
                    bench.runs.append(run)
                    print_run(run)
                first = False
                for index in range(1, max(args.runs, args.gc_runs) + 1):
                    if index <= args.gc_runs and not args.regstat_only:
                        bench.runs.append(run := bench.run_gc(latency, index))
                        print_run(run)
                    if index <= args.runs and not args.gc_only:
                        for tool in bench.code:  # the baseline, if any, run for run
                            bench.runs.append(run := bench.run_regstat(latency, index, tool))
                            print_run(run)
                            if small_summary:
                                bench.runs.append(run := bench.run_regstat(latency, index, tool, True))
                                print_run(run)
    comparisons = [comparison(bench.runs, latency, concurrency, summary, tool)
                   for latency in latencies for tool in bench.code]
    print()
    for c in comparisons:
        print(f"+{c['latency_ms']:g} ms, {c['tool']}: " + verdict(c).replace("**", "") + " "
              + describe(c, concurrency).replace("**", ""))
    for line in versions(comparisons):
        print(line)
    if args.record:
        env["load_end"] = common.load_averages()
        if common.regstat_fingerprint() not in env["regstat"] and not args.gc_only:
            env["changed"] = "regstat/ or sql/ changed while the benchmark ran"
        key = (f"host={env['host']} tree={prefix} latencies={args.latencies_ms} "
               f"regstat={common.regstat_key(env)}")
        record(args.results, key, render(env, bench, comparisons, key, concurrency))
        print(f"recorded in {os.path.relpath(args.results)}")
    return 0


def print_run(run: S3Run) -> None:
    label = "warm-up" if run.warmup else f"run {run.index}"
    parts = f"crawl {run.crawl:6.2f} + plan {run.plan:5.2f}" if run.tool != "gc" else " " * 26
    tool = run.tool + (" small" if run.small else "")
    print(f"  +{run.latency_ms:g} ms {label:<8} {tool:<22} {run.wall:8.2f} s  {parts}  "
          f"{run.total_requests:6d} requests (max {run.requests.get('max_inflight')} in flight)  "
          f"moto {run.moto_cpu:5.1f} CPU s  load {run.load:4.1f}  {run.check}"
          + (f"  [{run.failed}]" if run.failed else ""), flush=True)


if __name__ == "__main__":
    sys.exit(main())
