"""The protections of a plan (sql/plan_protections.sql) over the tables that say its policy:
the planner binds them from its policy, the report's "reclaimable now" from the fixed policy
of `plan-gc --untagged` (regstat.report.reclaimable). Their columns are defined here once, so
that both bind the same tables and the protections are written in one place, the SQL.

    plan_settings      one row: taken_at, grace_cutoff (NULL: no grace), include_locked
    plan_repositories  repository, rule (NULL: outside the policy), untagged, keep_untagged,
                       pulled_cutoff, pulled_within (its text), blocked (why the plan may not
                       touch it, or NULL), ago_cutoff, ago (its text): acr purge's --ago, under
                       which a manifest updated since ago_cutoff is kept
    plan_keep_tags     repository, tag, pattern: the first keep_tags pattern the tag matches,
                       quoted (Python's regular expressions decide the match, not the engine's)
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import pyarrow as pa

from .. import queries
from ..snapshot import SnapshotInfo
from . import engine, reachability

_TIME = pa.timestamp("us", tz="UTC")
SETTINGS = pa.schema([("taken_at", _TIME), ("grace_cutoff", _TIME), ("include_locked", pa.bool_())])
REPOSITORIES = pa.schema([
    ("repository", pa.string()), ("rule", pa.string()), ("untagged", pa.bool_()), ("keep_untagged", pa.int64()),
    ("pulled_cutoff", _TIME), ("pulled_within", pa.string()), ("blocked", pa.string()),
    ("ago_cutoff", _TIME), ("ago", pa.string()),
])
KEEP_TAGS = pa.schema([("repository", pa.string()), ("tag", pa.string()), ("pattern", pa.string())])


def repository_names(db: engine.Engine) -> list[str]:
    """Every repository the snapshot names (sql/plan_repository_names.sql), sorted."""
    return [r[0] for r in db.rows(queries.load("plan_repository_names"))[1]]


@dataclass(frozen=True)
class Blocked:
    """The repositories a plan may not touch (docs/design.md rules 5 and 6): `reasons` says why for
    each; `errored` had crawl errors; `unreadable_manifests` counts manifests that could not
    be read, anywhere (either stops every blob deletion)."""

    reasons: dict[str, str]
    errored: frozenset[str]
    unreadable_manifests: int


def blocked_repositories(db: engine.Engine, info: SnapshotInfo) -> Blocked:
    """Read sql/plan_blocked.sql. The repositories table records crawl errors too, beside
    snapshot.json's errors and incomplete_repositories: fail closed if they disagree."""
    incomplete = sorted(info.errored_repositories)
    db.load("plan_incomplete", pa.table({"repository": pa.array(incomplete, pa.string())}))
    reasons: dict[str, str] = {}
    errored = set()
    unreadable = 0
    for repository, has_errors, count, status in db.rows(queries.load("plan_blocked"))[1]:
        if count:
            reasons[repository] = (f"a manifest in this repository could not be read ({status}): "
                                   "it may reference anything")
            unreadable += count
        else:
            reasons[repository] = "the crawl recorded errors in this repository"
        if has_errors:
            errored.add(repository)
    return Blocked(reasons, frozenset(errored), unreadable)


def bind_settings(db: engine.Engine, *, taken_at: datetime, grace_cutoff: datetime | None,
                  include_locked: bool) -> None:
    """Register `plan_settings`."""
    settings = [{"taken_at": taken_at, "grace_cutoff": grace_cutoff, "include_locked": include_locked}]
    db.load("plan_settings", pa.Table.from_pylist(settings, schema=SETTINGS))


def bind(
    db: engine.Engine, repositories: Iterable[dict[str, Any]], keep_tags: Iterable[dict[str, Any]] = (),
) -> None:
    """Register `plan_repositories` and `plan_keep_tags` (columns above; a row's missing keys
    are NULL), then create the tables `plan_protections` and `plan_protected` (the protected
    manifests). Reads `plan_settings` and `reachable_now`, the reachability before the plan."""
    db.load("plan_repositories", pa.Table.from_pylist(list(repositories), schema=REPOSITORIES))
    db.load("plan_keep_tags", pa.Table.from_pylist(list(keep_tags), schema=KEEP_TAGS))
    # Read twice (the tags' rows, then the manifests'): computed once.
    for table in ("plan_protections", "plan_protected"):
        db.create_table(table, queries.load(table), replace=True)


def close_kept(db: engine.Engine) -> None:
    """Fill `reachable` with what the plan keeps: the closure of plan_seed, then of the
    subjects of kept referrers, until nothing is added (sql/plan_kept_subjects.sql)."""
    kept_subjects = queries.load("plan_kept_subjects")
    while True:
        reachability.materialise(db, seed="plan_seed")
        if not db.insert("plan_protected", kept_subjects):
            return
