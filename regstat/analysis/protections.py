"""The protections of a plan (sql/plan_protections.sql) over the tables that say its policy:
the planner binds them from its policy, the report's "reclaimable now" from the fixed policy
of `plan-gc --untagged` (regstat.report.reclaimable). Their columns are defined here once, so
that both bind the same tables and the protections are written in one place, the SQL.

    plan_settings      one row: taken_at, grace_cutoff (NULL: no grace), include_locked
    plan_repositories  repository, rule (NULL: outside the policy), untagged, keep_untagged,
                       pulled_cutoff, pulled_within (its text), blocked (why the plan may not
                       touch it, or NULL)
    plan_keep_tags     repository, tag, pattern: the first keep_tags pattern the tag matches,
                       quoted (Python's regular expressions decide the match, not the engine's)
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from typing import Any

import duckdb
import pyarrow as pa

from .. import queries
from . import engine

_TIME = pa.timestamp("us", tz="UTC")
SETTINGS = pa.schema([("taken_at", _TIME), ("grace_cutoff", _TIME), ("include_locked", pa.bool_())])
REPOSITORIES = pa.schema([
    ("repository", pa.string()), ("rule", pa.string()), ("untagged", pa.bool_()), ("keep_untagged", pa.int64()),
    ("pulled_cutoff", _TIME), ("pulled_within", pa.string()), ("blocked", pa.string()),
])
KEEP_TAGS = pa.schema([("repository", pa.string()), ("tag", pa.string()), ("pattern", pa.string())])


def repository_names(con: duckdb.DuckDBPyConnection) -> list[str]:
    """Every repository the snapshot names (sql/plan_repository_names.sql), sorted."""
    return [r[0] for r in con.execute(queries.load("plan_repository_names")).fetchall()]


def blocked(con: duckdb.DuckDBPyConnection, incomplete: Iterable[str]) -> list[tuple[str, bool, int, str | None]]:
    """The repositories where a plan deletes nothing (sql/plan_blocked.sql), given snapshot.json's
    incomplete_repositories: (repository, crawl errors, unreadable manifests, their least status)."""
    con.register("plan_incomplete", pa.table({"repository": pa.array(list(incomplete), pa.string())}))
    return con.execute(queries.load("plan_blocked")).fetchall()


def bind_settings(con: duckdb.DuckDBPyConnection, *, taken_at: datetime, grace_cutoff: datetime | None,
                  include_locked: bool) -> None:
    """Register `plan_settings`."""
    settings = [{"taken_at": taken_at, "grace_cutoff": grace_cutoff, "include_locked": include_locked}]
    con.register("plan_settings", pa.Table.from_pylist(settings, schema=SETTINGS))


def bind(
    con: duckdb.DuckDBPyConnection, repositories: Iterable[dict[str, Any]], keep_tags: Iterable[dict[str, Any]] = (),
) -> None:
    """Register `plan_repositories` and `plan_keep_tags` (columns above; a row's missing keys
    are NULL), then create the tables `plan_protections` and `plan_protected` (the protected
    manifests). Reads `plan_settings` and `reachable_now`, the reachability before the plan."""
    con.register("plan_repositories", pa.Table.from_pylist(list(repositories), schema=REPOSITORIES))
    con.register("plan_keep_tags", pa.Table.from_pylist(list(keep_tags), schema=KEEP_TAGS))
    # Read twice (the tags' rows, then the manifests'): computed once.
    for table in ("plan_protections", "plan_protected"):
        engine.create_table(con, table, queries.load(table), replace=True)
