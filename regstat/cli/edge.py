"""What every command shares at the CLI's edge: running interruptibly, failing with a
RegstatError's message and exit code, counting nouns."""

from __future__ import annotations

import functools
import os
import shutil
import sys
import threading
from typing import Any, Callable, NoReturn

import click

from ..analysis import interrupt_all, spill_directory
from ..errors import EXIT_INTERRUPTED, RegstatError
from ..render import safe_text


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
            click.echo("regstat: interrupted", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            # Not sys.exit: tearing DuckDB down while an interrupted statement unwinds in its
            # threads aborts the process (SIGABRT) instead of exiting 130.
            os._exit(EXIT_INTERRUPTED)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return run


def fail(error: RegstatError) -> NoReturn:
    # Messages may quote names from the registry: escape control characters (not line breaks).
    click.echo(f"regstat: error: {safe_text(error).replace(chr(92) + 'x0a', chr(10))}", err=True)
    sys.exit(error.exit_code)


def count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"
