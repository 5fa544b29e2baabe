"""The refusals apply-gc makes before touching anything (exit 5, nothing changed): a plan
without its checksum or with another one (edited by hand, cut short), a plan older than
--max-plan-age by its snapshot's taken_at, more deletions than --max-deletes, a plan made
from another registry than the options name. (Another apply holding the plan's journal is
refused by regstat.apply.journal.lock.)"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from ..crawl import CrawlOptions
from ..errors import ApplyRefused, RegstatError
from ..plan.plan import Plan
from ..snapshot.info import SourceInfo, parse_time


@dataclass(frozen=True)
class Limits:
    max_plan_age: timedelta
    max_deletes: int | None


def check(plan: Plan, limits: Limits, options: CrawlOptions, now: datetime) -> SourceInfo:
    """Refuse `plan` (ApplyRefused) unless it may be applied now; return its source."""
    if plan.recorded_checksum is None:
        raise ApplyRefused("the plan has no checksum (a plan-gc older than apply-gc wrote it): make the plan again")
    actual = plan.checksum()
    if actual != plan.recorded_checksum:
        raise ApplyRefused(f"the plan's checksum does not match its contents (edited or cut short): "
                           f"recorded {plan.recorded_checksum}, computed {actual}")
    try:
        taken_at = parse_time(plan.snapshot.get("taken_at"), "snapshot.taken_at")
        source = SourceInfo.from_json(plan.snapshot.get("source") or {})
    except RegstatError as e:
        raise ApplyRefused(f"the plan's snapshot cannot be read: {e}") from None
    if taken_at is None:
        raise ApplyRefused("the plan's snapshot has no taken_at: its age is unknown")
    age = now - taken_at
    if age > limits.max_plan_age:
        raise ApplyRefused(f"the plan is stale: its snapshot was taken {_hours(age)} ago "
                           f"({plan.snapshot['taken_at']}), more than --max-plan-age {_hours(limits.max_plan_age)}; "
                           "crawl and plan again")
    if limits.max_deletes is not None and plan.count > limits.max_deletes:
        raise ApplyRefused(f"the plan holds {plan.count:,} deletions, more than --max-deletes {limits.max_deletes:,}")
    _check_registry(source, options)
    return source


def _check_registry(source: SourceInfo, options: CrawlOptions) -> None:
    """Options naming a registry (--endpoint-url, --registry-id) must name the plan's."""
    named = {"--endpoint-url": (options.endpoint_url, source.endpoint_url),
             "--registry-id": (options.registry_id, source.registry_id)}
    for option, (given, planned) in named.items():
        if given is not None and given.rstrip("/") != (planned or "").rstrip("/"):
            raise ApplyRefused(f"the plan was made from another registry: {option} {given}, "
                               f"the plan's snapshot read {source.location} ({option[2:]} {planned or 'unset'})")


def _hours(delta: timedelta) -> str:
    hours = delta.total_seconds() / 3600
    return f"{hours:.1f}h" if hours < 48 else f"{hours / 24:.1f}d"
