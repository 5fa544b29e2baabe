"""`regstat report`: the numbers of a snapshot, as one `Report` object.

`build_report()` runs the analysis views (regstat.analysis) and the report queries of `sql/`
(orphaned_summary, orphaned_by_repository, blob_totals, sharing_histogram, largest_layers,
most_shared_layers) over a snapshot. The renderings (regstat.report_render for text, markdown
and JSON, regstat.report_html for HTML) only format what is here.

What the source could not see is never a zero: a figure the snapshot's capabilities rule out
is None, with the reason in `unknown`; a figure computed from descriptor sizes where stored
sizes were invisible keeps its value, with the reason in `estimates`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import duckdb

from . import analysis, queries
from .snapshot import Snapshot

FORMAT = "regstat.report/1"
DEFAULT_TOP = 10

# Figures that need untagged manifests, and those that need stored blobs, to be seen at all.
ORPHAN_FIGURES = ("orphaned_manifests", "orphaned_blobs", "orphaned_manifest_bytes")
UNREFERENCED_FIGURES = ("unreferenced_blobs", "unreferenced_blob_bytes")
SUMMARY_FIGURES = (
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
    figure's name to why it is unknown or estimated; `warnings` say what the snapshot lacks
    (errors, a --repository filter, manifests that did not parse).
    """

    snapshot: dict[str, Any]
    summary: dict[str, int | None]
    unknown: dict[str, str]
    estimates: dict[str, str]
    warnings: list[str]
    repositories: list[dict[str, Any]]
    sharing_histogram: list[dict[str, int]]
    largest_layers: list[dict[str, Any]]
    most_shared_layers: list[dict[str, Any]]
    orphaned_by_repository: list[dict[str, Any]] | None
    top: int = DEFAULT_TOP

    @property
    def complete(self) -> bool:
        return bool(self.snapshot["complete"])

    def to_json(self) -> dict[str, Any]:
        """The `--format json` document: summary figures at the top level."""
        return {
            "format": FORMAT,
            "snapshot": self.snapshot,
            "complete": self.complete,
            "warnings": self.warnings,
            **self.summary,
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


def build_report(snapshot: Snapshot, *, top: int = DEFAULT_TOP, memory_limit: str | None = None) -> Report:
    """Compute the report of `snapshot`; `top` bounds each top list."""
    meta = snapshot.metadata
    capabilities = meta.get("capabilities") or {}
    kind = (meta.get("source") or {}).get("kind", "unknown")
    sees_untagged = capabilities.get("untagged_manifests") is True
    sees_stored = capabilities.get("unreferenced_blobs") is True
    stored_sizes = capabilities.get("stored_blob_sizes") is True

    con = analysis.connect(snapshot, memory_limit=memory_limit)
    try:
        # Several report queries read these: compute each once (measured on 10M descriptors,
        # recomputing manifest_references, the kept blobs and the per-blob groupings per query
        # dominated the report's time). The queries below give the numbers of dedup_summary,
        # orphaned_summary, repository_usage and orphaned_by_repository, read from these tables.
        _materialise(con, "manifest_references")
        con.execute(f"CREATE TEMP TABLE report_repository_blobs AS {_REPOSITORY_BLOBS}")
        con.execute(f"CREATE TEMP TABLE report_blobs AS {_BLOBS}")
        con.execute(f"CREATE TEMP TABLE report_layer_pairs AS {_LAYER_PAIRS}")
        _replace(con, "layer_sharing", _LAYER_SHARING)
        _replace(con, "unreferenced_blobs", _UNREFERENCED_BLOBS)
        dedup = _one(con, _DEDUP)
        totals = _one(con, queries.load("blob_totals"))
        orphaned = _one(con, _ORPHANED_SUMMARY)
        usage = _all(con, _REPOSITORY_USAGE)
        states = {r["repository"]: r for r in _all(con, "SELECT repository, complete, error_count FROM repositories")}
        histogram = _all(con, queries.load("sharing_histogram"))
        largest = _all(con, queries.load("largest_layers"), limit=top)
        shared = _all(con, queries.load("most_shared_layers"), limit=top)
        by_repository = _all(con, _ORPHANED_BY_REPOSITORY, limit=top)
    finally:
        con.close()

    summary: dict[str, int | None] = {
        "physical_bytes": totals["stored_bytes"] if stored_sizes else totals["known_bytes"],
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
            unknown[name] = _NO_STORED.format(kind=kind)
    if not stored_sizes:
        estimates["physical_bytes"] = _NO_SIZES.format(kind=kind)
    for row in usage:
        state = states.get(row["repository"], {})
        row["complete"] = state.get("complete")
        row["error_count"] = state.get("error_count")

    return Report(
        snapshot=_identity(meta),
        summary=summary,
        unknown=unknown,
        estimates=estimates,
        warnings=_warnings(meta, totals["unparsed_manifests"] or 0),
        repositories=usage,
        sharing_histogram=histogram,
        largest_layers=largest,
        most_shared_layers=shared,
        orphaned_by_repository=by_repository,
        top=top,
    )


# The report's shared intermediates (build_report). Per (repository, blob) of manifest_references:
# the blob's size as repository_usage's repo_blobs sizes it, and whether a reachable manifest of
# that repository references it.
_REPOSITORY_BLOBS = """
SELECT
    r.repository,
    r.digest,
    CAST(MAX(COALESCE(b.size, r.size)) AS BIGINT) AS size,
    MAX(CASE WHEN k.digest IS NULL THEN 0 ELSE 1 END) AS kept
FROM manifest_references AS r
LEFT JOIN blobs AS b ON b.digest = r.digest
LEFT JOIN reachable AS k ON k.repository = r.repository AND k.digest = r.manifest_digest
GROUP BY r.repository, r.digest
"""
# Per blob: the repositories referencing it, its size (largest), whether any kept manifest does.
_BLOBS = """
SELECT rb.digest, COUNT(*) AS repositories, MAX(rb.size) AS size, MAX(rb.kept) AS kept
FROM report_repository_blobs AS rb
GROUP BY rb.digest
"""
# The config and layer references of each (repository, manifest) pair, as layer_sharing and
# repository_usage's logical bytes group the descriptors.
_LAYER_PAIRS = """
SELECT d.digest, d.repository, d.manifest_digest, MAX(d.size) AS size, MIN(d.media_type) AS media_type
FROM descriptors AS d
WHERE d.role IN ('config', 'layer')
GROUP BY d.digest, d.repository, d.manifest_digest
"""
# The rows of the view layer_sharing, from report_layer_pairs.
_LAYER_SHARING = """
SELECT
    p.digest,
    CAST(MAX(COALESCE(b.size, p.size)) AS BIGINT) AS size,
    MIN(p.media_type) AS media_type,
    CAST(COUNT(*) AS BIGINT) AS manifests,
    CAST(COUNT(DISTINCT p.repository) AS BIGINT) AS repositories,
    CAST(MAX(COALESCE(b.size, p.size)) AS BIGINT) * (CAST(COUNT(*) AS BIGINT) - 1) AS savings_bytes
FROM report_layer_pairs AS p
LEFT JOIN blobs AS b ON b.digest = p.digest
GROUP BY p.digest
"""
# The rows of the view unreferenced_blobs: the digests of manifest_references are exactly the
# manifests' and the config, layer and index-child descriptors' digests.
_UNREFERENCED_BLOBS = """
SELECT b.digest, CAST(b.size AS BIGINT) AS size, b.modified_at
FROM blobs AS b
WHERE b.stored
AND NOT EXISTS (SELECT 1 FROM report_blobs AS r WHERE r.digest = b.digest)
"""
# dedup_summary, from layer_sharing (its per-blob size and references).
_DEDUP = """
SELECT
    physical.physical_bytes,
    shared.logical_bytes,
    shared.dedup_savings_bytes
FROM (
    SELECT CAST(COALESCE(SUM(s.size), 0) AS BIGINT) AS physical_bytes
    FROM blobs AS s
    WHERE s.stored
) AS physical
CROSS JOIN (
    SELECT
        CAST(COALESCE(SUM(l.size * l.manifests), 0) AS BIGINT) AS logical_bytes,
        CAST(COALESCE(SUM(l.size * (l.manifests - 1)), 0) AS BIGINT) AS dedup_savings_bytes
    FROM layer_sharing AS l
) AS shared
"""
# orphaned_summary: the blobs no kept manifest references.
_ORPHANED_SUMMARY = """
SELECT
    orphans.orphaned_manifests,
    released.orphaned_blobs,
    released.orphaned_manifest_bytes
FROM (
    SELECT CAST(COUNT(*) AS BIGINT) AS orphaned_manifests
    FROM manifests AS m
    WHERE NOT EXISTS (
        SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
    )
) AS orphans
CROSS JOIN (
    SELECT
        CAST(COUNT(*) AS BIGINT) AS orphaned_blobs,
        CAST(COALESCE(SUM(f.size), 0) AS BIGINT) AS orphaned_manifest_bytes
    FROM report_blobs AS f
    WHERE f.kept = 0
) AS released
"""
# repository_usage (its columns and rows), storage and orphaned bytes from the tables above.
_REPOSITORY_USAGE = """
WITH storage AS (
    SELECT
        rb.repository,
        SUM(CASE WHEN br.repositories = 1 THEN rb.size ELSE 0 END) AS exclusive_bytes,
        SUM(CASE WHEN br.repositories > 1 THEN rb.size ELSE 0 END) AS shared_bytes,
        SUM(CASE WHEN br.repositories = 1 AND br.kept = 0 THEN rb.size ELSE 0 END) AS orphaned_bytes
    FROM report_repository_blobs AS rb
    JOIN report_blobs AS br ON br.digest = rb.digest
    GROUP BY rb.repository
),
logical AS (
    SELECT p.repository, SUM(COALESCE(b.size, p.size)) AS logical_bytes
    FROM report_layer_pairs AS p
    LEFT JOIN blobs AS b ON b.digest = p.digest
    GROUP BY p.repository
),
tag_counts AS (
    SELECT t.repository, COUNT(*) AS tags
    FROM tags AS t
    GROUP BY t.repository
),
manifest_counts AS (
    SELECT
        m.repository,
        COUNT(*) AS manifests,
        SUM(CASE WHEN k.digest IS NULL THEN 1 ELSE 0 END) AS orphaned_manifests
    FROM manifests AS m
    LEFT JOIN reachable AS k ON k.repository = m.repository AND k.digest = m.digest
    GROUP BY m.repository
)
SELECT
    r.repository,
    CAST(COALESCE(t.tags, 0) AS BIGINT) AS tags,
    CAST(COALESCE(mc.manifests, 0) AS BIGINT) AS manifests,
    CAST(COALESCE(mc.orphaned_manifests, 0) AS BIGINT) AS orphaned_manifests,
    CAST(COALESCE(l.logical_bytes, 0) AS BIGINT) AS logical_bytes,
    CAST(COALESCE(s.exclusive_bytes, 0) AS BIGINT) AS exclusive_bytes,
    CAST(COALESCE(s.shared_bytes, 0) AS BIGINT) AS shared_bytes,
    CAST(COALESCE(s.orphaned_bytes, 0) AS BIGINT) AS orphaned_bytes
FROM repositories AS r
LEFT JOIN tag_counts AS t ON t.repository = r.repository
LEFT JOIN manifest_counts AS mc ON mc.repository = r.repository
LEFT JOIN logical AS l ON l.repository = r.repository
LEFT JOIN storage AS s ON s.repository = r.repository
ORDER BY r.repository
"""
# orphaned_by_repository: freed blobs (no kept reference) split by how many repositories hold them.
_ORPHANED_BY_REPOSITORY = """
WITH released AS (
    SELECT
        rb.repository,
        SUM(CASE WHEN br.repositories = 1 THEN rb.size ELSE 0 END) AS orphaned_bytes,
        SUM(CASE WHEN br.repositories > 1 THEN rb.size ELSE 0 END) AS shared_orphaned_bytes
    FROM report_repository_blobs AS rb
    JOIN report_blobs AS br ON br.digest = rb.digest AND br.kept = 0
    GROUP BY rb.repository
),
orphans AS (
    SELECT m.repository, COUNT(*) AS orphaned_manifests
    FROM manifests AS m
    WHERE NOT EXISTS (
        SELECT 1 FROM reachable AS k WHERE k.repository = m.repository AND k.digest = m.digest
    )
    GROUP BY m.repository
)
SELECT
    o.repository,
    CAST(o.orphaned_manifests AS BIGINT) AS orphaned_manifests,
    CAST(COALESCE(x.orphaned_bytes, 0) AS BIGINT) AS orphaned_bytes,
    CAST(COALESCE(x.shared_orphaned_bytes, 0) AS BIGINT) AS shared_orphaned_bytes
FROM orphans AS o
LEFT JOIN released AS x ON x.repository = o.repository
ORDER BY COALESCE(x.orphaned_bytes, 0) + COALESCE(x.shared_orphaned_bytes, 0) DESC, o.repository
"""


def _identity(meta: dict[str, Any]) -> dict[str, Any]:
    errors = meta.get("errors") or []
    return {
        "id": meta.get("id"),
        "source": meta.get("source"),
        "capabilities": meta.get("capabilities"),
        "taken_at": meta.get("finished_at"),
        "started_at": meta.get("started_at"),
        "finished_at": meta.get("finished_at"),
        "complete": bool(meta.get("complete")),
        "partial": bool(meta.get("partial")),
        "repository_filter": list(meta.get("repository_filter") or []),
        "incomplete_repositories": list(meta.get("incomplete_repositories") or []),
        "errors": len(errors),
        "error_kinds": _error_kinds(errors),
        "regstat_version": meta.get("regstat_version"),
    }


def _error_kinds(errors: list[dict[str, Any]]) -> dict[str, int]:
    kinds: dict[str, int] = {}
    for error in errors:
        kinds[str(error.get("kind"))] = kinds.get(str(error.get("kind")), 0) + 1
    return dict(sorted(kinds.items()))


def _warnings(meta: dict[str, Any], unparsed: int) -> list[str]:
    warnings = []
    errors = meta.get("errors") or []
    if errors:
        bad = meta.get("incomplete_repositories") or []
        where = f" in {len(bad)} repositor{'y' if len(bad) == 1 else 'ies'}" if bad else ""
        warnings.append(
            f"INCOMPLETE snapshot: the crawl recorded {len(errors)} error{'' if len(errors) == 1 else 's'}{where}; "
            "the figures cover only what it could read (see errors in snapshot.json)"
        )
    elif not meta.get("complete"):
        warnings.append("INCOMPLETE snapshot: snapshot.json does not mark it complete")
    if meta.get("partial"):
        globs = ", ".join(meta.get("repository_filter") or [])
        warnings.append(
            f"partial snapshot (--repository {globs}): registry-wide figures (exclusive, shared and "
            "orphaned bytes) see only the crawled repositories"
        )
    if unparsed:
        warnings.append(
            f"{unparsed} manifest{' does' if unparsed == 1 else 's do'} not parse: what "
            f"{'it references is' if unparsed == 1 else 'they reference is'} unknown, so blobs counted as "
            "orphaned or unreferenced may still be in use"
        )
    return warnings


def _materialise(con: duckdb.DuckDBPyConnection, view: str) -> None:
    """Replace the view `view` by a table of its rows; views over it read the table."""
    con.execute(f"CREATE TABLE {view}__rows AS SELECT * FROM {view}")
    con.execute(f"DROP VIEW {view}")
    con.execute(f"ALTER TABLE {view}__rows RENAME TO {view}")


def _replace(con: duckdb.DuckDBPyConnection, view: str, rows_sql: str) -> None:
    """Replace the view `view` by a table of `rows_sql`, which gives the view's rows."""
    con.execute(f"CREATE TABLE {view}__rows AS {rows_sql}")
    con.execute(f"DROP VIEW {view}")
    con.execute(f"ALTER TABLE {view}__rows RENAME TO {view}")


def _one(con: duckdb.DuckDBPyConnection, sql: str) -> dict[str, Any]:
    rows = _all(con, sql)
    return rows[0]


def _all(con: duckdb.DuckDBPyConnection, sql: str, *, limit: int | None = None) -> list[dict[str, Any]]:
    cursor = con.execute(sql.strip().rstrip(";"))
    columns = [d[0] for d in cursor.description]
    rows = cursor.fetchall() if limit is None else cursor.fetchmany(limit)
    return [dict(zip(columns, row)) for row in rows]
