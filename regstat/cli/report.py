"""`regstat report`: a snapshot summarised."""

from __future__ import annotations

import click

from ..report import build_report, render_report
from ..snapshot import Snapshot
from .edge import interruptible
from .emit import check_output, emit
from .options import command, format_options, memory_limit_option, quiet_option, repository_option


@command("report")
@click.argument("snapshot")
@format_options(["text", "json", "markdown", "html"],
                output_help="Write the report to FILE (atomically, replacing it) instead of stdout; never inside a "
                "snapshot or its local SOURCE.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Rows in each top list.")
@repository_option("Show only these repositories' rows (repeatable; `*` matches `/` too); every other figure "
                   "stays registry-wide, and the report says so.")
@memory_limit_option
@quiet_option
@interruptible
def report_command(snapshot: str, fmt: str, output: str | None, top: int, repositories: tuple[str, ...],
                   memory_limit: str | None, quiet: bool) -> None:
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

    \b
    Examples:
      regstat report snap
      regstat report snap --format json | jq .reclaimable_now_bytes
      regstat report snap --format markdown --top 5
      regstat report snap --format html --output report.html
      regstat report snap -r 'apps/*'
    """
    opened = Snapshot.open(snapshot)
    check_output(opened, output)
    report = build_report(opened, top=top, memory_limit=memory_limit, repositories=repositories)
    emit(opened, output, render_report(report, fmt))
