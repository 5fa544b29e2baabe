"""`regstat report`: the numbers of a snapshot, as one `Report` object.

`build_report()` runs the analysis views (regstat.analysis) and the report queries of `sql/`
(orphaned_summary, orphaned_by_repository, blob_totals, sharing_histogram, largest_layers,
most_shared_layers, stale_upload_summary) over a snapshot, then the headline, reclaimable now
(regstat.report.reclaimable). The formats (regstat.report.text, json_format, markdown and
html) only format what is here.

What the source could not see is never a zero: a figure the snapshot's capabilities rule out
is None, with the reason in `unknown`; a figure computed from descriptor sizes where stored
sizes were invisible keeps its value, with the reason in `estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from .. import analysis, queries
from ..analysis import engine
from ..analysis.engine import Engine, SparkOptions
from ..errors import CrawlError
from ..model import repository_selected
from ..snapshot import Snapshot, SnapshotInfo, iso
from .reclaimable import GRACE, bind_settings, reclaimable_now

FORMAT = "regstat.report/1"
DEFAULT_TOP = 10

# Figures that need untagged manifests, and those that need stored blobs, to be seen at all.
ORPHAN_FIGURES = ("orphaned_manifests", "orphaned_blobs", "orphaned_manifest_bytes")
UNREFERENCED_FIGURES = ("unreferenced_blobs", "unreferenced_blob_bytes")
SUMMARY_FIGURES = (
    "reclaimable_now_bytes",
    "physical_bytes",
    "logical_bytes",
    "dedup_savings_bytes",
    *ORPHAN_FIGURES,
    *UNREFERENCED_FIGURES,
)

_NO_UNTAGGED = (
    "the source ({kind}) cannot see untagged manifests, so orphaned manifests and what they hold are unknown"
)
_NO_STORED = "the source ({kind}) cannot see stored blobs, so blobs no manifest references are unknown"
_PARTIAL_STORED = (
    "a blob no crawled manifest references may be used by a repository --repository left out, "
    "so unreferenced blobs are unknown"
)
_NO_UPLOADS = "the source ({kind}) cannot see uploads in progress"
_NO_SIZES = (
    "the source ({kind}) cannot see stored blobs: the sum of the distinct blobs that descriptors name "
    "(blobs only untagged manifests reference are missing from it)"
)
_SIZES_FOR_ORPHANS = (
    "blob sizes come from descriptors, and the registry ({kind}) frees blobs itself: what it frees may differ"
)


@dataclass(frozen=True)
class Report:
    """Everything `regstat report` shows, from one snapshot.

    `summary` holds SUMMARY_FIGURES (None where unknown); `unknown` and `estimates` map a
    figure's name to why it is unknown or estimated; `state` says in a few words whether the
    snapshot is complete (or incomplete, or partial: how many repositories of how many),
    and `warnings` what follows from it (errors, a --repository filter, manifests that did
    not parse), each said once. `reclaimable` breaks the headline down
    (regstat.report.reclaimable.Reclaimable.to_json); `stale_uploads` is None where the source cannot
    see uploads.
    """

    snapshot: dict[str, Any]
    state: str
    summary: dict[str, int | None]
    unknown: dict[str, str]
    estimates: dict[str, str]
    warnings: list[str]
    repositories: list[dict[str, Any]]
    sharing_histogram: list[dict[str, int]]
    largest_layers: list[dict[str, Any]]
    most_shared_layers: list[dict[str, Any]]
    orphaned_by_repository: list[dict[str, Any]] | None
    reclaimable: dict[str, Any]
    stale_uploads: dict[str, Any] | None
    top: int = DEFAULT_TOP
    scope: tuple[str, ...] = ()  # report -r: the globs the repository rows are limited to

    @property
    def complete(self) -> bool:
        return bool(self.snapshot["complete"])

    def to_json(self) -> dict[str, Any]:
        """The `--format json` document: summary figures at the top level."""
        return {
            "format": FORMAT,
            "snapshot": self.snapshot,
            "complete": self.complete,
            "state": self.state,
            "warnings": self.warnings,
            "repository_scope": list(self.scope) or None,
            **self.summary,
            "reclaimable_now": self.reclaimable,
            "stale_uploads": self.stale_uploads,
            "unknown": self.unknown,
            "estimates": self.estimates,
            "repositories": self.repositories,
            "sharing_histogram": self.sharing_histogram,
            "top": {
                "n": self.top,
                "largest_layers": self.largest_layers,
                "most_shared_layers": self.most_shared_layers,
                "orphaned_by_repository": self.orphaned_by_repository,
            },
        }


def build_report(
    snapshot: Snapshot, *, top: int = DEFAULT_TOP, memory_limit: str | None = None, repositories: tuple[str, ...] = (),
    engine_name: str = "duckdb", spark: SparkOptions | None = None,
) -> Report:
    """Compute the report of `snapshot` on the engine `engine_name` (engine.ENGINES); `top`
    bounds each top list. `repositories` (globs) limits the rows per repository; every other
    figure stays registry-wide."""
    info = snapshot.info
    kind = info.source.kind
    sees_untagged = info.capabilities.untagged_manifests
    sees_stored = info.capabilities.unreferenced_blobs
    stored_sizes = info.capabilities.stored_blob_sizes

    # Keyed: every join and group-by on digest ids; _all turns the ids it returns into digests.
    con = analysis.open_engine(snapshot, name=engine_name, memory_limit=memory_limit, spark=spark, keyed=True)
    try:
        # Every report query reads these two: compute each once (on 10M descriptors,
        # recomputing them per query dominated the report's time; benchmarks/RESULTS.md).
        con.materialise_view("repository_references")
        con.materialise_view("blob_references")
        # Read twice (blob_totals, reclaimable_now): an anti-join of every stored blob with
        # blob_references, a few rows out.
        con.materialise_view("unreferenced_blobs")
        dedup = _one(con, "SELECT physical_bytes, logical_bytes, dedup_savings_bytes FROM dedup_summary")
        totals = _one(con, queries.load("blob_totals"))
        orphaned = _one(con, queries.load("orphaned_summary"))
        usage = _all(con, "SELECT * FROM repository_usage ORDER BY repository NULLS LAST")
        usage = [row for row in usage if repository_selected(row["repository"], repositories)]
        states = {r["repository"]: r for r in _all(con, "SELECT repository, complete, error_count FROM repositories")}
        histogram = _all(con, queries.load("sharing_histogram"))
        largest = _all(con, queries.load("largest_layers"), limit=top)
        shared = _all(con, queries.load("most_shared_layers"), limit=top)
        by_repository: list[dict[str, Any]] | None
        by_repository = _all(con, queries.load("orphaned_by_repository"), limit=None if repositories else top)
        by_repository = [row for row in by_repository if repository_selected(row["repository"], repositories)][:top]
        bind_settings(con, info)
        stale = _one(con, queries.load("stale_upload_summary"))
        # Last: it replaces `reachable`, which every query above reads, by what the plan keeps.
        reclaimable = reclaimable_now(con, info)
    finally:
        con.close()

    partial = info.partial
    if partial:  # the blobs the crawled repositories use, not every blob the store holds
        physical = totals["referenced_stored_bytes"] if stored_sizes else totals["referenced_bytes"]
    else:
        physical = totals["stored_bytes"] if stored_sizes else totals["known_bytes"]
    summary: dict[str, int | None] = {
        "reclaimable_now_bytes": reclaimable.bytes,
        "physical_bytes": physical,
        "logical_bytes": dedup["logical_bytes"],
        "dedup_savings_bytes": dedup["dedup_savings_bytes"],
        **{k: orphaned[k] for k in ORPHAN_FIGURES},
        **{k: totals[k] for k in UNREFERENCED_FIGURES},
    }
    unknown: dict[str, str] = {}
    estimates: dict[str, str] = {}
    if not sees_untagged:
        for name in ORPHAN_FIGURES:
            summary[name] = None
            unknown[name] = _NO_UNTAGGED.format(kind=kind)
        for row in usage:
            row["orphaned_manifests"] = row["orphaned_bytes"] = None
        by_repository = None
    elif not stored_sizes:
        estimates["orphaned_manifest_bytes"] = _SIZES_FOR_ORPHANS.format(kind=kind)
    if not sees_stored:
        for name in UNREFERENCED_FIGURES:
            summary[name] = None
            unknown[name] = (_PARTIAL_STORED if partial and stored_sizes else _NO_STORED).format(kind=kind)
    if not stored_sizes:
        estimates["physical_bytes"] = _NO_SIZES.format(kind=kind)
    if reclaimable.estimate:
        estimates["reclaimable_now_bytes"] = "; ".join(reclaimable.estimate)
    stale_uploads = None
    if stored_sizes:  # storage and OCI layouts; the registry API and ECR show no uploads
        stale_uploads = {"grace": GRACE, **stale}
    else:
        unknown["stale_uploads"] = _NO_UPLOADS.format(kind=kind)
    for row in usage:
        # All it references: what its storage bar shows, the two parts stacked.
        row["referenced_bytes"] = row["exclusive_bytes"] + row["shared_bytes"]
        state = states.get(row["repository"], {})
        row["complete"] = state.get("complete")
        row["error_count"] = state.get("error_count")

    identity = _identity(info)
    return Report(
        snapshot=identity,
        state=state_text(identity),
        summary=summary,
        unknown=unknown,
        estimates=estimates,
        warnings=_warnings(info, totals["unparsed_manifests"] or 0) + _scope_warnings(repositories),
        repositories=usage,
        sharing_histogram=histogram,
        largest_layers=largest,
        most_shared_layers=shared,
        orphaned_by_repository=by_repository,
        reclaimable=reclaimable.to_json(),
        stale_uploads=stale_uploads,
        top=top,
        scope=tuple(repositories),
    )


def _scope_warnings(repositories: tuple[str, ...]) -> list[str]:
    if not repositories:
        return []
    return [f"--repository {', '.join(repositories)}: the rows per repository show only these; every other "
            "figure (reclaimable now, totals, layers, uploads) is registry-wide"]


def _identity(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "source": info.source.to_json(),
        "capabilities": info.capabilities.to_json(),
        "taken_at": iso(info.finished_at),
        "started_at": iso(info.started_at),
        "finished_at": iso(info.finished_at),
        "complete": info.complete,
        "partial": info.partial,
        "repository_filter": list(info.repository_filter),
        "repositories": info.counts.get("repositories"),
        "source_repositories": info.source_repositories,
        "incomplete_repositories": list(info.incomplete_repositories),
        "errors": len(info.errors),
        "error_kinds": _error_kinds(info.errors),
        "regstat_version": info.regstat_version,
    }


def _error_kinds(errors: tuple[CrawlError, ...]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for error in errors:
        kinds[error.kind] = kinds.get(error.kind, 0) + 1
    return dict(sorted(kinds.items()))


def state_text(snapshot: dict[str, Any]) -> str:
    """The snapshot's state in a few words, each condition once: 'complete', or what it
    lacks: 'INCOMPLETE: 3 crawl errors in 1 repository', 'partial: 2 of 40 repositories'
    (of how many, where snapshot.json records it), or both."""
    if snapshot["complete"]:
        return "complete"
    parts = []
    errors, bad = snapshot["errors"], len(snapshot["incomplete_repositories"])
    if errors:
        where = f" in {counted(bad, 'repository', 'repositories')}" if bad else ""
        parts.append(f"INCOMPLETE: {counted(errors, 'crawl error')}{where}")
    elif not snapshot["partial"]:
        parts.append("INCOMPLETE: snapshot.json does not mark it complete")
    if snapshot["partial"]:
        crawled, total = snapshot["repositories"], snapshot["source_repositories"]
        if crawled is None:
            parts.append("partial")
        elif total is None:
            parts.append(f"partial: {counted(crawled, 'repository', 'repositories')}")
        else:
            parts.append(f"partial: {crawled:,} of {counted(total, 'repository', 'repositories')}")
    return "; ".join(parts)


def counted(n: int, one: str, many: str | None = None) -> str:
    """'1 repository', '2,000 repositories' (`many` defaults to `one` + 's')."""
    return f"{n:,} {one if n == 1 else many or one + 's'}"


def _warnings(info: SnapshotInfo, unparsed: int) -> list[str]:
    """What the state means for the figures, once per condition (the state says which)."""
    warnings = []
    if info.errors:
        warnings.append(
            "the figures cover only what the crawl could read; its errors are listed in snapshot.json"
        )
    elif not info.complete and not info.partial:
        warnings.append("the figures may miss what the crawl did not read")
    if info.partial:
        globs = ", ".join(info.repository_filter)
        warnings.append(
            f"only the repositories matching --repository {globs} were crawled: physical bytes count the "
            "blobs they reference, and exclusive, shared and orphaned bytes do not see the other repositories' "
            "references"
        )
    if unparsed:
        warnings.append(
            f"{unparsed} manifest{' does' if unparsed == 1 else 's do'} not parse: what "
            f"{'it references is' if unparsed == 1 else 'they reference is'} unknown, so blobs counted as "
            "orphaned or unreferenced may still be in use"
        )
    return warnings


def _one(con: Engine, sql: str) -> dict[str, Any]:
    rows = _all(con, sql)
    return rows[0]


def _all(con: Engine, sql: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    sql = sql.strip().rstrip(";")
    if limit is not None:
        # DuckDB keeps a subquery's order under LIMIT and plans the pair as a top-N: no full
        # sort of millions of layers for ten rows.
        sql = f"SELECT * FROM ({sql}) AS q LIMIT {int(limit)}"
    columns, rows = con.rows(sql)
    return engine.decode_rows(con, [dict(zip(columns, row, strict=True)) for row in rows])
