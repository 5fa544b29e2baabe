"""Options that mean the same in every command, written once: --format/--output,
--memory-limit, --repository, --quiet, and the command class every command uses."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import click

from ..sizes import parse_size
from ..snapshot import Snapshot, history
from .edge import Command

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SizeType(click.ParamType):
    """A size in bytes as people write it: 500MB, 2GiB, 1048576 (regstat.sizes.parse_size)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeType()


def command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A regstat command (edge.Command: errors mapped to their message and exit code)."""
    return click.command(name, cls=Command)


def format_options(formats: list[str], *, default: str | None = "text", help: str | None = None,
                   output_help: str = "Write to FILE (atomically, replacing it) instead of stdout; never "
                   "inside a snapshot or its local SOURCE.") -> Decorator:
    """-f/--format (its value in `fmt`) and -o/--output FILE."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("-o", "--output", metavar="FILE", help=output_help)(f)
        return click.option("-f", "--format", "fmt", type=click.Choice(formats), default=default,
                            show_default=default is not None, help=help)(f)

    return decorate


def memory_limit_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--memory-limit", metavar="SIZE",
                        help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")(f)


def repository_option(help: str) -> Decorator:
    """-r/--repository GLOB, repeatable, into `repositories`: a full repository name or a
    pattern where `*` matches `/` too."""
    return click.option("-r", "--repository", "repositories", multiple=True, metavar="GLOB", help=help)


def quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-q", "--quiet", is_flag=True,
                        help="Nothing on stderr unless something went wrong (no summary, no progress).")(f)


def open_snapshot(text: str) -> Snapshot:
    """SNAPSHOT as every command takes it: a snapshot directory, a history (its latest
    snapshot) or a selector in one (HISTORY@-1, HISTORY@2026-12-01); regstat.snapshot.history."""
    return Snapshot.open(history.resolve(text))
