"""`regstat diff OLD NEW`: what changed between two snapshots of one source, as a `Diff`.

The figures then and now are each snapshot's own report numbers (regstat.report.numbers:
build_report), so a diff never disagrees with `regstat report` of either snapshot. What
changed item by item (tags added, removed and moved, manifests added and removed, new
orphans, new layers, per-repository usage) is computed in DuckDB over both snapshots at
once, each bound in a schema of its own (analysis.connect_pair; sql/diff_*.sql): nothing
the size of a table is read into Python, only counts and the first `top` rows of each list.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from .. import analysis, queries
from ..analysis import engine
from ..errors import SnapshotError
from ..model import repository_selected
from ..snapshot import Snapshot
from .numbers import Report, build_report

FORMAT = "regstat.diff/1"
DEFAULT_TOP = 20

# Registry-wide figures then and now, in the report's words (Report.summary), then the
# snapshot's row counts (snapshot.json "counts").
FIGURES = (
    ("physical_bytes", "physical (distinct stored blobs)"),
    ("logical_bytes", "logical (if nothing were shared)"),
    ("orphaned_manifest_bytes", "freed by deleting every orphaned manifest"),
    ("unreferenced_blob_bytes", "in blobs no manifest references"),
    ("reclaimable_now_bytes", "reclaimable now"),
    ("orphaned_manifests", "orphaned manifests"),
)
COUNTS = (("repositories", "repositories"), ("tags", "tags"), ("manifests", "manifests"), ("blobs", "blobs"))
# The tables sql/diff_*.sql make, in order (diff_summary and diff_repositories read them).
TABLES = ("diff_tags", "diff_manifests", "diff_new_orphans", "diff_new_layers")
SIDES = ("old", "new")


class DiffSourceError(SnapshotError):
    """OLD and NEW are snapshots of different sources (diff --any-source compares them anyway)."""


@dataclass(frozen=True)
class Diff:
    """Everything `regstat diff` shows.

    `old` and `new` are the snapshots' identities (Report.snapshot) with their `state`;
    `figures` maps each name of FIGURES and COUNTS to {old, new, change} (None where either
    side is unknown); `changes` counts every change registry-wide (sql/diff_summary.sql);
    the lists hold the first `top` rows of each (tags and manifests by repository and name,
    new orphans and layers largest first, repositories by their change of referenced bytes),
    limited to `scope`'s repositories where it is given. `new_orphans` is None where either
    source cannot see untagged manifests.
    """

    old: dict[str, Any]
    new: dict[str, Any]
    figures: dict[str, dict[str, int | None]]
    unknown: dict[str, str]
    estimates: dict[str, str]
    warnings: list[str]
    changes: dict[str, int]
    tags: list[dict[str, Any]]
    manifests: list[dict[str, Any]]
    new_orphans: list[dict[str, Any]] | None
    new_layers: list[dict[str, Any]]
    repositories: list[dict[str, Any]]
    top: int = DEFAULT_TOP
    scope: tuple[str, ...] = ()

    @property
    def physical_growth(self) -> int:
        """How many bytes physical storage grew (negative: shrank)."""
        return self.figures["physical_bytes"]["change"] or 0

    def to_json(self) -> dict[str, Any]:
        """The `--format json` document (`regstat.diff/1`)."""
        return {
            "format": FORMAT,
            "old": self.old,
            "new": self.new,
            "warnings": self.warnings,
            "repository_scope": list(self.scope) or None,
            "figures": self.figures,
            "unknown": self.unknown,
            "estimates": self.estimates,
            "changes": self.changes,
            "top": {
                "n": self.top,
                "tags": self.tags,
                "manifests": self.manifests,
                "new_orphans": self.new_orphans,
                "new_layers": self.new_layers,
                "repositories": self.repositories,
            },
        }


def check_same_source(old: Snapshot, new: Snapshot) -> None:
    """Raise DiffSourceError unless OLD and NEW were crawled from the same source (kind,
    location, driver, registry id and repository; an endpoint URL may differ)."""
    a, b = (_source_key(s) for s in (old, new))
    if a != b:
        raise DiffSourceError(
            f"OLD and NEW are snapshots of different sources ({_source_text(old)} and {_source_text(new)}): "
            "a diff between them would list every tag as added or removed; give two snapshots of one "
            "source, or --any-source to compare them anyway (e.g. after moving a registry's storage)"
        )


def build_diff(
    old: Snapshot, new: Snapshot, *, top: int = DEFAULT_TOP, memory_limit: str | None = None,
    repositories: tuple[str, ...] = (),
) -> Diff:
    """What changed from `old` to `new`. `repositories` (globs) limits the lists; the figures
    and counts of changes stay registry-wide, and a warning says so."""
    reports = {side: build_report(snapshot, top=1, memory_limit=memory_limit)
               for side, snapshot in zip(SIDES, (old, new), strict=True)}
    con = analysis.connect_pair({"old": old, "new": new}, memory_limit=memory_limit)
    try:
        db = engine.DuckDB(con)
        for name in TABLES:
            db.create_table(name, queries.load(name))
        changes = _rows(con, queries.load("diff_summary"), 1)[0]
        lists = {
            "tags": _rows(con, "SELECT * FROM diff_tags ORDER BY repository, tag", top, repositories),
            "manifests": _rows(con, "SELECT * FROM diff_manifests ORDER BY repository, change, digest", top,
                               repositories),
            "new_orphans": _rows(con, "SELECT * FROM diff_new_orphans ORDER BY exclusive_bytes DESC, repository, "
                                 "digest", top, repositories),
            "new_layers": _rows(con, "SELECT * FROM diff_new_layers ORDER BY size DESC, digest", top),
            "repositories": _rows(con, queries.load("diff_repositories"), top, repositories),
        }
    finally:
        con.close()

    sees_untagged = all(s.info.capabilities.untagged_manifests for s in (old, new))
    if not sees_untagged:
        changes["new_orphans"] = None
        for row in lists["repositories"]:
            row["new_orphans"] = None
            for side in SIDES:
                row[f"{side}_orphaned_manifests"] = row[f"{side}_orphaned_bytes"] = None
    figures = {name: _then_and_now(reports["old"].summary.get(name), reports["new"].summary.get(name))
               for name, _ in FIGURES}
    figures |= {name: _then_and_now(old.info.counts.get(name), new.info.counts.get(name)) for name, _ in COUNTS}
    return Diff(
        old=_side(reports["old"]),
        new=_side(reports["new"]),
        figures=figures,
        unknown=_reasons(reports, "unknown"),
        estimates=_reasons(reports, "estimates"),
        warnings=_warnings(reports, repositories),
        changes=changes,
        tags=lists["tags"],
        manifests=lists["manifests"],
        new_orphans=lists["new_orphans"] if sees_untagged else None,
        new_layers=lists["new_layers"],
        repositories=lists["repositories"],
        top=top,
        scope=tuple(repositories),
    )


def _rows(
    con: duckdb.DuckDBPyConnection, sql: str, limit: int, repositories: tuple[str, ...] = ()
) -> list[dict[str, Any]]:
    """The first `limit` rows of `sql` whose repository the globs select, as dicts: read in
    batches and stopped early, never the whole result."""
    cursor = con.execute(sql.strip().rstrip(";"))
    columns = [d[0] for d in cursor.description]
    out: list[dict[str, Any]] = []
    while len(out) < limit:
        batch = cursor.fetchmany(max(limit, 1000))
        if not batch:
            break
        for values in batch:
            row = dict(zip(columns, values, strict=True))
            if "repository" not in row or repository_selected(row["repository"], repositories):
                out.append(row)
    return out[:limit]


def _then_and_now(old: int | None, new: int | None) -> dict[str, int | None]:
    return {"old": old, "new": new, "change": None if old is None or new is None else new - old}


def _side(report: Report) -> dict[str, Any]:
    return {**report.snapshot, "state": report.state}


def _reasons(reports: dict[str, Report], kind: str) -> dict[str, str]:
    """Why a figure is unknown (or an estimate): once where both sides say the same, else
    each side's reason, the side named."""
    out: dict[str, str] = {}
    for name in dict(FIGURES):
        whys = {side: getattr(reports[side], kind).get(name) for side in SIDES}
        if whys["old"] == whys["new"]:
            if whys["old"]:
                out[name] = whys["old"]
        else:
            out[name] = "; ".join(f"{side.upper()}: {why}" for side, why in whys.items() if why)
    return out


def _warnings(reports: dict[str, Report], repositories: tuple[str, ...]) -> list[str]:
    old, new = reports["old"], reports["new"]
    warnings = []
    for side, report in (("OLD", old), ("NEW", new)):
        if not report.complete:
            warnings.append(f"{side} is {report.state}: a change may be something its crawl missed")
    if (old.snapshot["taken_at"] or "") > (new.snapshot["taken_at"] or ""):
        warnings.append("OLD was taken after NEW: what reads as added was removed, and the other way round")
    if repositories:
        warnings.append(f"--repository {', '.join(repositories)}: the lists show only these repositories; the "
                        "figures and the counts of changes are registry-wide")
    return warnings


def _source_key(snapshot: Snapshot) -> dict[str, Any]:
    source = snapshot.info.source.to_json()
    source.pop("endpoint_url", None)
    return source


def _source_text(snapshot: Snapshot) -> str:
    source = snapshot.info.source
    return f"{source.kind} {source.location or ''}".strip()
