"""`regstat sql` and `regstat export-db`: queries over a snapshot, and the snapshot as a DuckDB file."""

from __future__ import annotations

import sys

import click

from ..analysis import describe, query, query_arrow
from ..analysis.export import export_db, write_parquet, write_text
from ..errors import RegstatError
from ..render import rows_csv, rows_json, rows_table
from ..snapshot import Snapshot
from ..snapshot.outputs import check_file_output
from .edge import fail, interruptible


@click.command("sql")
@click.argument("snapshot")
@click.argument("sql", required=False)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="parquet needs --output.",
)
@click.option("-o", "--output", metavar="FILE",
              help="Write the result to FILE (atomically; never inside a snapshot or its local SOURCE).")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@interruptible
def sql_command(snapshot: str, sql: str | None, fmt: str, output: str | None, memory_limit: str | None) -> None:
    """Run a read-only DuckDB SQL query over SNAPSHOT; without SQL, list the tables and views.

    Every snapshot table is a view by its name: repositories, tags, manifests, descriptors,
    blobs, repository_blobs, uploads; `errors` holds the crawl's recorded errors and
    `snapshot_info` (one row) its id, source and times (taken_at: when it finished). The
    table `reachable` holds the manifests tags (and an OCI layout's unnamed index.json
    entries) reach (computed only when a query reads it),
    and the analysis views are manifest_edges, manifest_references, repository_references,
    blob_references, manifest_exclusive_bytes, orphan_reasons, orphaned_manifests, unreferenced_blobs, layer_sharing, dedup_summary,
    repository_usage, media_types, largest_layers and stale_uploads. SQL `-` reads the query from standard
    input. Only one SELECT (or EXPLAIN of one) runs: COPY, CREATE, ATTACH and the like are
    refused, so the snapshot is never changed. --format json prints one JSON array of
    objects; --format parquet writes --output FILE.

    \b
    Examples:
      regstat sql snap
      regstat sql snap "SELECT repository, count(*) FROM tags GROUP BY 1"
      regstat sql snap "SELECT * FROM manifests WHERE subject_digest IS NOT NULL" -f json
      echo "SELECT sum(size) FROM blobs WHERE stored" | regstat sql snap -
      regstat sql snap "SELECT * FROM media_types"
      regstat sql snap "SELECT * FROM layer_sharing" -f parquet -o sharing.parquet
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    if sql == "-":
        sql = sys.stdin.read()
    try:
        opened = Snapshot.open(snapshot)
        if output:
            check_file_output(opened, output)  # before the query, which may take minutes
        if fmt == "parquet":
            table = describe(opened) if sql is None else query_arrow(opened, sql, memory_limit=memory_limit)
            write_parquet(opened, output, table)
            return
        if sql is None:
            listing = describe(opened)
            columns, rows = listing.column_names, [tuple(r.values()) for r in listing.to_pylist()]
        else:
            columns, rows = query(opened, sql, memory_limit=memory_limit)
        text = {"table": rows_table, "csv": rows_csv, "json": rows_json}[fmt](columns, rows)
        if output:
            write_text(opened, output, text + "\n" if fmt == "json" else text)
        else:
            click.echo(text, nl=fmt == "json")
    except RegstatError as e:
        fail(e)


@click.command("export-db")
@click.argument("snapshot")
@click.argument("file")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@interruptible
def export_db_command(snapshot: str, file: str, force: bool, memory_limit: str | None) -> None:
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
    try:
        path = export_db(Snapshot.open(snapshot), file, force=force, memory_limit=memory_limit)
    except RegstatError as e:
        fail(e)
    click.echo(f"regstat: wrote {path}", err=True)
