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
    """A summary a person reads before deciding; the first `limit` actions of each kind.
    Every string from the snapshot or the policy is escaped (safe_text): names in a registry
    may hold terminal control sequences."""
    s = plan.summary
    snap = plan.snapshot
    approx = "~" if s["bytes_estimated"] else ""
    lines = [
        safe_text(f"regstat plan for snapshot {snap['id']} ({(snap.get('source') or {}).get('kind')}, "
                  f"taken {snap['taken_at']})"),
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
        for r in s["repositories"]:
            lines.append(f"  {safe_text(r['repository']):<40} {r['tags']:>6} {r['manifests']:>9} {r['blobs']:>6} "
                         f"{r.get('uploads', 0):>7} {_bytes(r['bytes_reclaimed']):>10}")
    for kind, title in (("delete_tag", "Tags"), ("delete_manifest", "Manifests"), ("delete_blob", "Blobs"),
                        ("delete_upload", "Uploads")):
        chosen = [a for a in plan.actions if a["action"] == kind]
        if not chosen:
            continue
        lines += ["", f"{title} ({len(chosen)}{', first ' + str(limit) if len(chosen) > limit else ''}):"]
        for a in chosen[:limit]:
            lines.append("  " + _describe(a))
    if not plan.actions:
        grace = (plan.policy or {}).get("grace")
        lines += ["", "Nothing to delete." + (f" (Nothing younger than the grace period, {grace}, is deleted; "
                                              "--grace 0s turns it off.)" if grace not in (None, "0s") else "")]
    return "\n".join(lines) + "\n"


def _policy_line(policy: dict) -> str:
    """The policy in one line: where it came from and the settings that hold back deletions."""
    if not policy:
        return "policy: unknown"
    parts = [f"policy: {policy.get('source')}", f"grace {policy.get('grace')}"]
    if policy.get("repositories"):
        parts.append(f"only repositories {', '.join(policy['repositories'])}")
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
