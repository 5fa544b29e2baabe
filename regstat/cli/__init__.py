"""The `regstat` command line: parse options, call one library function, render its result.

The click group is here; each command lives in a module of this package (crawl, sql, report,
plan, apply, explain, diff), sharing edge.py. The entry point stays regstat.cli:main.
"""

from __future__ import annotations

import click

from .. import __version__
from .apply import apply_gc_command
from .crawl import crawl_command
from .diff import diff_command
from .explain import explain_command
from .merge import merge_command
from .plan import plan_gc_command
from .report import report_command
from .sql import export_db_command, sql_command


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="regstat")
def main() -> None:
    """Where a container registry's storage goes, and what can be deleted safely.

    regstat crawls a registry into a snapshot (Parquet tables and snapshot.json), then
    answers questions about the snapshot without touching the registry again.

    \b
    Exit codes:
      0    success (a crawl met no errors)
      1    unexpected failure
      2    usage error
      3    snapshot written, but errors were recorded (it is incomplete)
      4    SOURCE missing, unreachable or unreadable; nothing written
      5    not a snapshot; an output refused (it exists, --force may not replace it, or it
           lies inside a snapshot or a local SOURCE); nothing --resume can continue; or
           apply-gc refused a plan (nothing deleted)
      6    regstat diff --fail-on-growth: physical bytes grew by more than allowed (the diff
           is written all the same)
      130  interrupted (SIGINT or SIGTERM); no snapshot written (--resume may continue it)

    Options mean the same in every command: -r/--repository GLOB (repeatable; `*` matches
    `/` too) picks repositories, -f/--format text is the plain format, -o/--output FILE is
    written atomically and never inside a snapshot or its local SOURCE, -q/--quiet prints
    nothing on stderr unless something went wrong. With --json or --format json, a fatal
    error also prints {"error": ..., "kind": ..., "exit_code": ...} on stdout; kind is one
    of usage, source, refused, snapshot, output, query, reachability, plan, explain,
    manifest, error, interrupted, internal.
    """


main.add_command(crawl_command)
main.add_command(merge_command)
main.add_command(sql_command)
main.add_command(export_db_command)
main.add_command(report_command)
main.add_command(plan_gc_command)
main.add_command(apply_gc_command)
main.add_command(explain_command)
main.add_command(diff_command)
