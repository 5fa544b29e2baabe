"""The report's headline figure, **reclaimable now**: what `regstat plan-gc --untagged` with
the default grace would free (DESIGN.md "Definitions"), computed from the report's views.

It runs the planner's SQL with the policy fixed and bound as its tables (every repository,
`--untagged`, no tag rule, grace DEFAULT_GRACE, locked manifests protected:
regstat.analysis.protections), without making a plan: no tag decisions one by one, no order,
no actions. The protections are the planner's (sql/plan_protections.sql, plan_protected.sql);
the tags are kept, but for tags on referrers that follow their subject
(sql/reclaimable_tags.sql); what the plan keeps is a reachability seeded by the planner's
sql/plan_seed.sql, closed over the subjects of kept referrers (sql/plan_kept_subjects.sql) as
regstat.plan.planner closes it; the deleted manifests are the rest, and the stale uploads the
planner's sql/plan_uploads.sql. The bytes are summed as the planner sums them
(`summary.bytes_reclaimed`): the blobs it deletes (stored, past the grace, released by the
deleted manifests or referenced by nothing) and the stale uploads; or, where it may delete no
blobs (restrictions(), the planner's `_blob_restrictions`), the bytes the deleted manifests
release, as an estimate. A test holds the two equal on several snapshots.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from .. import queries
from ..analysis import engine, protections, reachability
from ..analysis.engine import Engine
from ..durations import DEFAULT_GRACE, format_duration
from ..snapshot import SnapshotInfo

GRACE = format_duration(DEFAULT_GRACE)
RULE = "plan-gc --untagged"


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


def bind_settings(db: Engine, info: SnapshotInfo) -> None:
    """Register the planner's `plan_settings` under this policy: the default grace, measured
    from when the crawl finished, or from now if snapshot.json does not say (as the planner
    measures it), and locked manifests protected."""
    taken_at = info.finished_at or datetime.now(UTC)
    protections.bind_settings(db, taken_at=taken_at, grace_cutoff=taken_at - DEFAULT_GRACE, include_locked=False)


def reclaimable_now(db: Engine, info: SnapshotInfo) -> Reclaimable:
    """The figure, in a report's connection (regstat.analysis, keyed) once every query that
    reads the report's own `reachable` has run: this renames it `reachable_now`, as the
    planner keeps it, and fills `reachable` with what the plan keeps. `blob_references` must
    be a table already (Engine.materialise_view), made while `reachable` held the report's
    reachability (sql/reclaimable_blobs.sql corrects its kept_manifests by what the plan
    keeps), and `plan_settings` bound (bind_settings)."""
    blocked = protections.blocked_repositories(db, info)
    db.rename_table(reachability.TABLE, "reachable_now")
    # The planner's protections, seed and closure, under this policy.
    protections.bind(db, [
        {"repository": r, "rule": RULE, "untagged": True, "blocked": blocked.reasons.get(r)}
        for r in protections.repository_names(db)
    ])
    _create(db, "plan_tags", "reclaimable_tags")
    protections.close_kept(db)
    _create(db, "reclaim_deleted", "reclaimable_manifests")
    _create(db, "reclaim_released", "reclaimable_blobs")
    _create(db, "reclaim_uploads", "plan_uploads")
    row = engine.first_row(db, queries.load("reclaimable_now"))
    estimate = restrictions(info, len(blocked.errored), blocked.unreadable_manifests)
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


def _create(db: Engine, table: str, query: str) -> None:
    db.create_table(table, queries.load(query), replace=True)

