"""Renderings of a plan: JSON (the plan itself), text for a terminal, Parquet of the actions."""

from __future__ import annotations

import io
import json
from typing import TextIO

import duckdb

from ..render import human_bytes as _bytes, human_time, safe_text, short_digest
from .plan import ACTION_KEYS, KINDS, Plan, summary_key

def write_json(plan: Plan, out: TextIO) -> None:
    """Write the plan's JSON to `out`. DuckDB renders the actions, a batch of the plan's file at
    a time: a plan of millions of actions never becomes millions of Python objects."""
    header = json.dumps(plan.header(), indent=1, default=str)
    out.write(header[:-2] + ',\n "actions": [')  # reopen the header object for its last key
    con = duckdb.connect()
    try:
        first = True
        for batch in plan.batches():
            if not batch.num_rows:
                continue
            con.register("actions", batch)
            rows = con.execute(f"SELECT {_json_object()} FROM actions ORDER BY position").fetchall()
            out.write(("\n  " if first else ",\n  ") + ",\n  ".join(row[0] for row in rows))
            first = False
            con.unregister("actions")
    finally:
        con.close()
    out.write("]\n}\n" if first else "\n ]\n}\n")


def render_json(plan: Plan) -> str:
    buffer = io.StringIO()
    write_json(plan, buffer)
    return buffer.getvalue()


def _json_object() -> str:
    """A DuckDB expression: the action's JSON object, with the keys its kind has (ACTION_KEYS)."""
    cases = " ".join(
        f"WHEN '{kind}' THEN to_json(struct_pack({', '.join(f'{k} := {k}' for k in keys)}))::VARCHAR"
        for kind, keys in ACTION_KEYS.items()
    )
    return f"CASE action {cases} END"


def render_text(plan: Plan, *, limit: int = 20) -> str:
    """A summary a person reads before deciding; the first `limit` actions of each kind.
    Every string from the snapshot or the policy is escaped (safe_text): names in a registry
    may hold terminal control sequences."""
    s = plan.summary
    snap = plan.snapshot
    approx = "~" if s["bytes_estimated"] else ""
    lines = [
        safe_text(f"regstat plan for snapshot {snap['id']} ({(snap.get('source') or {}).get('kind')}, "
                  f"taken {human_time(snap['taken_at'])})"),
        "  " + _policy_line(plan.policy),
        "",
        f"  delete {_n(s['tags'], 'tag')}, {_n(s['manifests'], 'manifest')}, {_n(s['blobs'], 'blob')}, "
        f"{_n(s['uploads'], 'upload')}",
        # Estimated whenever the plan may not delete blobs: the source frees them itself (API,
        # ECR), or the snapshot is partial or incomplete; the notes say which.
        f"  frees {approx}{_bytes(s['bytes_reclaimed'])}" + (" (an estimate: the plan deletes no blobs; see the notes)"
                                                              if s["bytes_estimated"] else ""),
    ]
    if plan.notes:
        lines += ["", "Notes:"] + [f"  - {safe_text(n)}" for n in plan.notes]
    if s["repositories"]:
        lines += ["", "By repository:", f"  {'repository':<40} {'tags':>6} {'manifests':>9} {'blobs':>6} "
                  f"{'uploads':>7} {'bytes':>10}"]
        largest = sorted(s["repositories"], key=lambda r: (-r["bytes_reclaimed"], r["repository"]))
        for r in largest[:limit]:
            lines.append(f"  {safe_text(r['repository']):<40} {r['tags']:>6} {r['manifests']:>9} {r['blobs']:>6} "
                         f"{r.get('uploads', 0):>7} {_bytes(r['bytes_reclaimed']):>10}")
        if len(largest) > limit:
            lines.append(f"  ... {len(largest) - limit:,} more repositories (the JSON plan lists them all)")
    for kind, title in zip(KINDS, ("Tags", "Manifests", "Blobs", "Uploads"), strict=True):
        count = s[summary_key(kind)]
        if not count:
            continue
        lines += ["", f"{title} ({count:,}{', first ' + str(limit) if count > limit else ''}):"]
        for a in _first(plan, kind, limit):
            lines.append("  " + _describe(a))
    if not plan.count:
        grace = (plan.policy or {}).get("grace")
        lines += ["", "Nothing to delete." + (f" (Nothing younger than the grace period, {grace}, is deleted; "
                                              "--grace 0s turns it off.)" if grace not in (None, "0s") else "")]
    return "\n".join(lines) + "\n"


def _first(plan: Plan, kind: str, limit: int) -> list[dict]:
    """The first `limit` actions of `kind`. Actions come grouped by kind, in KINDS' order, so
    the summary's counts say where each kind starts in the plan's file."""
    start = 0
    for earlier in KINDS[:KINDS.index(kind)]:
        start += plan.summary[summary_key(earlier)]
    return plan.slice(start, min(limit, plan.summary[summary_key(kind)])).to_pylist()


def _policy_line(policy: dict) -> str:
    """The policy in one line: where it came from and the settings that hold back deletions."""
    if not policy:
        return "policy: unknown"
    parts = [f"policy: {policy.get('source')}", f"grace {policy.get('grace')}"]
    if policy.get("repositories"):
        parts.append(f"only repositories {', '.join(policy['repositories'])}")
    if policy.get("filters"):
        parts.append(f"filters {', '.join(policy['filters'])}")
    parts.append("locked included" if policy.get("include_locked") else "locked protected")
    rules = [*(policy.get("rules") or []), policy.get("default") or {}]
    if any(r.get("untagged") for r in rules):
        parts.append("untagged")
    return safe_text("; ".join(parts))


def _describe(a: dict) -> str:
    # Reasons name rules, patterns and repositories: escaped like the names themselves.
    if a["action"] == "delete_tag":
        text = f"{a['repository']}:{a['tag']} -> {short_digest(a['digest'])}  {a['reason']}"
    elif a["action"] == "delete_manifest":
        text = f"{a['repository']}@{short_digest(a['digest'])}  {a['reason']}, frees {_bytes(a['bytes_freed'])} alone"
    elif a["action"] == "delete_blob":
        text = f"{short_digest(a['digest'])}  {_bytes(a['size'])}  {a['reason']}"
    else:
        text = f"{a['repository']} upload {a['uuid']}  {_bytes(a['size'])}"
    return safe_text(text)


def _n(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
