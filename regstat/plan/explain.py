"""`regstat explain`: why a manifest or blob is kept or deleted.

For a manifest, per repository holding it: whether a tag (or, in an OCI layout, an unnamed
index.json entry) reaches it now, and the chain that does (tag -> index -> child, subject <-
referrer); with a plan, whether the plan deletes it
(which rule, which reason) or keeps it, and the chain under the plan's policy (a kept tag or
the protection that holds it). For a blob: the (repository, manifest) pairs that reference
it, which of them are kept, and with a plan whether its last reference goes.
"""

from __future__ import annotations

import json
import re
from typing import Any

import duckdb
import pyarrow as pa

from .. import analysis, queries
from ..analysis import engine
from ..errors import RegstatError
from ..model import repository_selected
from ..render import human_bytes, safe_text, short_digest
from ..snapshot import Snapshot
from . import planner
from .explain_target import TargetFormError, resolve
from .plan import Plan
from .policy import from_json as policy_from_json

_DIGEST = re.compile(r"\bsha256:[0-9a-f]{64}\b")
MAX_CHAIN = 64  # reachability's own depth bound


class ExplainError(RegstatError):
    """Nothing to explain: the digest is not in the snapshot, or the plan is for another one."""


def explain(
    snapshot: Snapshot, reference: str, *, repositories: tuple[str, ...] = (), plan: Plan | None = None,
    memory_limit: str | None = None,
) -> dict[str, Any]:
    """What `regstat explain` prints, as a JSON-able dict. `reference` is a digest, a short
    digest, REPOSITORY:TAG or REPOSITORY@DIGEST (regstat.plan.explain_target); `plan` one
    made from `snapshot` (Plan.load). `repositories` (globs; REPOSITORY:TAG and
    REPOSITORY@DIGEST name one) limits the manifests and references listed; the blob, and
    whether the plan deletes it, stay judged registry-wide."""
    if plan is not None and plan.snapshot_id != snapshot.info.id:
        raise ExplainError(
            f"the plan was made from snapshot {plan.snapshot_id}, not "
            f"{snapshot.info.id}: explain it with the snapshot it names"
        )
    con = analysis.connect(snapshot, memory_limit=memory_limit)
    try:
        target = resolve(con, reference)
        if target.repository is not None and not repository_selected(target.repository, repositories):
            raise TargetFormError(f"{reference} names a manifest of {target.repository}, not of "
                                  f"--repository {', '.join(repositories)}")
        digest, scope = target.digest, (target.repository,) if target.repository else repositories
        out = _facts(con, digest)
        out["argument"] = reference
        out["repository_scope"] = list(scope) or None
        shown = [m for m in out["manifests"] if repository_selected(m["repository"], scope)]
        if not shown and out["blob"] is None and not any(
                repository_selected(r["repository"], scope) for r in out["references"]):
            where = f" in {', '.join(scope)}" if scope else ""
            raise ExplainError(f"{digest}: no manifest, reference or blob with this digest{where} in the snapshot")
        for m in out["manifests"]:
            m["now"] = _chain(con, m["repository"], digest, plan_mode=False)
        for r in out["references"]:
            r["kept_now"] = _chain(con, r["repository"], r["manifest_digest"], plan_mode=False) is not None
        if plan is not None:
            _explain_plan(con, snapshot, plan, digest, out)
    finally:
        con.close()
    out["manifests"] = shown
    out["references"] = [r for r in out["references"] if repository_selected(r["repository"], scope)]
    return out


def _facts(con: duckdb.DuckDBPyConnection, digest: str) -> dict[str, Any]:
    manifests = _rows(con, "SELECT repository, media_type, artifact_type, size, subject_digest, status FROM manifests "
                      "WHERE digest = ? ORDER BY repository", [digest])
    for m in manifests:
        m["tags"] = [r[0] for r in con.execute(
            "SELECT tag FROM tags WHERE repository = ? AND digest = ? ORDER BY tag", [m["repository"], digest]
        ).fetchall()]
    references = _rows(con, "SELECT repository, manifest_digest, layer FROM manifest_references "
                       "WHERE digest = ? AND manifest_digest <> digest "
                       "ORDER BY repository, manifest_digest", [digest])
    for r in references:
        r["as"] = "config or layer" if r.pop("layer") else "index child"
    blob = _rows(con, "SELECT size, stored, modified_at FROM blobs WHERE digest = ?", [digest])
    return {"digest": digest, "manifests": manifests, "references": references, "blob": blob[0] if blob else None}


