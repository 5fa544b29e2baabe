"""The analysis of a snapshot, on an engine (engine.py: the interface, and DuckDB's; spark.py:
Spark's): the connection and its views (connection.py), the table `reachable`
(reachability.py), and files written from a snapshot (export.py)."""

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
    open_engine,
    open_snapshot_url,
    query,
    query_arrow,
    spill_directory,
    track,
)
from .engine import ENGINES, Engine, SparkOptions

__all__ = [
    "ENGINES",
    "EXTRA_TABLES",
    "VIEWS",
    "Engine",
    "QueryError",
    "SparkOptions",
    "bind",
    "connect",
    "connect_pair",
    "describe",
    "duckdb_config",
    "interrupt_all",
    "open_engine",
    "open_snapshot_url",
    "query",
    "query_arrow",
    "spill_directory",
    "track",
]
