"""Renderings of a plan: JSON (the plan itself), text for a terminal, Parquet of the actions."""

from __future__ import annotations

import json

import pyarrow as pa

from .planner import Plan
from .report_render import human_bytes as _bytes, safe_text, short_digest

ACTION_SCHEMA = pa.schema(
    [
        ("position", pa.int64()),
        ("action", pa.string()),
        ("repository", pa.string()),
        ("tag", pa.string()),
        ("digest", pa.string()),
        ("uuid", pa.string()),
        ("size", pa.int64()),
        ("bytes_freed", pa.int64()),
        ("reason", pa.string()),
        ("rule", pa.string()),
        ("media_type", pa.string()),
        ("artifact_type", pa.string()),
    ]
)


def render_json(plan: Plan) -> str:
    return json.dumps(plan.to_json(), indent=1, default=str) + "\n"


def actions_table(plan: Plan) -> pa.Table:
    """The actions in order, one row each (`position` from 0), for `--format parquet`."""
    rows = [{"position": i, **{k: a.get(k) for k in ACTION_SCHEMA.names if k != "position"}}
            for i, a in enumerate(plan.actions)]
    return pa.Table.from_pylist(rows, schema=ACTION_SCHEMA)


def render_text(plan: Plan, *, limit: int = 20) -> str:
    """A summary a person reads before deciding; the first `limit` actions of each kind."""
    s = plan.summary
    snap = plan.snapshot
    approx = "~" if s["bytes_estimated"] else ""
    lines = [
        f"regstat plan for snapshot {snap['id']} ({(snap.get('source') or {}).get('kind')}, taken {snap['taken_at']})",
        "",
        f"  delete {_n(s['tags'], 'tag')}, {_n(s['manifests'], 'manifest')}, {_n(s['blobs'], 'blob')}, "
        f"{_n(s['uploads'], 'upload')}",
        f"  frees {approx}{_bytes(s['bytes_reclaimed'])}" + (" (an estimate: the registry frees blobs itself)"
                                                              if s["bytes_estimated"] else ""),
    ]
    if plan.notes:
        lines += ["", "Notes:"] + [f"  - {n}" for n in plan.notes]
    if s["repositories"]:
        lines += ["", "By repository:", f"  {'repository':<40} {'tags':>6} {'manifests':>9} {'blobs':>6} {'bytes':>10}"]
        for r in s["repositories"]:
            lines.append(f"  {safe_text(r['repository']):<40} {r['tags']:>6} {r['manifests']:>9} {r['blobs']:>6} "
                         f"{_bytes(r['bytes_reclaimed']):>10}")
    for kind, title in (("delete_tag", "Tags"), ("delete_manifest", "Manifests"), ("delete_blob", "Blobs"),
                        ("delete_upload", "Uploads")):
        chosen = [a for a in plan.actions if a["action"] == kind]
        if not chosen:
            continue
        lines += ["", f"{title} ({len(chosen)}{', first ' + str(limit) if len(chosen) > limit else ''}):"]
        for a in chosen[:limit]:
            lines.append("  " + _describe(a))
    if not plan.actions:
        lines += ["", "Nothing to delete."]
    return "\n".join(lines) + "\n"


def _describe(a: dict) -> str:
    if a["action"] == "delete_tag":
        return f"{safe_text(a['repository'])}:{safe_text(a['tag'])} -> {short_digest(a['digest'])}  {a['reason']}"
    if a["action"] == "delete_manifest":
        return (f"{safe_text(a['repository'])}@{short_digest(a['digest'])}  {a['reason']}, "
                f"frees {_bytes(a['bytes_freed'])} alone")
    if a["action"] == "delete_blob":
        return f"{short_digest(a['digest'])}  {_bytes(a['size'])}  {a['reason']}"
    return f"{safe_text(a['repository'])} upload {safe_text(a['uuid'])}  {_bytes(a['size'])}"


def _n(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"
