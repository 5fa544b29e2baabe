"""The analysis of a snapshot in DuckDB: the connection and its views (connection.py), the
table `reachable` (reachability.py), and files written from a snapshot (export.py)."""

from .connection import (
    EXTRA_TABLES,
    VIEWS,
    QueryError,
    bind,
    connect,
    connect_pair,
    describe,
    duckdb_config,
    interrupt_all,
    query,
    query_arrow,
    spill_directory,
    track,
)
from .engine import drop_tables

__all__ = [
    "EXTRA_TABLES",
    "VIEWS",
    "QueryError",
    "bind",
    "connect",
    "connect_pair",
    "describe",
    "drop_tables",
    "duckdb_config",
    "interrupt_all",
    "query",
    "query_arrow",
    "spill_directory",
    "track",
]
