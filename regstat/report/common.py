"""What the report's formats (text, json_format, markdown, html) share: labels, the headline,
figures and cells, notes and sections. The formats import these, never each other.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ..render import human_bytes, human_time, short_digest
from .numbers import Report, counted

SUMMARY_LABELS = (
    ("physical_bytes", "physical (distinct stored blobs)"),
    ("logical_bytes", "logical (if nothing were shared)"),
    ("dedup_savings_bytes", "saved by layer sharing"),
    ("orphaned_manifest_bytes", "freed by deleting every orphaned manifest"),
    ("unreferenced_blob_bytes", "in blobs no manifest references"),
)
COUNT_LABELS = (
    ("orphaned_manifests", "orphaned manifests"),
    ("orphaned_blobs", "blobs only orphaned manifests hold"),
    ("unreferenced_blobs", "unreferenced blobs"),
)
REPOSITORY_COLUMNS = (
    ("repository", "repository"),
    ("tags", "tags"),
    ("manifests", "manifests"),
    ("orphaned_manifests", "orphaned"),
    ("logical_bytes", "logical"),
    ("referenced_bytes", "referenced"),
    ("exclusive_bytes", "exclusive"),
    ("shared_bytes", "shared"),
    ("orphaned_bytes", "orphaned bytes"),
)
LAYER_COLUMNS = (
    ("digest", "digest"),
    ("size", "size"),
    ("manifests", "manifests"),
    ("repositories", "repositories"),
    ("savings_bytes", "saved"),
    ("media_type", "media type"),
)
ORPHAN_COLUMNS = (
    ("repository", "repository"),
    ("orphaned_manifests", "orphaned manifests"),
    ("orphaned_bytes", "freed (its orphans alone)"),
    ("shared_orphaned_bytes", "freed with other repositories' orphans"),
)


def headline(report: Report) -> str:
    """The headline: 'reclaimable now: 2.7 KiB (2,766 B)', marked where it is an estimate."""
    return f"reclaimable now: {figure(report, 'reclaimable_now_bytes')}"


def headline_detail(report: Report) -> str:
    """What the headline counts, in words."""
    r = report.reclaimable
    return (
        f"what plan-gc --untagged would free (grace {r['grace']}): "
        f"{counted(r['manifests'], 'manifest')} no kept tag reaches ({human_bytes(r['manifest_bytes'])}), "
        f"{counted(r['unreferenced_blobs'], 'unreferenced blob')} ({human_bytes(r['unreferenced_blob_bytes'])}), "
        f"{counted(r['stale_uploads'], 'stale upload')} ({human_bytes(r['stale_upload_bytes'])})"
    )


def stale_uploads_text(report: Report) -> str:
    """The uploads older than the grace period: how many, their bytes, the oldest's start."""
    stale = report.stale_uploads
    if stale is None:
        return "unknown"
    if not stale["uploads"]:
        return "none"
    size = human_bytes(stale["upload_bytes"])
    if stale["unsized"]:
        size = ("size unknown" if stale["unsized"] == stale["uploads"]
                else f"{size} + {stale['unsized']:,} of unknown size")
    return f"{stale['uploads']:,} ({size}), the oldest started {human_time(stale['oldest_at'])}"


def stale_uploads_label(report: Report) -> str:
    return f"stale uploads (older than {report.reclaimable['grace']})"


def figure(report: Report, name: str) -> str:
    """A summary figure in words: bytes or a count, 'unknown', or marked as an estimate."""
    value = report.summary.get(name)
    text = human_bytes(value) if name.endswith("_bytes") else ("unknown" if value is None else f"{value:,}")
    if value is not None and name.endswith("_bytes") and value >= 1024:
        text += f" ({value:,} B)"
    if name in report.estimates:
        text += " (estimate)"
    return text


def cell(column: str, value: Any) -> str:
    if value is None:
        return "unknown"
    if column == "digest":
        return short_digest(value)
    if column.endswith("bytes") or column == "size":
        return human_bytes(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def source_line(report: Report) -> str:
    source = report.snapshot["source"]  # SourceInfo.to_json()
    return f"{source['kind']} {source['location'] or ''}".strip()


def notes(report: Report) -> list[str]:
    """The footnotes: why each unknown is unknown and each estimate an estimate."""
    lines = []
    for kind, reasons in (("unknown", report.unknown), ("estimate", report.estimates)):
        names: dict[str, list[str]] = {}  # figures with one reason share its line
        for name, why in reasons.items():
            names.setdefault(why, []).append(name)
        lines += [f"{', '.join(figures)}: {kind}: {why}" for why, figures in names.items()]
    return lines


def sections(report: Report) -> list[tuple[str, Sequence[tuple[str, str]], list[dict[str, Any]] | None]]:
    """The tables every text format shows: title, columns, rows (None: unknown)."""
    n = report.top
    return [
        ("Repositories", REPOSITORY_COLUMNS, report.repositories),
        (f"Largest layers (top {n})", LAYER_COLUMNS, report.largest_layers),
        (f"Most shared layers (top {n}, shared by 2 or more manifests)", LAYER_COLUMNS, report.most_shared_layers),
        (f"Orphaned space by repository (top {n})", ORPHAN_COLUMNS, report.orphaned_by_repository),
    ]
