"""`regstat report`: a snapshot summarised."""

from __future__ import annotations

import click

from ..analysis.export import write_text
from ..errors import RegstatError
from ..report import build_report, render_report
from ..snapshot import Snapshot
from ..snapshot.outputs import check_file_output
from .edge import fail, interruptible


@click.command("report")
@click.argument("snapshot")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "html"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE",
              help="Write the report to FILE (atomically, replacing it) instead of stdout; never inside a "
              "snapshot or its local SOURCE.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Rows in each top list.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@interruptible
def report_command(snapshot: str, fmt: str, output: str | None, top: int, memory_limit: str | None) -> None:
    """Summarise SNAPSHOT: where the storage goes, what sharing saves, what can go.

    First the headline, reclaimable now: what `plan-gc --untagged` with the default grace
    (24h) would free (orphaned manifests' blobs, unreferenced blobs, stale uploads), by the
    planner's rules, marked as an estimate where plan-gc's is. Then physical, logical and
    dedup-saved bytes; orphaned manifests and the bytes deleting all of them would free;
    unreferenced blobs; stale uploads; per-repository usage; the largest and most shared
    layers and orphaned space by repository. What the source could not see (the registry
    API sees no untagged manifests, API and ECR no stored blobs) is shown as unknown or as
    an estimate, never as zero; an incomplete or partial snapshot says so once, at the top.
    --format html writes one self-contained page with charts.

    \b
    Examples:
      regstat report snap
      regstat report snap --format json | jq .reclaimable_now_bytes
      regstat report snap --format markdown --top 5
      regstat report snap --format html --output report.html
    """
    try:
        opened = Snapshot.open(snapshot)
        if output:
            check_file_output(opened, output)  # before the analysis, which may take minutes
        text = render_report(build_report(opened, top=top, memory_limit=memory_limit), fmt)
        if output:
            write_text(opened, output, text)
        else:
            click.echo(text, nl=False)
    except RegstatError as e:
        fail(e)
