#!/usr/bin/env python3
"""Time an incremental crawl (`crawl --previous SNAP`) against the first crawl, side by side.

Three sources, each crawled twice in one run: first a crawl that reads everything, then one
with --previous pointing at the first snapshot, on the unchanged registry. Target (issue 19):
the second crawl at least 5x faster, and no manifest read (`manifests_read` of its --json,
and for S3 and the API the requests counted at a proxy).

- disk: the storage tree of make_tree.py (5,000 repositories by default);
- s3: make_tree.py's tree in a moto_server bucket (bench_s3.py's, 91 repositories), through
  benchmarks/latency_proxy.py adding 20 ms to every request;
- api: docker-registry serving a make_tree.py tree with about 1,000 tags, crawled through
  the same proxy (no added latency).

    .venv/bin/python benchmarks/bench_incremental.py                 # all three
    .venv/bin/python benchmarks/bench_incremental.py --only disk --repositories 1000

It prints a Markdown section; --record inserts it into RESULTS.md.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
from pathlib import Path

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
sys.path.insert(0, os.path.join(os.path.dirname(HERE), "tests"))

import bench_common as common  # noqa: E402  (siblings, not a package)
import make_tree  # noqa: E402
from bench_common import CODE, code_env, timed  # noqa: E402
from latency_proxy import LatencyProxy  # noqa: E402
from support.components import MotoServer, Registry, isolated_env  # noqa: E402  (tests/support)

TARGET = 5.0
ANCHOR = "<!-- bench_incremental.py inserts sections below this line -->\n"
PART_HEADER = f"""\
# Incremental crawls: the second crawl (`--previous`) vs the first

`regstat crawl SOURCE -o first` then `regstat crawl SOURCE -o second --previous first` on the
unchanged registry, timed by `benchmarks/bench_incremental.py`. **Target (issue 19): first /
second >= {TARGET:g}, and the second reads no manifest.** Newest section first.

