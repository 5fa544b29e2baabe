"""What every command shares at the CLI's edge: the one map from an error to its message,
kind and exit code (OUTCOMES), the command class that applies it, running interruptibly,
notes on stderr that --quiet silences, counting nouns."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
from collections.abc import Callable, Sequence
from typing import Any

import click

from ..analysis import QueryError, interrupt_all, spill_directory
from ..analysis.duckdb_failure import OutOfMemory, duckdb_failure
from ..analysis.engine import EngineUnavailable
from ..analysis.export import ExportError
from ..analysis.reachability import ReachabilityError
from ..analysis.scope import QueryScopeError
from ..analysis.spark_failure import SparkFailure, spark_failure
from ..errors import (
    EXIT_REFUSED,
    ApplyRefused,
    EXIT_FAILURE,
    EXIT_INTERRUPTED,
    EXIT_SNAPSHOT,
    EXIT_SOURCE,
    EXIT_USAGE,
    ManifestError,
    OutputExistsError,
    OutputRefusedError,
    RegstatError,
    SnapshotError,
    SourceError,
)
from ..apply.history import HistoryError
from ..plan.explain import ExplainError
from ..plan.explain_target import TargetError, TargetFormError
from ..plan.plan import PlanFileError
from ..plan.planner import PlanError
from ..plan.policy import PolicyError
from ..render import safe_text
from ..snapshot.history import SelectorError

# The one map from a RegstatError to what the user gets: (class, kind, exit code), the first
# class the error is an instance of wins. `kind` is what --json and --format json print.
# A usage error is shown in click's style (Usage: ..., Error: ...), but for ONE_LINE_USAGE:
# a SNAPSHOT selector naming nothing is one line, like any other error (cron mails it).
OUTCOMES: tuple[tuple[type[RegstatError], str, int], ...] = (
    (SelectorError, "usage", EXIT_USAGE),
    (EngineUnavailable, "usage", EXIT_USAGE),
    (PolicyError, "usage", EXIT_USAGE),
    (TargetFormError, "usage", EXIT_USAGE),
    (QueryScopeError, "usage", EXIT_USAGE),
    (PlanFileError, "usage", EXIT_USAGE),
    (SourceError, "source", EXIT_SOURCE),
    (ApplyRefused, "refused", EXIT_REFUSED),
    (OutputExistsError, "output", EXIT_SNAPSHOT),
    (OutputRefusedError, "output", EXIT_SNAPSHOT),
    (SnapshotError, "snapshot", EXIT_SNAPSHOT),
    (QueryError, "query", EXIT_FAILURE),
    (SparkFailure, "spark", EXIT_FAILURE),
    (OutOfMemory, "memory", EXIT_FAILURE),
    (ExportError, "output", EXIT_FAILURE),
    (ReachabilityError, "reachability", EXIT_FAILURE),
    (PlanError, "plan", EXIT_FAILURE),
    (ExplainError, "explain", EXIT_FAILURE),
    (HistoryError, "explain", EXIT_FAILURE),
    (TargetError, "explain", EXIT_FAILURE),
    (ManifestError, "manifest", EXIT_FAILURE),
    (RegstatError, "error", EXIT_FAILURE),
)


ONE_LINE_USAGE = (SelectorError, EngineUnavailable)


def outcome(error: RegstatError) -> tuple[str, int]:
    """The kind and exit code of `error`."""
    return next((kind, code) for cls, kind, code in OUTCOMES if isinstance(error, cls))


def wants_json(params: dict[str, Any]) -> bool:
    """Whether a command's options ask for JSON on stdout: its errors then come as JSON too."""
    return bool(params.get("as_json")) or params.get("fmt") == "json"


def print_json_error(message: str, kind: str, exit_code: int) -> None:
    click.echo(json.dumps({"error": message, "kind": kind, "exit_code": exit_code}, indent=1))


def _message(error: BaseException) -> str:
    # Messages may quote names from the registry: escape control characters (not line breaks).
    return safe_text(error).replace(chr(92) + "x0a", chr(10))


