"""The `regstat` command line: parse options, call one library function, render its result.

The click group is here; each command lives in a module of this package (crawl, sql, report,
plan, apply, explain, diff), sharing edge.py. The entry point stays regstat.cli:main.
"""

from __future__ import annotations

import importlib

import click

from .. import __version__

# A command's module is imported when that command runs: importing every one at start-up
# (boto3 for ECR and S3, the apply targets, …) cost each invocation about half a CPU second,
# much of a small crawl's or plan's time. Name -> (module of this package, its command).
COMMANDS = {
    "crawl": ("crawl", "crawl_command"),
    "merge": ("merge", "merge_command"),
    "sql": ("sql", "sql_command"),
    "export-db": ("sql", "export_db_command"),
    "report": ("report", "report_command"),
    "plan-gc": ("plan", "plan_gc_command"),
    "apply-gc": ("apply", "apply_gc_command"),
    "explain": ("explain", "explain_command"),
    "diff": ("diff", "diff_command"),
}


class _Commands(click.Group):
    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted(COMMANDS)

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name not in COMMANDS:
            return None
        module, command = COMMANDS[name]
        found: click.Command = getattr(importlib.import_module(f".{module}", __name__), command)
        return found


def command(name: str) -> click.Command:
    """The command `name` (its module imported)."""
    found = main.get_command(click.Context(main), name)
    assert found is not None, name
    return found


@click.group(cls=_Commands, context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
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
    manifest, spark, memory, error, interrupted, internal.
    """
