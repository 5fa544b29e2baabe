"""`regstat report`: a snapshot summarised."""

from __future__ import annotations

import click

from pathlib import Path

from ..report import build_report, build_trends, render_prometheus, render_report, render_trends
from ..snapshot import history
from .edge import interruptible
from .emit import check_output, emit
from ..analysis.engine import SparkOptions
from .options import (
    command,
    engine_options,
    format_options,
    memory_limit_option,
    open_snapshot,
    quiet_option,
    repository_option,
)


@command("report")
@click.argument("snapshot")
@format_options(["text", "json", "markdown", "html", "prometheus", "csv"],
                output_help="Write the report to FILE (atomically, replacing it) instead of stdout; never inside a "
                "snapshot or its local SOURCE.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True,
              help="Rows in each top list; repositories in prometheus metrics and --history charts.")
@click.option("--history", "over_time", is_flag=True,
              help="SNAPSHOT is a history (crawl --into): its figures over time, every snapshot in it "
              "(formats text, json, csv, html).")
@repository_option("Show only these repositories' rows (repeatable; `*` matches `/` too); every other figure "
                   "stays registry-wide, and the report says so.")
@memory_limit_option
@engine_options
@quiet_option
@interruptible
def report_command(snapshot: str, fmt: str, output: str | None, top: int, over_time: bool,
                   repositories: tuple[str, ...], memory_limit: str | None, engine: str, spark: SparkOptions | None,
                   quiet: bool) -> None:
    """Summarise SNAPSHOT: where the storage goes, what sharing saves, what can go.

    First the headline, reclaimable now: what `plan-gc --untagged` with the default grace
    (24h) would free (orphaned manifests' blobs, unreferenced blobs, stale uploads), by the
    planner's rules, marked as an estimate where plan-gc's is. Then physical, logical and
    dedup-saved bytes; orphaned manifests and the bytes deleting all of them would free;
    unreferenced blobs; stale uploads; per-repository usage; the largest and most shared
    layers and orphaned space by repository. What the source could not see (the registry
    API sees no untagged manifests, API and ECR no stored blobs) is shown as unknown or as
    an estimate, never as zero; an incomplete or partial snapshot says so once, at the top.
    --format html writes one self-contained page with charts. --repository limits the rows
    per repository (usage, orphaned space by repository); the headline, totals, layer lists
    and uploads stay registry-wide, as a warning at the top says.

    --format prometheus writes the figures as Prometheus metrics (text format 0.0.4, for
    node_exporter's textfile collector: regstat_physical_bytes, regstat_reclaimable_bytes,
    regstat_repository_exclusive_bytes{repository=...} for the --top largest, ...).

    SNAPSHOT may be a history written by `crawl --into` (its latest snapshot), HISTORY@-1 (the
    one before) or HISTORY@2026-12-01 (the last taken on or before that day, UTC). With
    --history, the report covers every snapshot of HISTORY: physical, logical, orphaned and
    reclaimable bytes, manifests and tags over time, and the --top largest repositories'
    exclusive bytes; html draws them as line charts, json and csv are for dashboards. Each
    snapshot is analysed once: its figures are kept in HISTORY/.regstat/.

    \b
    Examples:
      regstat report snap
      regstat report snap --format json | jq .reclaimable_now_bytes
      regstat report snap --format markdown --top 5
      regstat report snap --format html --output report.html
      regstat report snap -r 'apps/*'
      regstat report /srv/regstat/history -f prometheus -o /var/lib/prometheus/node-exporter/regstat.prom
      regstat report /srv/regstat/history@-1
      regstat report /srv/regstat/history --history -f html -o trends.html
      regstat report snap --engine spark --spark-conf spark.driver.memory=8g
      regstat report s3a://bucket/snaps/latest --engine spark --spark-master yarn
    """
    if over_time:
        if fmt in ("markdown", "prometheus") or repositories:
            raise click.UsageError("--history writes text, json, csv or html, over every repository")
        if engine != "duckdb":
            raise click.UsageError("--history runs on DuckDB: drop --engine")
        if not history.is_history(Path(snapshot)):
            raise click.UsageError(f"{snapshot}: not a snapshot history (a directory written by crawl --into)")
    elif fmt == "csv":
        raise click.UsageError("--format csv is for --history (a history's figures over time)")
    opened = open_snapshot(snapshot, spark)  # with --history: its latest, which outputs are checked against
    check_output(opened, output)
    if over_time:
        trends = build_trends(Path(snapshot), top=top, memory_limit=memory_limit)
        emit(opened, output, render_trends(trends, fmt))
        return
    report = build_report(opened, top=top, memory_limit=memory_limit, repositories=repositories,
                          engine_name=engine, spark=spark)
    emit(opened, output, render_prometheus(report, opened.info) if fmt == "prometheus" else render_report(report, fmt))
