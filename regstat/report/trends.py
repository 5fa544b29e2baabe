"""`regstat report HISTORY --history`: a history's figures over time (`Trends`).

Each snapshot is summarised once (`Summary`: the registry's figures and its largest
repositories', from `build_report`) and the summary kept in the history's own directory
(`HISTORY/.regstat/summaries/<snapshot id>@<regstat version>.json`, never inside the snapshot,
which is immutable), so a history of N snapshots costs N analyses once, then only reads. A
summary written by another regstat version is not trusted: it is computed again. `crawl
--retain` removes a snapshot's summaries with it (regstat.snapshot.history.retain).
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from .. import __version__
from ..atomic import write_text_atomically
from ..errors import RegstatError
from ..snapshot import Snapshot, history, iso
from .numbers import build_report

# Registry-wide figures over time, as named in json and csv (None where the source cannot see one).
FIGURES = (
    "physical_bytes",
    "logical_bytes",
    "orphaned_bytes",
    "reclaimable_bytes",
    "orphaned_manifests",
    "manifests",
    "tags",
    "repositories",
    "errors",
)
# Per-repository figures over time.
REPOSITORY_FIGURES = ("exclusive_bytes", "logical_bytes", "orphaned_bytes", "manifests", "tags")
# A summary keeps this many repositories (by exclusive bytes): small whatever the registry.
SUMMARY_REPOSITORIES = 200
SUMMARY_FORMAT = "regstat.trend-summary/1"


@dataclass(frozen=True)
class Summary:
    """One snapshot's figures: FIGURES, and REPOSITORY_FIGURES for its largest repositories."""

    snapshot_id: str
    name: str  # its directory in the history
    taken_at: str  # ISO 8601, UTC: when the crawl finished, as the report says
    complete: bool
    figures: dict[str, int | None]
    repositories: dict[str, dict[str, int | None]]

    def to_json(self) -> dict[str, Any]:
        return {"format": SUMMARY_FORMAT, **asdict(self)}

    @classmethod
    def from_json(cls, doc: dict[str, Any]) -> Summary:
        if doc.get("format") != SUMMARY_FORMAT:
            raise ValueError("not a trend summary")
        return cls(doc["snapshot_id"], doc["name"], doc["taken_at"], bool(doc["complete"]),
                   dict(doc["figures"]), {k: dict(v) for k, v in doc["repositories"].items()})


@dataclass(frozen=True)
class Trends:
    """The summaries of a history's snapshots, oldest first, and the repositories followed:
    the `top` largest by exclusive bytes in the latest snapshot."""

    history: str
    points: list[Summary]
    repositories: list[str]
    computed: int  # summaries computed now (the others were read from HISTORY/.regstat)

    def registry_series(self, figure: str) -> list[int | None]:
        return [p.figures.get(figure) for p in self.points]

    def repository_series(self, repository: str, figure: str) -> list[int | None]:
        return [p.repositories.get(repository, {}).get(figure) for p in self.points]


def build_trends(directory: Path, *, top: int, memory_limit: str | None = None) -> Trends:
    """Summarise every snapshot of the history `directory` (from its cache where it can)."""
    entries = history.snapshots(directory)
    if not entries:
        raise history.SelectorError(f"{directory}: a snapshot history holding no snapshot yet")
    points, computed = [], 0
    for entry in entries:
        snapshot = Snapshot.open(entry.path)
        summary = _cached(directory, snapshot)
        if summary is None:
            summary = summarise(snapshot, memory_limit=memory_limit)
            computed += 1
            _keep(directory, summary)
        points.append(summary)
    latest = points[-1].repositories
    order = sorted(latest, key=lambda name: (-(latest[name].get("exclusive_bytes") or 0), name))
    return Trends(str(directory), points, order[:top], computed)


def summarise(snapshot: Snapshot, *, memory_limit: str | None = None) -> Summary:
    """The figures of one snapshot, from the report's own numbers."""
    report = build_report(snapshot, top=1, memory_limit=memory_limit)
    info = snapshot.info
    rows = sorted(report.repositories, key=lambda r: (-(r["exclusive_bytes"] or 0), r["repository"]))
    figures = {
        "physical_bytes": report.summary.get("physical_bytes"),
        "logical_bytes": report.summary.get("logical_bytes"),
        "orphaned_bytes": report.summary.get("orphaned_manifest_bytes"),
        "reclaimable_bytes": report.summary.get("reclaimable_now_bytes"),
        "orphaned_manifests": report.summary.get("orphaned_manifests"),
        "manifests": info.counts.get("manifests"),
        "tags": sum(r["tags"] or 0 for r in report.repositories),
        "repositories": info.counts.get("repositories"),
        "errors": len(info.errors),
    }
    repositories = {r["repository"]: {f: r.get(f) for f in REPOSITORY_FIGURES} for r in rows[:SUMMARY_REPOSITORIES]}
    return Summary(info.id or snapshot.directory.name, snapshot.directory.name, iso(info.finished_at) or "",
                   info.complete, figures, repositories)


def _cached(directory: Path, snapshot: Snapshot) -> Summary | None:
    if not snapshot.info.id:
        return None
    try:
        doc = json.loads(history.summary_path(directory, snapshot.info.id, __version__).read_text())
        summary = Summary.from_json(doc)
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None  # none yet, or damaged: computed again
    return summary if summary.snapshot_id == snapshot.info.id and summary.name == snapshot.directory.name else None


def _keep(directory: Path, summary: Summary) -> None:
    if summary.snapshot_id == summary.name:
        return  # a snapshot without an id: nothing to key its summary by
    try:
        write_text_atomically(history.summary_path(directory, summary.snapshot_id, __version__),
                              json.dumps(summary.to_json(), indent=1) + "\n")
    except RegstatError:
        pass  # a history we may not write (read-only): the summaries are computed each time
