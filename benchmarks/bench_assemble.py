#!/usr/bin/env python3
"""Assembly alone: peak RSS and time of `regstat.assemble` on staging tables of a known size.

The crawl's peak memory is its assembly (DuckDB joins and sorts the staging tables into the
snapshot's tables). This stages the tables a crawl would have staged for a snapshot written
by make_snapshot.py (optionally a share of its repositories), then assembles them in a fresh
process and reports its peak RSS (wait4) and CPU time, and checks that the assembled tables
equal the snapshot's, row for row.

    .venv/bin/python benchmarks/bench_assemble.py benchmarks/work/snap-d10000000-s1 --share 0.5
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import subprocess
import sys
import time

import duckdb
import pyarrow.parquet as pq

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")
CODE = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

# What the crawl stages, as queries over a finished snapshot (its tables as views).
STAGING = {
    "stored_blobs": "SELECT digest, size, modified_at FROM blobs WHERE stored",
    "revisions": "SELECT repository, digest, pushed_at, last_pulled_at, locked FROM manifests",
    "tag_links": "SELECT repository, tag, digest, updated_at FROM tags",
    "layer_links": "SELECT repository, digest, linked_at FROM repository_blobs",
    "uploads": "SELECT repository, uuid, started_at, size, modified_at FROM uploads",
    "manifest_info": "SELECT DISTINCT digest, media_type, artifact_type, config_media_type, size, "
                     "subject_digest, status, CAST(NULL AS VARCHAR) AS message FROM manifests",
    "manifest_descriptors": "SELECT DISTINCT manifest_digest, role, position, digest, media_type, size, "
                            "platform, artifact_type FROM descriptors",
}
TABLES = ("repositories", "tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")


def views(con: duckdb.DuckDBPyConnection, snapshot: str, share: float) -> None:
    for name in TABLES:
        glob = os.path.join(snapshot, name, "*.parquet")
        con.execute(f"CREATE VIEW all_{name} AS SELECT * FROM read_parquet('{glob}')")
    # a share of the repositories (by a hash of the name), and the blobs their manifests name
    keep = f"(hash(repository) % 1000) < {int(share * 1000)}"
    for name in ("tags", "manifests", "descriptors", "repository_blobs", "uploads", "repositories"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM all_{name} WHERE {keep}")
    con.execute("CREATE VIEW blobs AS SELECT * FROM all_blobs AS b WHERE (hash(b.digest) % 1000) < "
                f"{int(share * 1000)} OR EXISTS (SELECT 1 FROM descriptors AS d WHERE d.digest = b.digest) "
                "OR EXISTS (SELECT 1 FROM manifests AS m WHERE m.digest = b.digest)")


def stage(snapshot: str, share: float, directory: str) -> None:
    shutil.rmtree(directory, ignore_errors=True)
    con = duckdb.connect(config={"memory_limit": "4GB", "preserve_insertion_order": False})
    views(con, snapshot, share)
    for name, query in STAGING.items():
        os.makedirs(os.path.join(directory, name))
        con.execute(f"COPY ({query}) TO '{os.path.join(directory, name, 'part-00000.parquet')}' "
                    "(FORMAT PARQUET, ROW_GROUP_SIZE 20000)")
    con.close()


_CHILD = """
import resource, sys, time
from pathlib import Path
from regstat.assemble import assemble
from regstat.snapshot import PendingSnapshot
stage, out = Path(sys.argv[1]), sys.argv[2]
pending = PendingSnapshot(out, force=True)
table = pending.table
def logged(name, *args):  # the peak so far as each table starts
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"  {time.perf_counter() - started:6.1f} s  peak {peak} MB  {name}", file=sys.stderr, flush=True)
    return table(name, *args)
pending.table = logged
started = time.perf_counter()
counts, problems = assemble(stage, pending, lambda repository, digest: digest)
print(counts, len(problems), f"{time.perf_counter() - started:.1f} s wall", file=sys.stderr)
pending.table("repositories").close()
pending.publish({"format": "none"})
"""


def compare(out: str, reference: str) -> list[str]:
    """Tables of `out` that differ from `reference`'s (same rows in the same order), a column
    at a time."""
    wrong = []
    for name in ("tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads"):
        a, b = (pq.ParquetDataset(os.path.join(d, name)) for d in (out, reference))
        for column in a.schema.names:
            if not a.read([column]).column(0).equals(b.read([column]).column(0)):
                wrong.append(f"{name}.{column} differs")
    return wrong


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("snapshot")
    parser.add_argument("--share", type=float, default=1.0, help="share of the repositories (default 1)")
    parser.add_argument("--stage", default=os.path.join(WORK, "assemble-stage"))
    parser.add_argument("--restage", action="store_true", help="stage again even if --stage exists")
    parser.add_argument("--out", default=os.path.join(WORK, "assemble-out"), help="the assembled tables")
    parser.add_argument("--compare", metavar="DIR", help="an earlier --out: check the tables are identical")
    args = parser.parse_args()
    if args.restage or not os.path.isdir(args.stage):
        started = time.perf_counter()
        stage(args.snapshot, args.share, args.stage)
        print(f"staged in {time.perf_counter() - started:.0f} s", flush=True)
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, args.stage, out], cwd=CODE)
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    print(f"exit {os.waitstatus_to_exitcode(status)}: peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
          f"CPU {usage.ru_utime + usage.ru_stime:.1f} s, wall {wall:.1f} s, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.compare and os.waitstatus_to_exitcode(status) == 0:
        wrong = compare(out, args.compare)
        print("output: " + ("; ".join(wrong) if wrong else f"identical to {args.compare}, row for row"))
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
