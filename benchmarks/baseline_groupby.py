#!/usr/bin/env python3
"""The essential aggregation of a report, alone: DuckDB's per-blob group-by over descriptors.

    python benchmarks/baseline_groupby.py SNAPSHOT OUT.parquet

For every blob referenced as a config or a layer: `references`, the (repository, manifest)
pairs referencing it (a blob listed twice by one manifest counts once), `repositories`,
the distinct repositories among them, and `size`. That is the least any report on
sharing must compute; bench_report.py times `regstat report` against this process
(target: the whole report <= 3x). It reads the descriptors Parquet parts directly with
DuckDB (no regstat import, no snapshot.json) and writes the aggregate to OUT.parquet, one
row per blob, so the result is materialised like a report's numbers are, not just counted.

It groups on the ids the snapshot stores, as regstat does: since schema 2 a snapshot holds
each digest once, in its table `digests`, and descriptors name the blob and the manifest by
their ids (`digest_id`, `manifest_id`; docs/snapshot.md). So the blob's key is its
`digest_id` (the output's first column), and the manifest's is its `manifest_id`; turning
the ids back into text digests is no part of this aggregation (the report does it only for
the few rows it shows). On a schema-1 snapshot (text digests in `digest` and
`manifest_digest`, e.g. to time an older commit) the same group-by runs on those columns,
and the first column is `digest`.
"""

from __future__ import annotations

import os
import sys

import duckdb

QUERY = """
SELECT
    p.{blob},
    COUNT(*) AS "references",
    COUNT(DISTINCT p.repository) AS repositories,
    MAX(p.size) AS size
FROM (
    SELECT {blob}, repository, {manifest}, MAX(size) AS size
    FROM read_parquet('{glob}')
    WHERE role IN ('config', 'layer')
    GROUP BY {blob}, repository, {manifest}
) AS p
GROUP BY p.{blob}
"""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    snapshot, output = argv
    glob = os.path.join(os.path.abspath(snapshot), "descriptors", "*.parquet").replace("'", "''")
    con = duckdb.connect()
    columns = {row[0] for row in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall()}
    # schema 2: ids (the stored form); schema 1: text digests
    blob, manifest = ("digest_id", "manifest_id") if "digest_id" in columns else ("digest", "manifest_digest")
    sql = QUERY.format(glob=glob, blob=blob, manifest=manifest)
    target = output.replace("'", "''")
    rows = con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)").fetchone()[0]
    print(f"{rows} blobs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
