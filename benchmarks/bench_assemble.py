#!/usr/bin/env python3
"""Assembly alone: peak RSS and time of `regstat.crawl.assemble` on staging tables of a known size.

The crawl's peak memory is its assembly (DuckDB joins and sorts the staging tables into the
snapshot's tables). This stages the tables a crawl would have staged for a snapshot written
by make_snapshot.py (optionally a share of its repositories), then assembles them in a fresh
process and reports its peak RSS (wait4) and CPU time, and (--compare) checks that the assembled
tables equal an earlier run's, row for row, in the readers' form (digests as text), whichever
snapshot schema each run wrote (1: digests in every table; 2: ids into `digests`).

    .venv/bin/python benchmarks/bench_assemble.py benchmarks/work/snap-d10000000-s1 --share 0.5
    .venv/bin/python benchmarks/bench_assemble.py SNAP --commit 16e89a2 --out benchmarks/work/assemble-ref
    .venv/bin/python benchmarks/bench_assemble.py SNAP --compare benchmarks/work/assemble-ref
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import shutil
import subprocess
import sys
import time

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import bench_common as common  # noqa: E402  (siblings, not a package)
from bench_common import CODE, code_env  # noqa: E402

WORK = os.path.join(os.path.dirname(os.path.abspath(__file__)), "work")

# What the crawl stages, as queries over a finished snapshot (its tables as views).
STAGING = {
    "stored_blobs": "SELECT digest, size, modified_at FROM blobs WHERE stored",
    "revisions": "SELECT repository, digest, pushed_at, last_pulled_at, locked FROM manifests",
    "tag_links": "SELECT repository, tag, digest, updated_at FROM tags",
    "roots": "SELECT repository, digest FROM manifests WHERE root",
    "layer_links": "SELECT repository, digest, linked_at FROM repository_blobs",
    "uploads": "SELECT repository, uuid, started_at, size, modified_at FROM uploads",
    "manifest_info": "SELECT DISTINCT digest, media_type, artifact_type, config_media_type, size, "
                     "subject_digest, status, CAST(NULL AS VARCHAR) AS message FROM manifests",
    "manifest_descriptors": "SELECT DISTINCT manifest_digest, role, position, digest, media_type, size, "
                            "platform, artifact_type, repeated FROM descriptors",
}
TABLES = ("repositories", "tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")


def views(con: duckdb.DuckDBPyConnection, snapshot: str, share: float) -> None:
    keyed = os.path.isdir(os.path.join(snapshot, "digests"))  # schema 2: ids into `digests`
    if keyed:
        glob = os.path.join(snapshot, "digests", "*.parquet")
        con.execute(f"CREATE VIEW all_digests AS SELECT * FROM read_parquet('{glob}')")
    for name in TABLES:
        glob = os.path.join(snapshot, name, "*.parquet")
        keys = DIGEST_COLUMNS.get(name, {}) if keyed else {}
        stored = pq.ParquetDataset(os.path.join(snapshot, name)).schema.names
        back = {v: k for k, v in keys.items()}
        columns = [f"k_{c}.digest AS {back[c]}" if c in back else f"t.{c}" for c in stored]
        if name == "descriptors" and "repeated" not in stored:  # schema 2: unknown, as readers see it
            columns.append("CAST(NULL AS BOOLEAN) AS repeated")
        joins = " ".join(f"LEFT JOIN all_digests AS k_{c} ON k_{c}.digest_id = t.{c}" for c in back)
        con.execute(f"CREATE VIEW all_{name} AS SELECT {', '.join(columns)} FROM read_parquet('{glob}') AS t {joins}")
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
from regstat.crawl.assemble import assemble
from regstat.crawl.publish import PendingSnapshot
stage, out, limit = Path(sys.argv[1]), sys.argv[2], sys.argv[3]
pending = PendingSnapshot(out, force=True)
table = pending.table
def logged(name, *args):  # the peak so far as each table starts
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024
    print(f"  {time.perf_counter() - started:6.1f} s  peak {peak} MB  {name}", file=sys.stderr, flush=True)
    return table(name, *args)
pending.table = logged
started = time.perf_counter()
options = {"memory_limit": limit} if limit else {}
counts, problems = assemble(stage, pending, lambda repository, digest: digest, **options)
print(counts, len(problems), f"{time.perf_counter() - started:.1f} s wall", file=sys.stderr)
pending.table("repositories").close()
try:  # a placeholder snapshot.json; --commit may time a regstat from before SnapshotInfo
    from regstat.snapshot import SnapshotInfo
    pending.publish(SnapshotInfo(schema_version=0))
except ImportError:
    pending.publish({"format": "none"})
"""


