#!/usr/bin/env python3
"""The essential aggregation of a report, alone: DuckDB's per-blob group-by over descriptors.

    python benchmarks/baseline_groupby.py SNAPSHOT OUT.parquet

For every blob referenced as a config or a layer: `references`, the (repository, manifest)
pairs referencing it (a blob listed twice by one manifest counts once), `repositories`,
the distinct repositories among them, and `size`. That is the least any report on
sharing must compute; bench_report.py times `regstat report` against this process
(target: the whole report <= 3x). It reads the descriptors Parquet parts directly with
DuckDB (no regstat import, no snapshot.json) and writes the aggregate to OUT.parquet, so
the result is materialised like a report's numbers are, not just counted.
"""

from __future__ import annotations

import os
import sys

import duckdb

QUERY = """
SELECT
    p.digest,
    COUNT(*) AS "references",
    COUNT(DISTINCT p.repository) AS repositories,
    MAX(p.size) AS size
FROM (
    SELECT digest, repository, manifest_digest, MAX(size) AS size
    FROM read_parquet('{glob}')
    WHERE role IN ('config', 'layer')
    GROUP BY digest, repository, manifest_digest
) AS p
GROUP BY p.digest
"""


def main(argv: list[str]) -> int:
    if len(argv) != 2:
        print(__doc__.strip().split("\n\n")[1], file=sys.stderr)
        return 2
    snapshot, output = argv
    glob = os.path.join(os.path.abspath(snapshot), "descriptors", "*.parquet")
    con = duckdb.connect()
    sql = QUERY.format(glob=glob.replace("'", "''"))
    target = output.replace("'", "''")
    rows = con.execute(f"COPY ({sql}) TO '{target}' (FORMAT parquet)").fetchone()[0]
    print(f"{rows} blobs")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
