"""`emit`: the one way a command writes its result, to stdout or to --output FILE.

A FILE is checked before the work (`check_output`: never inside the snapshot or its local
SOURCE, never a directory or a file regstat may not replace) and written atomically under a
temporary name; text may come as a function writing to a stream, so a plan of millions of
actions is never held whole."""

from __future__ import annotations

import sys
from collections.abc import Callable
from pathlib import Path
from typing import TextIO, TypeAlias

import click
import pyarrow as pa

from ..analysis.export import write_copy, write_parquet, write_stream, write_text
from ..snapshot import Snapshot
from ..snapshot.outputs import check_file_output

# Text, a function writing text to a stream, an Arrow table (Parquet) or a file to copy.
Content: TypeAlias = str | Callable[[TextIO], None] | pa.Table | Path


def check_output(snapshot: Snapshot, output: str | None) -> None:
    """Refuse a bad --output before the work, which may take minutes."""
    if output:
        check_file_output(snapshot, output)


def emit(snapshot: Snapshot, output: str | None, content: Content) -> None:
    """Write `content` to `output` (atomically, outside the snapshot), or to stdout."""
    if isinstance(content, (pa.Table, Path)):
        if not output:  # the commands ask for --output with a format that writes files
            raise click.UsageError("this format writes a file: add --output FILE")
        (write_parquet if isinstance(content, pa.Table) else write_copy)(snapshot, output, content)
    elif isinstance(content, str):
        if output:
            write_text(snapshot, output, content)
        else:
            click.echo(content, nl=False)
    elif output:
        write_stream(snapshot, output, content)
    else:
        content(sys.stdout)
        sys.stdout.flush()
