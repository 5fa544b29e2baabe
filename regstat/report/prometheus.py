"""A Report as Prometheus metrics: the text exposition format 0.0.4, which node_exporter's
textfile collector reads (`report --format prometheus -o DIR/regstat.prom`; the file is
written atomically, regstat.atomic, so the collector never reads half of it).

Names follow Prometheus' conventions: a `regstat_` prefix, base units in the name (`_bytes`,
`_seconds`), gauges throughout (every figure is a state of the registry, not a running
count). A figure the source cannot see is left out, with a comment saying why: a missing
series alerts as absent, a zero would lie.
"""

from __future__ import annotations

from collections.abc import Iterable

from ..snapshot import SnapshotInfo
from .numbers import Report

# (metric, the report's figure, help): registry-wide figures.
FIGURE_METRICS = (
    ("regstat_physical_bytes", "physical_bytes", "Bytes of the distinct blobs stored (each blob once)."),
    ("regstat_logical_bytes", "logical_bytes", "Bytes the repositories would take if nothing were shared."),
    ("regstat_dedup_savings_bytes", "dedup_savings_bytes", "Bytes layer sharing saves (logical minus physical)."),
    ("regstat_reclaimable_bytes", "reclaimable_now_bytes",
     "Bytes plan-gc --untagged would free now, with the default grace period."),
    ("regstat_orphaned_manifests", "orphaned_manifests", "Manifests no tag reaches."),
    ("regstat_orphaned_manifest_bytes", "orphaned_manifest_bytes",
     "Bytes deleting every orphaned manifest would free."),
    ("regstat_unreferenced_blobs", "unreferenced_blobs", "Stored blobs no manifest references."),
    ("regstat_unreferenced_blob_bytes", "unreferenced_blob_bytes", "Bytes of the stored blobs no manifest references."),
)
# (metric, the snapshot's count, help).
COUNT_METRICS = (
    ("regstat_repositories", "repositories", "Repositories in the snapshot."),
    ("regstat_manifests", "manifests", "Manifests in the snapshot (distinct digests)."),
    ("regstat_blobs", "blobs", "Blobs in the snapshot."),
    ("regstat_tags", "tags", "Tags in the snapshot."),
)
# (metric, the repository row's figure, help): for the top repositories by exclusive bytes.
REPOSITORY_METRICS = (
    ("regstat_repository_exclusive_bytes", "exclusive_bytes",
     "Bytes only this repository references (freed if it went); the largest repositories."),
    ("regstat_repository_logical_bytes", "logical_bytes", "Bytes of the blobs this repository references, summed."),
    ("regstat_repository_orphaned_bytes", "orphaned_bytes", "Bytes this repository's orphaned manifests alone hold."),
)


def render_prometheus(report: Report, info: SnapshotInfo) -> str:
    """The metrics of `report` (of the snapshot `info` describes); per-repository series for
    its `top` largest repositories."""
    out: list[str] = []
    for name, figure, text in FIGURE_METRICS:
        value = report.summary.get(figure)
        if value is None:
            out.append(f"# {name} left out: {_comment(report.unknown.get(figure, 'unknown'))}")
        else:
            out += _family(name, text, [((), value)])
    counts = {**info.counts, "tags": sum(r["tags"] or 0 for r in report.repositories)}
    for name, key, text in COUNT_METRICS:
        if counts.get(key) is not None:
            out += _family(name, text, [((), counts[key])])
    started, finished = info.started_at, info.finished_at
    if finished is not None:
        out += _family("regstat_snapshot_timestamp_seconds", "When the snapshot's crawl finished (Unix time).",
                       [((), finished.timestamp())])
    if started is not None and finished is not None:
        out += _family("regstat_crawl_duration_seconds",
                       "How long the snapshot's crawl took, start to finish (a resumed crawl: with its pause).",
                       [((), (finished - started).total_seconds())])
    out += _family("regstat_crawl_errors", "Problems the crawl recorded (the snapshot is incomplete when above 0).",
                   [((), len(info.errors))])
    out += _family("regstat_snapshot_complete", "1 if the snapshot is complete (no errors, not partial), else 0.",
                   [((), 1 if report.complete else 0)])
    out += _family("regstat_snapshot_info", "The snapshot read, as labels (value always 1).",
                   [((("id", info.id or ""), ("source", info.source.kind),
                      ("regstat_version", info.regstat_version or "")), 1)])
    top = sorted(report.repositories, key=lambda r: (-(r["exclusive_bytes"] or 0), r["repository"]))[: report.top]
    for name, figure, text in REPOSITORY_METRICS:
        samples = [((("repository", r["repository"]),), r[figure]) for r in top if r.get(figure) is not None]
        if samples:
            out += _family(name, text, samples)
    return "\n".join(out) + "\n"


def _family(name: str, text: str, samples: Iterable[tuple[tuple[tuple[str, str], ...], float | int]]) -> list[str]:
    lines = [f"# HELP {name} {_help(text)}", f"# TYPE {name} gauge"]
    for labels, value in samples:
        rendered = ",".join(f'{key}="{escape_label(value_)}"' for key, value_ in labels)
        lines.append(f"{name}{{{rendered}}} {_number(value)}" if labels else f"{name} {_number(value)}")
    return lines


def escape_label(value: str) -> str:
    """A label value as the format requires: backslash, double quote and line feed escaped."""
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _help(text: str) -> str:
    return text.replace("\\", "\\\\").replace("\n", "\\n")


def _comment(text: str) -> str:
    return " ".join(str(text).split())  # one line, whatever the reason's text holds


def _number(value: float | int) -> str:
    return str(int(value)) if float(value).is_integer() else repr(float(value))