{ANCHOR}"""
SECTION_START = "<!-- incremental-result {key} -->"
SECTION_END = "<!-- /incremental-result -->"


def regstat_env() -> dict[str, str]:
    env = dict(code_env(), **{k: v for k, v in isolated_env().items() if k.startswith("AWS_")})
    for name in ("AWS_CA_BUNDLE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3", "AWS_PROFILE"):
        env.pop(name, None)
    return env


def crawl_twice(name: str, source: str, work: Path, extra: list[str], proxy: LatencyProxy | None) -> dict:
    """The first crawl, then the incremental one; their walls, work counts and proxy counts."""
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    runs = {}
    for run, more in (("first", []), ("second", ["--previous", str(work / "first")])):
        argv = [sys.executable, "-m", "regstat", "crawl", source, "-o", str(work / run), "--json", *extra, *more]
        out, err = str(work / f"{run}.stdout"), str(work / f"{run}.stderr")
        if proxy is not None:
            proxy.counts.reset()
        load = os.getloadavg()[0]
        rc, wall, user, system, rss, failure = timed(argv, stdout=out, stderr=err, cwd=CODE["dir"],
                                                     env=regstat_env())
        if failure and rc != 3:
            raise SystemExit(f"{name} {run} crawl failed: {failure}\n{common.tail(err)}")
        summary = json.loads(Path(out).read_text())
        runs[run] = {
            "wall": wall, "user": user, "sys": system, "rss_mb": rss, "load": load,
            "manifests_read": summary["manifests_read"], "manifests_reused": summary["manifests_reused"],
            "manifests": summary["counts"]["manifests"], "errors": summary["errors"],
            "requests": proxy.counts.snapshot()["requests"] if proxy is not None else None,
        }
        print(f"  {name} {run}: {wall:.2f} s wall, {user:.2f} s user, read {summary['manifests_read']}, "
              f"reused {summary['manifests_reused']}" + (f", requests {runs[run]['requests']}" if proxy else ""),
              flush=True)
    runs["ratio"] = runs["first"]["wall"] / runs["second"]["wall"]
    return runs


def bench_disk(args: argparse.Namespace, work: Path) -> dict:
    root = work / f"tree-{args.repositories}"
    if not (root / "docker").is_dir():
        make_tree.make_tree(str(root), seed=1, repositories=args.repositories, pushes=8.0, base_images=20,
                            jobs=2, replace=True)
    summary = json.loads(Path(make_tree.summary_path(str(root))).read_text())
    result = crawl_twice("disk", str(root), work / "disk", [], None)
    # The floor of any crawl that lists the tree fresh: walking it, reading nothing (find, in C).
    _, result["floor"], *_ = timed(["find", f"{root}/", "-type", "f"], stdout=os.devnull, stderr=os.devnull)
    print(f"  disk listing floor (find): {result['floor']:.2f} s", flush=True)
    result["what"] = f"{summary['repositories']:,} repositories, {summary['manifest_blobs']:,} manifests, " \
                     f"{summary['files']:,} files"
    return result


def bench_s3(args: argparse.Namespace, work: Path) -> dict:
    (work / "moto-log").mkdir(exist_ok=True)
    # boto3 in this process (the upload) gets the dummy credentials, never real ones.
    for name in ("AWS_CA_BUNDLE", "AWS_PROFILE", "AWS_DEFAULT_PROFILE", "AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_S3"):
        os.environ.pop(name, None)
    os.environ.update({k: v for k, v in isolated_env().items() if k.startswith("AWS_")})
    with MotoServer(work / "moto-log") as moto:
        moto.client("s3").create_bucket(Bucket="regstat-incremental")
        location = "s3://regstat-incremental/reg"
        summary = make_tree.make_bucket(location, endpoint_url=moto.endpoint_url, seed=10,
                                        repositories=args.s3_repositories, pushes=8.0, base_images=20, jobs=4)
        with LatencyProxy(moto.endpoint_url, delay=args.latency_ms / 1000) as proxy:
            result = crawl_twice("s3", location, work / "s3", ["--endpoint-url", proxy.endpoint_url], proxy)
    result["what"] = f"{summary['repositories']:,} repositories, {summary['manifest_blobs']:,} manifests, " \
                     f"{summary['files']:,} keys, +{args.latency_ms:g} ms a request"
    return result


def bench_api(args: argparse.Namespace, work: Path) -> dict:
    root = work / f"api-tree-{args.api_repositories}"
    if not (root / "docker").is_dir():
        make_tree.make_tree(str(root), seed=3, repositories=args.api_repositories, pushes=8.0, base_images=20,
                            jobs=2, replace=True)
    summary = json.loads(Path(make_tree.summary_path(str(root))).read_text())
    with Registry(root=root, workdir=work / "registry") as registry, LatencyProxy(registry.url) as proxy:
        result = crawl_twice("api", proxy.endpoint_url, work / "api", [], proxy)
    result["what"] = f"{summary['repositories']:,} repositories, {summary['tags']:,} tags"
    return result


def _floor(result: dict) -> str:
    """A bare walk of the tree (disk); for the APIs the requests that stay (listings, one
    request a tag) say the same: the second crawl cannot be faster than those."""
    if "floor" not in result:
        return ""
    return f"{result['floor']:.2f}: {result['first']['wall'] / result['floor']:.2f}"


def render(env: dict[str, str], results: dict[str, dict], key: str) -> str:
    lines = [SECTION_START.format(key=key), f"## {env['date']}", ""]
    lines += ["| | |", "|---|---|", *common.environment_rows(env, ("load (`uptime`)", "uptime")), ""]
    lines += ["| source | registry | first s | second s | ratio (target >= 5) | manifests read: first / second "
              "| reused | requests first / second | listing floor s: best possible ratio |",
              "|---|---|---:|---:|---:|---|---:|---|---|"]
    for name, r in results.items():
        first, second = r["first"], r["second"]
        requests = "" if first["requests"] is None else \
            f"{sum(first['requests'].values()):,} / {sum(second['requests'].values()):,}"
        verdict = f"{r['ratio']:.2f}" + ("" if r["ratio"] >= TARGET else " (missed)")
        lines.append(f"| {name} | {r['what']} | {first['wall']:.2f} | {second['wall']:.2f} | {verdict} | "
                     f"{first['manifests_read']:,} / {second['manifests_read']:,} | {second['manifests_reused']:,} "
                     f"| {requests} | {_floor(r)} |")
    lines += ["", SECTION_END, ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("disk", "s3", "api"), action="append")
    parser.add_argument("--repositories", type=int, default=5000, help="disk tree (default 5000)")
    parser.add_argument("--s3-repositories", type=int, default=91, help="S3 bucket (default 91, bench_s3.py's)")
    parser.add_argument("--api-repositories", type=int, default=140, help="API registry (default 140: ~1,000 tags)")
    parser.add_argument("--latency-ms", type=float, default=20.0, help="added to every S3 request (default 20)")
    parser.add_argument("--work", default=os.path.join(common.DEFAULT_WORK, "incremental"))
    parser.add_argument("--record", action="store_true", help="insert the section into RESULTS.md")
    args = parser.parse_args(argv)
    work = Path(args.work)
    work.mkdir(parents=True, exist_ok=True)
    benches = {"disk": bench_disk, "s3": bench_s3, "api": bench_api}
    results = {name: benches[name](args, work) for name in (args.only or list(benches))}
    env = common.environment(os.uname().nodename, common.git_commit(("regstat", "sql"), "regstat/ or sql/"))
    env["uptime"] = common.sh(["uptime"])
    section = render(env, results, f"{env['host']} {','.join(results)}")
    print(section)
    if args.record:
        common.record(common.DEFAULT_RESULTS, section, start_marker=SECTION_START.format(key=f"{env['host']} "
                      f"{','.join(results)}"), end_marker=SECTION_END, anchor=ANCHOR, new_file=PART_HEADER,
                      new_part=PART_HEADER)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
