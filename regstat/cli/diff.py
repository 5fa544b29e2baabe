"""`regstat diff`: what changed between two snapshots of one source."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_GROWTH
from ..report import build_diff, check_same_source, render_diff
from ..report.diff import DEFAULT_TOP
from ..report.diff_common import headline
from .edge import interruptible, note
from .emit import check_output, emit
from .options import (
    SIZE,
    command,
    format_options,
    memory_limit_option,
    open_snapshot,
    quiet_option,
    repository_option,
)


@command("diff")
@click.argument("old")
@click.argument("new")
@format_options(["text", "json", "markdown", "html"],
                output_help="Write the diff to FILE (atomically, replacing it) instead of stdout; never inside a "
                "snapshot or its local SOURCE.")
@click.option("--top", type=click.IntRange(1, 100_000), default=DEFAULT_TOP, show_default=True,
              help="Rows in each list of changes (markdown shows at most 5); the counts are always complete.")
@click.option("--fail-on-growth", "fail_on_growth", type=SIZE, metavar="BYTES",
              help="Exit 6 (after writing the diff) when physical bytes grew by more than BYTES: 500MB, 2GiB, "
              "or plain bytes.")
@click.option("--any-source", is_flag=True,
              help="Compare snapshots of different sources (refused otherwise: exit 5), e.g. after moving a "
              "registry's storage.")
@repository_option("Show only these repositories in the lists (repeatable; `*` matches `/` too); the figures "
                   "and counts of changes stay registry-wide, and the diff says so.")
@memory_limit_option
@quiet_option
@interruptible
def diff_command(old: str, new: str, fmt: str, output: str | None, top: int, fail_on_growth: int | None,
                 any_source: bool, repositories: tuple[str, ...], memory_limit: str | None, quiet: bool) -> None:
    """What changed from snapshot OLD to snapshot NEW, both of the same source.

    Registry-wide: physical, logical and orphaned bytes, reclaimable now, and the counts of
    repositories, tags, manifests and blobs, then and now with the change (each snapshot's
    own `regstat report` figures); tags added, removed and moved (old -> new digest);
    manifests added and removed; new orphans (manifests orphaned now that were not in OLD);
    the largest new layers (blobs NEW references that OLD neither stored nor referenced).
    Per repository: the same changes and its referenced, exclusive, logical and orphaned
    bytes then and now. Snapshots of different sources are refused (exit 5) unless
    --any-source. --fail-on-growth BYTES exits 6 when physical bytes grew by more, for
    alerting from cron; the diff is printed or written first.

    OLD and NEW may be snapshot directories, a history written by `crawl --into` (its latest
    snapshot) or a selector in one: HISTORY@-1 (the one before the latest), HISTORY@2026-12-01
    (the last taken on or before that day, UTC). `regstat diff HISTORY@-1 HISTORY` is what
    changed since the previous crawl.

    \b
    Examples:
      regstat diff /srv/regstat/history@-1 /srv/regstat/history
      regstat diff snaps/2026-12-06 snaps/2026-12-07
      regstat diff old new --format markdown --top 5
      regstat diff old new --format json | jq .changes
      regstat diff old new --format html -o diff.html --quiet
      regstat diff old new --fail-on-growth 2GiB -q > /dev/null || alert
    """
    opened = open_snapshot(old), open_snapshot(new)
    if not any_source:
        check_same_source(*opened)
    for snapshot in opened:
        check_output(snapshot, output)
    diff = build_diff(*opened, top=top, memory_limit=memory_limit, repositories=repositories)
    emit(opened[1], output, render_diff(diff, fmt))
    if output:
        note(quiet, f"diff: {headline(diff)}; wrote {output}")
    if fail_on_growth is not None and diff.physical_growth > fail_on_growth:
        # Not silenced by --quiet: this is what the cron job is there to hear.
        click.echo(f"regstat: physical bytes grew by {diff.physical_growth:,}, more than --fail-on-growth "
                   f"{fail_on_growth:,} (exit {EXIT_GROWTH})", err=True)
        sys.exit(EXIT_GROWTH)
