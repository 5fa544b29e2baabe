"""Writing out of a snapshot, never into it (regstat.snapshot.outputs): reports, plans, query results
(`regstat sql --output`) and a DuckDB database file with the tables and views (`export-db`).

Every file is written beside its destination under a hidden temporary name and renamed into
place when whole, so a failure or a kill never leaves a half-written file at the path.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from ..atomic import write_atomically, write_text_atomically
from ..errors import OutputExistsError, RegstatError
from ..snapshot import Snapshot
from ..snapshot.outputs import check_file_output
from . import engine
from .connection import bind, duckdb_config, track


class ExportError(RegstatError):
    """A database file regstat could not write."""


def write_text(snapshot: Snapshot, path: str | os.PathLike[str], text: str) -> None:
    """Write `text` to `path` (replacing it), outside the snapshot."""
    write_text_atomically(check_file_output(snapshot, path), text)


def write_stream(snapshot: Snapshot, path: str | os.PathLike[str], write: Callable[[TextIO], None]) -> None:
    """Call `write` with a text file that becomes `path` when whole, outside the snapshot."""

    def into(temporary: Path) -> None:
        with open(temporary, "w", encoding="utf-8") as f:
            write(f)

    write_atomically(check_file_output(snapshot, path), into)


def write_parquet(snapshot: Snapshot, path: str | os.PathLike[str], table: pa.Table) -> None:
    """Write `table` as one Parquet file at `path` (replacing it), outside the snapshot."""
    target = check_file_output(snapshot, path)
    write_atomically(target, lambda tmp: pq.write_table(table, tmp))


def write_copy(snapshot: Snapshot, path: str | os.PathLike[str], source: Path) -> None:
    """Copy the file `source` to `path` (replacing it), outside the snapshot."""
    write_atomically(check_file_output(snapshot, path), lambda tmp: shutil.copyfile(source, tmp))


def export_db(
    snapshot: Snapshot, path: str | os.PathLike[str], *, force: bool = False, memory_limit: str | None = None
) -> Path:
    """Write a DuckDB database file holding copies of the snapshot's tables, `errors`,
    `snapshot_info`, `reachable` and the analysis views; it no longer needs the snapshot.
    An existing file is replaced only with `force`."""
    target = check_file_output(snapshot, path)
    if target.exists() and not force:
        raise OutputExistsError(f"{path}: already exists; choose another FILE or pass --force")

    def build(tmp: Path) -> None:
        # Spill where analysis connections do (not beside FILE): Ctrl-C's clean-up removes it.
        con = track(duckdb.connect(str(tmp), config=duckdb_config(memory_limit)))
        try:
            bind(engine.DuckDB(con, materialise=True), snapshot)
            con.execute("CHECKPOINT")
        except duckdb.Error as e:
            raise ExportError(f"{path}: cannot write the database: {e}") from None
        finally:
            con.close()

    write_atomically(target, build)
    return target
