"""DuckDB running out of memory, as a regstat error: one line saying what to do.

DuckDB raises OutOfMemoryException when a statement needs more than its memory limit
(--memory-limit, else 80% of RAM) and cannot spill, or when its spill files reach their own
limit. Its message is several lines of SQL settings (SET threads=...) that a regstat user
cannot type; `duckdb_failure` keeps its first line and says what regstat offers instead. It
recognises the exception by its module and name, so that the CLI's edge need not import
duckdb.
"""

from __future__ import annotations

from ..errors import RegstatError

HINT = ("raise --memory-limit if it is below the machine's memory (DuckDB's default is 80% of RAM), run on a "
        "machine with more, or run report and plan-gc on Spark (--engine spark)")


class OutOfMemory(RegstatError):
    """DuckDB ran out of memory, or of room for its spill files; the message is one line."""


def duckdb_failure(error: BaseException) -> OutOfMemory | None:
    """`error` as an OutOfMemory if it is DuckDB's OutOfMemoryException, else None."""
    kind = type(error)
    if kind.__name__ != "OutOfMemoryException" or kind.__module__.lstrip("_") != "duckdb":
        return None
    line = next((line.strip() for line in str(error).splitlines() if line.strip()), "")
    said = line.removeprefix("Out of Memory Error:").strip().rstrip(".")
    return OutOfMemory(f"DuckDB ran out of memory ({said}): {HINT}" if said else
                       f"DuckDB ran out of memory: {HINT}")
