"""What apply-gc did with one item of a plan, from its journal (`regstat explain --plan PLAN
--journal FILE REFERENCE`): the plan's actions on it and every record the journal holds of them."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

from ..errors import RegstatError
from ..plan.plan import ACTION_KEYS, Plan
from ..render import safe_text
from . import journal

_SHORT = re.compile(r"^(sha256:)?[0-9a-f]{12,64}$")


class HistoryError(RegstatError):
    """The plan has no action on what explain was asked about."""


def what_happened(plan: Plan, journal_path: Path, reference: str) -> dict[str, Any]:
    """The plan's actions on `reference` (a digest, whole or 12+ hex digits, REPOSITORY:TAG or
    REPOSITORY@DIGEST) and, for each, the journal's records and last outcome."""
    actions = [a for a in _actions(plan) if _matches(a, reference)]
    if not actions:
        raise HistoryError(f"the plan has no action on {reference}")
    found = []
    for action in actions:
        records = journal.history(journal_path, action["position"]) if journal_path.exists() else []
        outcomes = [r for r in records if r.get("event") == "outcome"]
        found.append({**action, "journal": records, "outcome": outcomes[-1] if outcomes else None})
    return {"argument": reference, "journal": str(journal_path), "actions": found}


def render_text(result: dict[str, Any]) -> str:
    lines = [f"{result['argument']} in the journal {result['journal']}:"]
    for action in result["actions"]:
        name = action.get("tag") or action.get("uuid") or action.get("digest")
        where = f"{action['repository']} " if action.get("repository") else ""
        lines.append(f"  #{action['position']} {action['action']} {where}{name}")
        for record in action["journal"]:
            run = f"    run {record['run']}{' (--resume)' if record['resumed'] else ''}: "
            if record["event"] == "deleting":
                lines.append(run + "deletion asked for")
            else:
                why = f" ({record['reason']}{': ' + record['detail'] if record.get('detail') else ''})" \
                    if record.get("reason") else ""
                freed = f", {record['bytes_freed']:,} bytes freed" if record.get("bytes_freed") else ""
                lines.append(f"{run}{record['status']}{why}{freed}")
        if action["outcome"] is None:
            in_flight = any(r["event"] == "deleting" for r in action["journal"])
            lines.append("    " + ("in flight when the run stopped: --resume verifies it again" if in_flight
                                   else "not done yet (no run reached it)"))
    return "\n".join(safe_text(line) for line in lines) + "\n"


def _actions(plan: Plan) -> list[dict[str, Any]]:
    return [{**{k: row[k] for k in ACTION_KEYS[row["action"]]}, "position": row["position"], "uuid": row["uuid"]}
            for batch in plan.batches() for row in batch.to_pylist()]


def _matches(action: dict[str, Any], reference: str) -> bool:
    repository, digest = action.get("repository"), action.get("digest") or ""
    if "@" in reference:
        name, _, wanted = reference.partition("@")
        return name == repository and _digest_matches(digest, wanted)
    if _SHORT.match(reference):
        return _digest_matches(digest, reference)
    name, _, tag = reference.rpartition(":")
    return bool(name) and name == repository and (tag == action.get("tag") or tag == action.get("uuid"))


def _digest_matches(digest: str, wanted: str) -> bool:
    return bool(digest) and digest.removeprefix("sha256:").startswith(wanted.removeprefix("sha256:"))