def _explain_plan(con: duckdb.DuckDBPyConnection, snapshot: Snapshot, plan: Plan, digest: str,
                  out: dict[str, Any]) -> None:
    """Add what the plan does with `digest`, and why, to `out`."""
    actions = [a for a in plan.actions_on({digest}) if a["action"] in ("delete_manifest", "delete_blob")]
    planner.keep(engine.DuckDB(con), snapshot, policy_from_json(plan.policy))
    for m in out["manifests"]:
        action = next((a for a in actions if a["action"] == "delete_manifest" and a["repository"] == m["repository"]),
                      None)
        m["plan"] = {"deleted": action is not None, "action": action,
                     "kept_by": None if action else _chain(con, m["repository"], digest, plan_mode=True)}
    referrers = plan.actions_on({r["manifest_digest"] for r in out["references"]})
    deleted_pairs = {(a["repository"], a["digest"]) for a in referrers if a["action"] == "delete_manifest"}
    for r in out["references"]:
        r["deleted_by_plan"] = (r["repository"], r["manifest_digest"]) in deleted_pairs
    if out["blob"] is not None or out["references"]:
        action = next((a for a in actions if a["action"] == "delete_blob"), None)
        own = [{"repository": m["repository"], "manifest_digest": digest, "as": "its own manifest blob",
                "deleted_by_plan": m["plan"]["deleted"]} for m in out["manifests"]]
        pairs = own + out["references"]
        out["blob_plan"] = {
            "deleted": action is not None,
            "action": action,
            "kept_references": [p for p in pairs if not p["deleted_by_plan"]],
            "last_references": [p for p in pairs if p["deleted_by_plan"]] if action else [],
            "notes": plan.notes,
        }


def _chain(con: duckdb.DuckDBPyConnection, repository: str, digest: str, *, plan_mode: bool) -> list[str] | None:
    """The steps by which `reachable` reaches (repository, digest), from its tag or protection
    down to it; None when it is not reached."""
    steps: list[str] = []
    current = digest
    for _ in range(MAX_CHAIN + 1):
        row = con.execute("SELECT depth, via FROM reachable WHERE repository = ? AND digest = ?",
                          [repository, current]).fetchall()
        if not row:
            return None if current == digest else steps  # a parent vanished: show what is known
        depth, via = row[0]
        if via == "tag":
            steps.insert(0, f"tag {', '.join(_kept_tags(con, repository, current, plan_mode))} -> {current}")
            return steps
        if via == "root":
            steps.insert(0, f"index.json lists it (an entry without a name): {current}")
            return steps
        if via == "protected":
            reason = con.execute("SELECT reason FROM plan_protected WHERE repository = ? AND digest = ?",
                                 [repository, current]).fetchall()
            steps.insert(0, f"protected ({reason[0][0] if reason else 'by the policy'}): {current}")
            return steps
        con.register("explain_targets", pa.Table.from_pylist([{"repository": repository, "digest": current}]))
        edges = con.execute(queries.load("explain_edges")).fetchall()
        parents = [p for p in edges if p[4] == depth - 1 and p[3] == via]
        con.unregister("explain_targets")
        if not parents:
            return steps or None
        parent = parents[0][2]
        steps.insert(0, f"index {parent} lists {current}" if via == "index" else f"{current} is a referrer of {parent}")
        current = parent
    return steps