# The snapshot tables' digest columns (readers' name -> stored id column), as in
# regstat.snapshot.DIGEST_COLUMNS (not imported: --commit may time a schema without it).
DIGEST_COLUMNS = {
    "tags": {"digest": "digest_id"},
    "manifests": {"digest": "digest_id", "subject_digest": "subject_id"},
    "descriptors": {"manifest_digest": "manifest_id", "digest": "digest_id"},
    "blobs": {"digest": "digest_id"},
    "repository_blobs": {"digest": "digest_id"},
}
COMPARED = ("tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")


class Readers:
    """The tables of an assembled directory in the readers' form, a column at a time and in
    the order of the files: schema 1 as it is, schema 2 with each id looked up in `digests`
    (checked to be numbered 0, 1, ... in the digests' order)."""

    def __init__(self, directory: str) -> None:
        self.directory = directory
        self.digests: pa.ChunkedArray | None = None
        if os.path.isdir(os.path.join(directory, "digests")):
            table = pq.ParquetDataset(os.path.join(directory, "digests")).read()
            ids, digests = table.column("digest_id"), table.column("digest")
            if not ids.equals(pa.chunked_array([pa.array(range(len(ids)), pa.int64())])):
                raise SystemExit(f"{directory}: digests.digest_id is not 0, 1, ...")
            if len(digests) > 1 and not pc.all(pc.less(digests[:-1], digests[1:])).as_py():
                raise SystemExit(f"{directory}: digests are not in increasing order")
            self.digests = digests.combine_chunks()

    def columns(self, name: str) -> list[str]:
        stored = pq.ParquetDataset(os.path.join(self.directory, name)).schema.names
        if self.digests is None:
            return stored
        back = {v: k for k, v in DIGEST_COLUMNS.get(name, {}).items()}
        return [back.get(c, c) for c in stored]

    def column(self, name: str, column: str) -> pa.ChunkedArray:
        dataset = pq.ParquetDataset(os.path.join(self.directory, name))
        if self.digests is None or column not in DIGEST_COLUMNS.get(name, {}):
            return dataset.read([column]).column(0)
        ids = dataset.read([DIGEST_COLUMNS[name][column]]).column(0)
        return pc.take(self.digests, ids)


def compare(out: str, reference: str) -> list[str]:
    """Tables of `out` that differ from `reference`'s (same rows in the same order, digests as
    text), a column at a time."""
    wrong = []
    a, b = Readers(out), Readers(reference)
    for name in COMPARED:
        columns = a.columns(name)
        if columns != b.columns(name):
            wrong.append(f"{name}: columns {columns} != {b.columns(name)}")
            continue
        for column in columns:
            x, y = a.column(name, column), b.column(name, column)
            if x.type != y.type or not x.equals(y):
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
    parser.add_argument("--memory-limit", help="DuckDB's memory_limit for the assembly (default: assemble's)")
    common.add_commit_option(parser)
    args = parser.parse_args()
    if args.commit:
        common.export_commit(args.commit, WORK)
    if args.restage or not os.path.isdir(args.stage):
        started = time.perf_counter()
        # In a process of its own: a child's peak RSS (wait4) starts from its parent's RSS when
        # it is forked, and staging leaves this process holding gigabytes (seen: 3.5 GB peaks).
        staging = multiprocessing.get_context("spawn").Process(
            target=stage, args=(args.snapshot, args.share, args.stage))
        staging.start()
        staging.join()
        if staging.exitcode != 0:
            raise SystemExit(f"staging failed (exit {staging.exitcode})")
        print(f"staged in {time.perf_counter() - started:.0f} s", flush=True)
    out = os.path.abspath(args.out)
    shutil.rmtree(out, ignore_errors=True)
    load = os.getloadavg()
    started = time.perf_counter()
    proc = subprocess.Popen([sys.executable, "-c", _CHILD, args.stage, out, args.memory_limit or ""],
                            cwd=CODE["dir"], env=code_env())
    _, status, usage = os.wait4(proc.pid, 0)
    wall = time.perf_counter() - started
    print(f"regstat at {CODE['commit'] or 'the working tree'}: "
          f"exit {os.waitstatus_to_exitcode(status)}: peak RSS {usage.ru_maxrss / 1024:.0f} MB, "
          f"CPU {usage.ru_utime + usage.ru_stime:.1f} s, wall {wall:.1f} s, "
          f"load {load[0]:.2f} {load[1]:.2f} {load[2]:.2f}")
    if args.compare and os.waitstatus_to_exitcode(status) == 0:
        wrong = compare(out, args.compare)
        print("output: " + ("; ".join(wrong) if wrong else f"identical to {args.compare}, row for row"))
    return 0


if __name__ == "__main__":
    resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
    sys.exit(main())
