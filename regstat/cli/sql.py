"""`regstat sql` and `regstat export-db`: queries over a snapshot, and the snapshot as a DuckDB file."""

from __future__ import annotations

import sys

import click

from ..analysis import describe, query, query_arrow
from ..analysis.export import export_db
from ..render import rows_csv, rows_json, rows_table
from .edge import interruptible, note
from .emit import check_output, emit
from .options import command, format_options, memory_limit_option, open_snapshot, quiet_option, repository_option


@command("sql")
@click.argument("snapshot")
@click.argument("sql", required=False)
@format_options(["text", "table", "csv", "json", "parquet"],
                help="table is another name for text. parquet needs --output.",
                output_help="Write the result to FILE (atomically; never inside a snapshot or its local SOURCE).")
@repository_option("Only the result rows whose `repository` column matches (repeatable; `*` matches `/` "
                   "too); a query without that column is refused.")
@memory_limit_option
@quiet_option
@interruptible
def sql_command(snapshot: str, sql: str | None, fmt: str, output: str | None, repositories: tuple[str, ...],
                memory_limit: str | None, quiet: bool) -> None:
    """Run a read-only DuckDB SQL query over SNAPSHOT; without SQL, list the tables and views.

    Every snapshot table is a view by its name: repositories, tags, manifests, descriptors,
    blobs, repository_blobs, uploads; `errors` holds the crawl's recorded errors and
    `snapshot_info` (one row) its id, source and times (taken_at: when it finished). The table
    `reachable` holds the manifests tags (and an OCI layout's unnamed index.json entries)
    reach (computed only when a query reads it), and the analysis views are manifest_edges,
    manifest_references, repository_references, blob_references, manifest_exclusive_bytes,
    orphan_reasons, orphaned_manifests, unreferenced_blobs, layer_sharing, dedup_summary,
    repository_usage, media_types, largest_layers and stale_uploads. SQL `-` reads the query
    from standard input. Only one SELECT (or EXPLAIN of one) runs: COPY, CREATE, ATTACH and
    the like are refused, so the snapshot is never changed. --format json prints one JSON
    array of objects; --format parquet writes --output FILE. --repository keeps the rows whose
    `repository` column it selects (the query itself sees every repository: a sum over all of
    them stays one); a query with no such column is refused (exit code 2).

    \b
    Examples:
      regstat sql snap
      regstat sql snap "SELECT repository, count(*) FROM tags GROUP BY 1"
      regstat sql snap "SELECT * FROM manifests WHERE subject_digest IS NOT NULL" -f json
      echo "SELECT sum(size) FROM blobs WHERE stored" | regstat sql snap -
      regstat sql snap "SELECT * FROM media_types"
      regstat sql snap "SELECT * FROM layer_sharing" -f parquet -o sharing.parquet
      regstat sql snap "SELECT repository, tag FROM tags" -r 'apps/*' -f csv
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    if sql is None and repositories:
        raise click.UsageError("--repository filters a query's rows: give SQL too")
    if sql == "-":
        sql = sys.stdin.read()
    opened = open_snapshot(snapshot)
    check_output(opened, output)
    if fmt == "parquet":
        table = describe(opened) if sql is None else query_arrow(opened, sql, memory_limit=memory_limit,
                                                                 repositories=repositories)
        emit(opened, output, table)
        return
    if sql is None:
        listing = describe(opened)
        columns, rows = listing.column_names, [tuple(r.values()) for r in listing.to_pylist()]
    else:
        columns, rows = query(opened, sql, memory_limit=memory_limit, repositories=repositories)
    text = {"text": rows_table, "table": rows_table, "csv": rows_csv, "json": rows_json}[fmt](columns, rows)
    emit(opened, output, text + "\n" if fmt == "json" else text)


@command("export-db")
@click.argument("snapshot")
@click.argument("file")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@memory_limit_option
@quiet_option
@interruptible
def export_db_command(snapshot: str, file: str, force: bool, memory_limit: str | None, quiet: bool) -> None:
    """Write SNAPSHOT as a DuckDB database FILE, for DBeaver, the duckdb CLI or notebooks.

    FILE holds copies of the snapshot's tables, errors, snapshot_info and reachable, and the
    analysis views (the same as `regstat sql`); it no longer needs SNAPSHOT. It is written
    under a temporary name and renamed when whole; an existing FILE is replaced only with
    --force, and never a directory. FILE may not lie inside a snapshot or the local SOURCE the
    snapshot was crawled from (exit code 5).

    \b
    Examples:
      regstat export-db snap snap.duckdb
      duckdb -readonly snap.duckdb "SELECT * FROM repository_usage"
      regstat export-db snap /srv/exports/latest.duckdb --force
    """
    path = export_db(open_snapshot(snapshot), file, force=force, memory_limit=memory_limit)
    note(quiet, f"wrote {path}")