class Command(click.Command):
    """A regstat command: a RegstatError leaving it becomes its message on stderr and its exit
    code (OUTCOMES); with --json or --format json, any fatal error also prints a JSON object
    with `error`, `kind` and `exit_code` on stdout."""

    def make_context(self, info_name: str | None, args: list[str], parent: click.Context | None = None,
                     **extra: Any) -> click.Context:
        given = list(args)  # click's parser consumes `args`
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as e:
            if _args_want_json(given):
                print_json_error(e.format_message(), "usage", EXIT_USAGE)
            raise

    def invoke(self, ctx: click.Context) -> Any:
        as_json = wants_json(ctx.params)
        try:
            return _engine_failures_as_errors(super().invoke, ctx)
        except RegstatError as e:
            kind, code = outcome(e)
            if as_json:
                print_json_error(_message(e), kind, code)
            if code == EXIT_USAGE and not isinstance(e, ONE_LINE_USAGE):
                raise click.UsageError(_message(e), ctx) from None
            click.echo(f"regstat: error: {_message(e)}", err=True)
            sys.exit(code)
        except click.ClickException as e:
            if as_json:
                print_json_error(e.format_message(), "usage" if isinstance(e, click.UsageError) else "error",
                                 e.exit_code)
            raise
        except (click.exceptions.Exit, click.Abort):
            raise
        except Exception as e:
            if as_json:
                print_json_error(f"{type(e).__name__}: {e}", "internal", EXIT_FAILURE)
            raise


def _engine_failures_as_errors(invoke: Callable[[click.Context], Any], ctx: click.Context) -> Any:
    """`invoke(ctx)`, a failure Spark raised (pyspark's or py4j's exceptions, with Java stack
    traces) becoming a one-line SparkFailure, and DuckDB running out of memory an OutOfMemory."""
    try:
        return invoke(ctx)
    except Exception as e:
        failure = spark_failure(e) or duckdb_failure(e)
        if failure is None:
            raise
        raise failure from None


def _args_want_json(args: Sequence[str]) -> bool:
    """--json or --format json among raw arguments click could not parse."""
    for i, arg in enumerate(args):
        if arg == "--json" or arg in ("--format=json", "-fjson"):
            return True
        if arg in ("-f", "--format") and i + 1 < len(args) and args[i + 1] == "json":
            return True
    return False


def interrupted(message: str, as_json: bool) -> None:
    """Say that a signal stopped the command (the caller exits 130)."""
    if as_json:
        print_json_error(message, "interrupted", EXIT_INTERRUPTED)
    click.echo(f"regstat: {message}", err=True)


def note(quiet: bool, message: str) -> None:
    """A line on stderr about what went well: --quiet leaves it out (cron mails only failures)."""
    if not quiet:
        click.echo(f"regstat: {message}", err=True)


def interruptible(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run an analysis command in a worker thread, so that Ctrl-C stops it at once.

    Signals reach only the main thread, and only between Python bytecodes: while DuckDB runs
    a statement (minutes on a large snapshot) a plain Ctrl-C would wait for it. Here the main
    thread waits for the worker, and on SIGINT interrupts DuckDB's statements, then exits 130.
    Outputs are written atomically, so an interrupted command leaves none half written."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = command(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                outcome["error"] = e

        worker = threading.Thread(target=target, name=f"regstat-{command.__name__}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            interrupt_all()
            worker.join(10)  # let it clean up (temporary files)
            shutil.rmtree(spill_directory(), ignore_errors=True)  # DuckDB's, which os._exit skips
            interrupted("interrupted", wants_json(kwargs))
            sys.stdout.flush()
            sys.stderr.flush()
            # Not sys.exit: tearing DuckDB down while an interrupted statement unwinds in its
            # threads aborts the process (SIGABRT) instead of exiting 130.
            os._exit(EXIT_INTERRUPTED)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return run


def count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"
