"""What an apply-gc run did, in numbers and by item: deleted, already gone, skipped (by
reason), failed, the bytes that left the registry as measured; as text and as JSON."""

from __future__ import annotations

from collections import Counter
from typing import Any

from ..plan.plan import KINDS
from ..render import human_bytes, safe_text, short_digest
from .runner import Run
from .target import DELETED, FAILED, GONE, SKIPPED, WOULD_DELETE, Action

STATUSES = (DELETED, WOULD_DELETE, GONE, SKIPPED, FAILED)
_LISTED = 50  # skipped and failed items the text lists


def summarise(run: Run, bytes_planned: int | None) -> dict[str, Any]:
    """The run as JSON (`--json`; docs/apply.md, "Output")."""
    outcomes = list(run.outcomes.values())
    counts = Counter(o.status for o in outcomes)
    by_kind: dict[str, dict[str, int]] = {kind: {} for kind in KINDS}
    freed: dict[str, int] = dict.fromkeys(KINDS, 0)
    for action in run.actions:
        outcome = run.outcomes.get(action.position)
        if outcome is not None:
            by_kind[action.kind][outcome.status] = by_kind[action.kind].get(outcome.status, 0) + 1
            freed[action.kind] += outcome.bytes_freed
    return {
        "dry_run": run.dry_run,
        "actions": len(run.actions),
        "counts": {status: counts.get(status, 0) for status in STATUSES},
        "by_kind": by_kind,
        "skipped_by_reason": dict(sorted(Counter(o.reason for o in outcomes if o.status == SKIPPED).items())),
        "failed_by_reason": dict(sorted(Counter(o.reason for o in outcomes if o.status == FAILED).items())),
        "bytes_freed": sum(o.bytes_freed for o in outcomes),
        "bytes_freed_by_kind": freed,
        "bytes_planned": bytes_planned,
        "resumed": len(run.resumed),
        "items": [{**_item(a), "status": o.status, "reason": o.reason, "detail": o.detail}
                  for a in run.actions if (o := run.outcomes.get(a.position)) and o.status in (SKIPPED, FAILED)],
    }


def render_text(summary: dict[str, Any]) -> str:
    c = summary["counts"]
    verb = "would delete" if summary["dry_run"] else "deleted"
    done = c[WOULD_DELETE] if summary["dry_run"] else c[DELETED]
    lines = [f"regstat apply-gc{' (dry run: nothing deleted)' if summary['dry_run'] else ''}: "
             f"{summary['actions']:,} actions: {verb} {done:,}, already gone {c[GONE]:,}, skipped {c[SKIPPED]:,}, "
             f"failed {c[FAILED]:,}"]
    for kind, statuses in summary["by_kind"].items():
        if statuses:
            lines.append(f"  {kind.removeprefix('delete_') + 's':<10} " +
                         ", ".join(f"{status} {n:,}" for status, n in statuses.items()))
    if summary["dry_run"]:
        lines.append(f"  planned to free {human_bytes(summary['bytes_planned'])}")
    else:
        f = summary["bytes_freed_by_kind"]
        links = f["delete_tag"] + f["delete_manifest"]
        lines.append(f"  freed {human_bytes(summary['bytes_freed'])} as measured: "
                     f"blobs {human_bytes(f['delete_blob'])}, "
                     f"uploads {human_bytes(f['delete_upload'])}, tag and manifest links {human_bytes(links)} "
                     f"(the plan counted {human_bytes(summary['bytes_planned'])})")
    if summary["resumed"]:
        lines.append(f"  {summary['resumed']:,} settled by an earlier run (from the journal)")
    items = summary["items"]
    if items:
        lines += ["", "Changed since the plan, or not deleted:"]
        lines += [f"  {item['status']} {item['reason']}: {_name(item)}"
                  + (f" ({item['detail']})" if item["detail"] else "") for item in items[:_LISTED]]
        if len(items) > _LISTED:
            lines.append(f"  ... and {len(items) - _LISTED:,} more (--json lists them all)")
    return "\n".join(safe_text(line) for line in lines) + "\n"


def _item(action: Action) -> dict[str, Any]:
    return {"position": action.position, "action": action.kind, "repository": action.repository,
            "tag": action.tag, "digest": action.digest, "uuid": action.uuid, "size": action.size}


def _name(item: dict[str, Any]) -> str:
    if item["action"] == "delete_tag":
        return f"tag {item['repository']}:{item['tag']}"
    if item["action"] == "delete_manifest":
        return f"manifest {item['repository']}@{short_digest(item['digest'])}"
    if item["action"] == "delete_blob":
        return f"blob {short_digest(item['digest'])}"
    return f"upload {item['repository']} {item['uuid']}"