def _kept_tags(con: duckdb.DuckDBPyConnection, repository: str, digest: str, plan_mode: bool) -> list[str]:
    if plan_mode:
        sql = ("SELECT tag FROM plan_tags WHERE repository = ? AND digest = ? AND NOT deleted AND NOT follows "
               "ORDER BY tag")
    else:
        sql = "SELECT tag FROM tags WHERE repository = ? AND digest = ? ORDER BY tag"
    tags = [r[0] for r in con.execute(sql, [repository, digest]).fetchall()]
    return [f"{repository}:{t}" for t in tags[:3]] + ([f"(+{len(tags) - 3} more)"] if len(tags) > 3 else [])


def _rows(con: duckdb.DuckDBPyConnection, sql: str, params: list[Any]) -> list[dict[str, Any]]:
    cursor = con.execute(sql, params)
    columns = [d[0] for d in cursor.description]
    return [dict(zip(columns, row, strict=True)) for row in cursor.fetchall()]


# --- rendering ----------------------------------------------------------------------------------


def render_json(result: dict[str, Any]) -> str:
    return json.dumps(result, indent=1, default=str) + "\n"


def render_text(result: dict[str, Any]) -> str:
    digest = result["digest"]
    lines = [digest if result["argument"] == digest else f"{digest} ({safe_text(result['argument'])})"]
    if result.get("repository_scope"):
        lines.append(f"  (only {', '.join(safe_text(g) for g in result['repository_scope'])}: the blob, and whether "
                     "the plan deletes it, are judged registry-wide)")
    for m in result["manifests"]:
        tags = f", tags {', '.join(safe_text(t) for t in m['tags'])}" if m["tags"] else ", untagged"
        lines.append(f"  manifest in {safe_text(m['repository'])} ({m['media_type']}, {human_bytes(m['size'])}{tags})")
        lines.append("    now:  " + _chain_text(m["now"], "orphaned: no tag reaches it (index children, referrers)"))
        if "plan" in m:
            p = m["plan"]
            if p["deleted"]:
                a = p["action"]
                lines.append(f"    plan: DELETED (action #{a['position']}): {a['reason']} [{a.get('rule')}], "
                             f"frees {human_bytes(a.get('bytes_freed'))} alone")
            else:
                lines.append("    plan: " + _chain_text(p["kept_by"], "kept"))
    if result["blob"] is not None or result["references"]:
        blob = result["blob"]
        stored = (f"{human_bytes(blob['size'])}, {'stored' if blob['stored'] else 'not seen stored'}"
                  if blob else "not in the blobs table")
        lines.append(f"  blob ({stored}); referenced by {len(result['references'])} other "
                     "(repository, manifest) pair(s)")
        for r in result["references"][:20]:
            state = "kept" if r["kept_now"] else "orphaned"
            if "deleted_by_plan" in r:
                state += ", deleted by the plan" if r["deleted_by_plan"] else ", kept by the plan"
            lines.append(f"    {safe_text(r['repository'])}@{short_digest(r['manifest_digest'])} as {r['as']}: {state}")
        if len(result["references"]) > 20:
            lines.append(f"    ... {len(result['references']) - 20} more")
        if "blob_plan" in result:
            bp = result["blob_plan"]
            if bp["deleted"]:
                last = ", ".join(f"{safe_text(p['repository'])}@{short_digest(p['manifest_digest'])}"
                                 for p in bp["last_references"][:5]) or "none (no manifest referenced it)"
                lines.append(f"    plan: DELETED (action #{bp['action']['position']}): {bp['action']['reason']}; "
                             f"its last references, all deleted by the plan: {last}")
            elif bp["kept_references"]:
                lines.append(f"    plan: kept: {len(bp['kept_references'])} reference(s) stay")
            else:
                why = "; ".join(bp["notes"]) or "younger than the grace period"
                lines.append(f"    plan: kept, though nothing kept references it: {why}")
    return "\n".join(lines) + "\n"


def _chain_text(chain: list[str] | None, missing: str) -> str:
    if chain is None:
        return missing
    return "kept: " + "; ".join(_DIGEST.sub(lambda m: short_digest(m.group()), safe_text(step)) for step in chain)
