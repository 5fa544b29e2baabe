"""What the diff's formats (diff_text: text and markdown, diff_html) share: the figures then
and now as words, the counts of changes as a sentence, and each list as a table of cells
(`Table`), so that every format shows the same columns with the same numbers."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from ..render import human_bytes, human_time, short_digest, to_json_value
from .diff import COUNTS, FIGURES, Diff
from .numbers import counted


@dataclass(frozen=True)
class Table:
    """A list of the diff as cells: `total` rows exist, `rows` are the first of them; None
    rows: unknown (the source cannot see what the list needs)."""

    title: str
    headers: tuple[str, ...]
    numeric: tuple[bool, ...]
    rows: list[tuple[str, ...]] | None
    total: int | None
    caption: str = ""  # what terse headers mean


def signed_bytes(n: int | None) -> str:
    """A change of bytes: '+8.3 KiB', '-557 B', '0 B', 'unknown'."""
    if n is None:
        return "unknown"
    return ("+" if n > 0 else "-" if n < 0 else "") + human_bytes(abs(n))


def signed_count(n: int | None) -> str:
    if n is None:
        return "unknown"
    return f"{n:+,}" if n else "0"


def figure_rows(diff: Diff) -> list[tuple[str, str, str, str]]:
    """(label, then, now, change) for each figure, bytes in human units, estimates marked."""
    out = []
    for name, label in FIGURES + COUNTS:
        f = diff.figures[name]
        is_bytes = name.endswith("_bytes")
        then, now = (human_bytes(v) if is_bytes else "unknown" if v is None else f"{v:,}" for v in (f["old"], f["new"]))
        change = signed_bytes(f["change"]) if is_bytes else signed_count(f["change"])
        if name in diff.estimates:
            change += " (estimate)"
        out.append((label, then, now, change))
    return out


def headline(diff: Diff) -> str:
    """'physical bytes grew by 8.3 KiB (8,499 B), from 451.8 KiB to 460.1 KiB' (or shrank,
    or did not change)."""
    f = diff.figures["physical_bytes"]
    change = f["change"] or 0
    how = "grew by" if change > 0 else "shrank by" if change < 0 else "did not change"
    amount = f" {human_bytes(abs(change))}" + (f" ({abs(change):,} B)" if abs(change) >= 1024 else "") if change else ""
    return f"physical bytes {how}{amount}, from {human_bytes(f['old'])} to {human_bytes(f['new'])}"


def changes_text(diff: Diff) -> str:
    """The counts of changes in one sentence."""
    c = diff.changes
    parts = [
        f"tags: {c['tags_added']:,} added, {c['tags_removed']:,} removed, {c['tags_moved']:,} moved",
        f"manifests: {c['manifests_added']:,} added, {c['manifests_removed']:,} removed",
        "new orphans: unknown" if c["new_orphans"] is None else counted(c["new_orphans"], "new orphan"),
        f"{counted(c['new_layers'], 'new layer')} ({human_bytes(c['new_layer_bytes'])})",
    ]
    if c["repositories_added"] or c["repositories_removed"]:
        parts.append(f"repositories: {c['repositories_added']:,} added, {c['repositories_removed']:,} removed")
    return "; ".join(parts)


def side_line(side: dict[str, Any]) -> str:
    return f"{side['id']} taken {human_time(side['taken_at'])} ({side['state']})"


def source_line(diff: Diff) -> str:
    source = diff.new["source"]
    return f"{source['kind']} {source['location'] or ''}".strip()


def notes(diff: Diff) -> list[str]:
    """Why each unknown is unknown and each estimate an estimate; figures with one reason share its line."""
    lines = []
    for kind, reasons in (("unknown", diff.unknown), ("estimate", diff.estimates)):
        names: dict[str, list[str]] = {}
        for name, why in reasons.items():
            names.setdefault(why, []).append(name)
        lines += [f"{', '.join(figures)}: {kind}: {why}" for why, figures in names.items()]
    return lines


def tables(diff: Diff, limit: int | None = None) -> list[Table]:
    """The lists as tables; with `limit` (markdown's short form for a chat message), each cut
    to that many rows, and the repositories' with fewer columns."""
    c = diff.changes
    tag_total = c["tags_added"] + c["tags_removed"] + c["tags_moved"]
    manifest_total = c["manifests_added"] + c["manifests_removed"]
    orphans: list[tuple[str, ...]] | None = None if diff.new_orphans is None else [
        (str(r["repository"]), short_digest(r["digest"]), str(r["reason"]), human_bytes(r["exclusive_bytes"]))
        for r in diff.new_orphans]
    out = [
        Table("Repositories", ("repository", "status", "tags", "manifests", "new orphans", "referenced then", "now",
                               "change", "exclusive", "logical", "orphaned"),
              (False, False, True, True, True, True, True, True, True, True, True),
              [_repository_cells(r) for r in diff.repositories], None,
              "tags: +added -removed ~moved; manifests: +added -removed; referenced: the bytes its manifests "
              "reference, exclusive and shared; exclusive, logical, orphaned: how those bytes changed"),
        Table("Tags", ("repository", "tag", "change", "then", "now"), (False,) * 5,
              [(r["repository"], r["tag"], r["change"], short_digest(r["old_digest"]) or "-",
                short_digest(r["new_digest"]) or "-") for r in diff.tags], tag_total),
        Table("Manifests", ("repository", "digest", "change", "media type", "size"), (False,) * 4 + (True,),
              [(r["repository"], short_digest(r["digest"]), r["change"], r["media_type"] or "",
                human_bytes(r["size"])) for r in diff.manifests], manifest_total),
        Table("New orphans", ("repository", "digest", "reason", "freed alone"), (False,) * 3 + (True,),
              orphans, c["new_orphans"]),
        Table("Largest new layers", ("digest", "size", "media type", "repositories"), (False, True, False, True),
              [(short_digest(r["digest"]), human_bytes(r["size"]), r["media_type"] or "", f"{r['repositories']:,}")
               for r in diff.new_layers], c["new_layers"]),
    ]
    if limit is not None:
        out = [Table(t.title, t.headers, t.numeric, None if t.rows is None else t.rows[:limit], t.total, t.caption)
               for t in out]
        t = out[0]
        keep = (0, 2, 3, 4, 7)  # repository, tags, manifests, new orphans, change of referenced bytes
        out[0] = Table(t.title, (*(t.headers[i] for i in keep[:-1]), "referenced change"),
                       tuple(t.numeric[i] for i in keep), [tuple(row[i] for i in keep) for row in t.rows or []],
                       t.total, "tags: +added -removed ~moved; manifests: +added -removed")
    return out


def title(table: Table) -> str:
    """'Tags (3)', or 'Tags (first 20 of 35)' when the list is cut."""
    if table.rows is None:
        return table.title
    total = table.total
    if total is not None and total > len(table.rows):
        return f"{table.title} (first {len(table.rows):,} of {total:,})"
    return f"{table.title} ({len(table.rows):,})" if total is not None else table.title


def _repository_cells(r: dict[str, Any]) -> tuple[str, ...]:
    def change(name: str) -> str:
        # A repository added has no figure then, one removed none now: those count as 0.
        old, new = r[f"old_{name}"], r[f"new_{name}"]
        if (old is None and r["status"] != "added") or (new is None and r["status"] != "removed"):
            return "unknown"
        return signed_bytes((new or 0) - (old or 0))

    return (
        r["repository"], r["status"],
        f"+{r['tags_added']:,} -{r['tags_removed']:,} ~{r['tags_moved']:,}",
        f"+{r['manifests_added']:,} -{r['manifests_removed']:,}",
        "unknown" if r["new_orphans"] is None else f"{r['new_orphans']:,}",
        human_bytes(r["old_referenced_bytes"]) if r["old_referenced_bytes"] is not None else "-",
        human_bytes(r["new_referenced_bytes"]) if r["new_referenced_bytes"] is not None else "-",
        signed_bytes(r["referenced_bytes_change"]),
        change("exclusive_bytes"), change("logical_bytes"), change("orphaned_bytes"),
    )


def render_json(diff: Diff) -> str:
    return json.dumps(to_json_value(diff.to_json()), indent=1) + "\n"
