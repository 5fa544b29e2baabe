"""The report's headline figure, **reclaimable now**: what `regstat plan-gc --untagged` with
the default grace would free (DESIGN.md "Definitions"), computed from the report's views.

It follows the planner's rules, with the policy fixed (every repository, `--untagged`, no tag
rule, grace DEFAULT_GRACE, locked manifests protected), without making a plan: no tag
decisions one by one, no order, no actions. What the plan keeps is a reachability seeded by
the planner's sql/plan_seed.sql over stand-ins for its tables (sql/reclaimable_tags.sql: the
tags, but for tags on referrers that follow their subject; sql/reclaimable_protected.sql: the
protected manifests: blocked repositories, unreadable, locked, young), closed over the
subjects of kept referrers (sql/plan_kept_subjects.sql) as regstat.plan.planner closes it; the
deleted manifests are the rest. The bytes are summed as the planner sums them
(`summary.bytes_reclaimed`): the blobs it deletes (stored, past the grace, released by the
deleted manifests or referenced by nothing) and the stale uploads; or, where it may delete no
blobs (restrictions(), the planner's `_blob_restrictions`), the bytes the deleted manifests
release, as an estimate. A test holds the two equal on several snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any

import duckdb
import pyarrow as pa

from .. import queries
from ..analysis import reachability
from ..durations import DEFAULT_GRACE, format_duration
from ..snapshot import SnapshotInfo

GRACE = format_duration(DEFAULT_GRACE)
_TIME = pa.timestamp("us", tz="UTC")


@dataclass(frozen=True)
class Reclaimable:
    """What `plan-gc --untagged` with the default grace frees, and its parts; `estimate`
    lists why the figure is an estimate (empty when it is exact)."""

    bytes: int
    estimate: list[str]
    manifests: int
    manifest_bytes: int
    unreferenced_blobs: int
    unreferenced_blob_bytes: int
    stale_uploads: int
    stale_upload_bytes: int

    def to_json(self) -> dict[str, Any]:
        return {
            "bytes": self.bytes,
            "estimated": bool(self.estimate),
            "grace": GRACE,
            "manifests": self.manifests,
            "manifest_bytes": self.manifest_bytes,
            "unreferenced_blobs": self.unreferenced_blobs,
            "unreferenced_blob_bytes": self.unreferenced_blob_bytes,
            "stale_uploads": self.stale_uploads,
            "stale_upload_bytes": self.stale_upload_bytes,
        }


def bind_settings(con: duckdb.DuckDBPyConnection, info: SnapshotInfo) -> None:
    """Register `reclaim_settings` (one row: grace_cutoff), measured from when the crawl
    finished, or from now if snapshot.json does not say (as the planner measures it)."""
    taken_at = info.finished_at or datetime.now(timezone.utc)
    con.register("reclaim_settings", pa.table({"grace_cutoff": pa.array([taken_at - DEFAULT_GRACE], _TIME)}))


def reclaimable_now(con: duckdb.DuckDBPyConnection, info: SnapshotInfo) -> Reclaimable:
    """The figure, in a report's connection (regstat.analysis, keyed) once every query that
    reads the report's own `reachable` has run: this replaces it with what the plan keeps.
    `blob_references` must be a table already (queries.materialise_view)."""
    incomplete = pa.table({"repository": pa.array(list(info.incomplete_repositories), pa.string())})
    con.register("reclaim_incomplete", incomplete)
    _create(con, "reclaim_blocked", "reclaimable_blocked")
    # The planner's own seed and closure, over its tables' stand-ins under this policy.
    _create(con, "plan_tags", "reclaimable_tags")
    _create(con, "plan_protected", "reclaimable_protected")
    kept_subjects = _select("plan_kept_subjects")
    while True:
        reachability.materialise(con, seed="plan_seed")
        if not con.execute(f"INSERT INTO plan_protected {kept_subjects}").fetchone()[0]:
            break
    _create(con, "reclaim_deleted", "reclaimable_manifests")
    _create(con, "reclaim_released", "reclaimable_blobs")
    cursor = con.execute(_select("reclaimable_now"))
    row = dict(zip([d[0] for d in cursor.description], cursor.fetchone()))
    errored, unreadable = con.execute(
        "SELECT (SELECT count(*) FROM reclaim_blocked WHERE errored), "
        "(SELECT count(*) FROM manifests WHERE status <> 'ok')"
    ).fetchone()
    estimate = restrictions(info, errored, unreadable)
    if estimate:  # no blob or upload deletions: the bytes the deleted manifests release
        parts = (row["released_bytes"], 0, 0, 0, 0)
    else:
        parts = (row["freed_bytes"], row["unreferenced_blobs"], row["unreferenced_bytes"],
                 row["uploads"], row["upload_bytes"])
    manifest_bytes, unreferenced, unreferenced_bytes, uploads, upload_bytes = parts
    if not info.capabilities.untagged_manifests:
        estimate.append(f"the source ({info.source.kind}) cannot see untagged manifests, so this counts none of them")
    return Reclaimable(
        bytes=manifest_bytes + unreferenced_bytes + upload_bytes,
        estimate=estimate,
        manifests=row["manifests"],
        manifest_bytes=manifest_bytes,
        unreferenced_blobs=unreferenced,
        unreferenced_blob_bytes=unreferenced_bytes,
        stale_uploads=uploads,
        stale_upload_bytes=upload_bytes,
    )


def restrictions(info: SnapshotInfo, errored: int, unreadable: int) -> list[str]:
    """Why plan-gc may delete no blob here, so that the figure is an estimate (DESIGN.md
    safety rules 5 and 6; the conditions of regstat.plan.planner's _blob_restrictions)."""
    why = []
    if info.partial:
        why.append("the repositories --repository left out may use any blob, so plan-gc deletes no blobs")
    elif not (info.capabilities.unreferenced_blobs and info.capabilities.stored_blob_sizes):
        why.append(f"the registry ({info.source.kind}) frees blobs itself: plan-gc deletes manifests only, "
                   "and the bytes are what their blobs would free")
    if info.errors or errored or not (info.complete or info.partial):
        why.append("crawl errors: what was not read may use any blob, so plan-gc deletes no blobs")
    if unreadable:
        why.append(f"{unreadable} manifest(s) could not be read and may reference any blob: plan-gc deletes no blobs")
    return why


def _create(con: duckdb.DuckDBPyConnection, table: str, query: str) -> None:
    con.execute(f"CREATE OR REPLACE TABLE {table} AS {_select(query)}")


def _select(name: str) -> str:
    return queries.load(name).strip().rstrip(";")
