"""apply-gc's run: the plan's actions in phases (tags, manifests, then blobs, then uploads),
each re-verified against a fresh crawl (regstat.apply.live) and, for tags, against the target
right before the deletion; deleted in batches, journaled before and after, at --rate.

Tags and manifests are decided on a crawl of the plan's repositories taken before the phase;
a manifest goes only if every planned action it waits on (the deletion of a tag naming it, of
an index listing it, of a referrer naming it) went too. Blobs and uploads are decided on a
crawl of the whole source taken after the manifests went. A dry run deletes nothing: one crawl
of the whole source serves both phases, and a manifest it would delete counts as gone for the
blobs.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

from .. import interrupts
from ..crawl import CrawlOptions
from ..plan.plan import Plan
from ..plan.policy import parse_duration
from ..progress import Progress
from ..snapshot.info import SourceInfo
from .journal import Journal
from .live import Fresh
from .target import DELETED, FAILED, GONE, SKIPPED, WITH_MANIFEST, WOULD_DELETE, Action, Outcome, Target
from .targets import crawl_options, open_target, source_argument

BATCH = 1000  # actions per deletion request (S3's DeleteObjects takes 1,000 keys)
# Outcomes after which what waited on an action may go (a dry run: would go).
_WENT = (DELETED, GONE, WOULD_DELETE)


@dataclass(frozen=True)
class Settings:
    dry_run: bool = True
    rate: float | None = None  # deletions per second; None: as fast as the source answers
    concurrency: int = 1  # deletion batches in flight
    batch: int = BATCH


@dataclass
class Run:
    """What a run decided: every action of the plan and its outcome (those a resumed run took
    from the journal included: `resumed` lists their positions)."""

    actions: list[Action]
    outcomes: dict[int, Outcome] = field(default_factory=dict)
    resumed: frozenset[int] = frozenset()
    dry_run: bool = True


class PlanActions:
    """The plan's actions, and what it deletes (regstat.apply.target.Planned)."""

    def __init__(self, plan: Plan) -> None:
        self.actions = [Action(position=row["position"], kind=row["action"], repository=row["repository"],
                               tag=row["tag"], digest=row["digest"], uuid=row["uuid"], size=row["size"] or 0)
                        for batch in plan.batches() for row in batch.to_pylist()]
        self._tags = {(a.repository, a.tag) for a in self.actions if a.kind == "delete_tag"}
        self._manifests = {(a.repository, a.digest) for a in self.actions if a.kind == "delete_manifest"}

    def deletes_tag(self, repository: str, tag: str) -> bool:
        return (repository, tag) in self._tags

    def deletes_manifest(self, repository: str, digest: str) -> bool:
        return (repository, digest) in self._manifests

    def of(self, *kinds: str) -> list[Action]:
        return [a for a in self.actions if a.kind in kinds]


def apply(plan: Plan, source: SourceInfo, options: CrawlOptions, settings: Settings, *,
          journal: Journal | None = None, settled: dict[int, Outcome] | None = None,
          progress: Progress | None = None) -> Run:
    """Carry out `plan` on `source` (a dry run unless settings.dry_run is False; then `journal`
    records it). `settled`: outcomes a resumed run takes from the journal."""
    planned = PlanActions(plan)
    run = Run(planned.actions, dict(settled or {}), frozenset(settled or ()), settings.dry_run)
    options = crawl_options(source, options)
    crawl_source = source_argument(source)
    target = open_target(source, options)
    step = _Step(run, target, settings, journal, progress or Progress(enabled=False))
    step.progress.set_total("actions", len(planned.actions) - len(run.outcomes))  # this run's: a resumed one has fewer
    step.progress.set_remaining("actions", len(planned.actions) - len(run.outcomes))
    try:
        first = _tags_and_manifests(step, planned, crawl_source, options)
        try:
            _blobs_and_uploads(step, planned, crawl_source, options, first, plan.policy.get("grace"))
        finally:
            if first is not None:
                first.close()
    finally:
        target.close()
    return run


def _tags_and_manifests(step: _Step, planned: PlanActions, crawl_source: str, options: CrawlOptions) -> Fresh | None:
    """The tag and manifest phase; returns its fresh crawl when a dry run reuses it for blobs."""
    tags_and_manifests = planned.of("delete_tag", "delete_manifest")
    pending = [a for a in tags_and_manifests if a.position not in step.run.outcomes]
    if not pending and not step.settings.dry_run:
        return None
    step.progress.set_phase("verifying tags and manifests")
    repositories = () if step.settings.dry_run else {a.repository for a in tags_and_manifests if a.repository}
    fresh = Fresh(crawl_source, options, repositories)
    try:
        verdicts = fresh.verdicts("tag", tags_and_manifests)
        step.progress.set_phase("deleting tags")
        step.run_kind([a for a in pending if a.kind == "delete_tag"], verdicts, planned, fresh, live_tag=True)
        verdicts = fresh.verdicts("manifest", tags_and_manifests)
        blockers = fresh.blockers(tags_and_manifests)
        step.progress.set_phase("deleting manifests")
        step.run_kind([a for a in pending if a.kind == "delete_manifest"], verdicts, planned, fresh, blockers=blockers)
        step.settle_with_manifests(planned)
    except BaseException:
        fresh.close()
        raise
    if step.settings.dry_run:
        return fresh
    fresh.close()
    return None


def _blobs_and_uploads(step: _Step, planned: PlanActions, crawl_source: str, options: CrawlOptions,
                       fresh: Fresh | None, grace: str | None) -> None:
    pending = [a for a in planned.of("delete_blob", "delete_upload") if a.position not in step.run.outcomes]
    if not pending:
        return
    step.progress.set_phase("verifying blobs and uploads")
    own = fresh is None
    fresh = fresh or Fresh(crawl_source, options)
    try:
        gone = [(a.repository or "", a.digest or "") for a in planned.of("delete_manifest")
                if step.run.outcomes.get(a.position, Outcome(FAILED)).status in _WENT]
        cutoff = _grace_cutoff(grace)
        blobs = [a for a in pending if a.kind == "delete_blob"]
        if not fresh.complete:
            verdicts = {a.position: "crawl_incomplete" for a in blobs}
        elif not step.target.deletes_blobs:
            verdicts = {a.position: "blobs_not_deleted" for a in blobs}
        else:
            verdicts = fresh.verdicts("blob", blobs, gone_manifests=gone, grace_cutoff=cutoff)
        step.progress.set_phase("deleting blobs")
        step.run_kind(blobs, verdicts, planned, fresh)
        uploads = [a for a in pending if a.kind == "delete_upload"]
        step.progress.set_phase("deleting uploads")
        step.run_kind(uploads, fresh.verdicts("upload", uploads), planned, fresh)
    finally:
        if own:
            fresh.close()


def _grace_cutoff(grace: str | None) -> datetime | None:
    """The plan's grace period, counted back from now (nothing younger goes); the planner's
    default (24h) when the plan does not say."""
    period = parse_duration(grace, "the plan's grace") if grace else timedelta(hours=24)
    return datetime.now(UTC) - period if period > timedelta(0) else None


class _Step:
    """Decides and deletes one kind of action at a time, in the plan's order."""

    def __init__(self, run: Run, target: Target, settings: Settings, journal: Journal | None,
                 progress: Progress) -> None:
        self.run, self.target, self.settings, self.journal, self.progress = run, target, settings, journal, progress
        self._limiter = Limiter(settings.rate)
        self._lock = threading.Lock()
        # Tags the target deletes only with their manifest (WITH_MANIFEST): position -> its
        # refusal. Never journaled: a resumed run verifies them again.
        self.with_manifest: dict[int, Outcome] = {}

    def run_kind(self, actions: Sequence[Action], verdicts: dict[int, str], planned: PlanActions, live: Fresh, *,
                 live_tag: bool = False, blockers: dict[int, set[int]] | None = None) -> None:
        ready: list[Action] = []
        waiting_on: set[int] = set()  # positions in `ready`, not decided yet
        for action in actions:
            interrupts.check()
            waits = (blockers or {}).get(action.position, set())
            if waits & waiting_on:  # what it waits on is in this batch: decide that first
                self._delete(ready)
                ready, waiting_on = [], set()
            outcome = self._verify(action, verdicts.get(action.position, "gone"), planned, live, live_tag, waits)
            if outcome is not None and outcome.status == WITH_MANIFEST:
                self.with_manifest[action.position] = outcome
            elif outcome is not None:
                self._settle([(action.position, outcome)])
            else:
                ready.append(action)
                waiting_on.add(action.position)
        self._delete(ready)

    def _verify(self, action: Action, verdict: str, planned: PlanActions, live: Fresh, live_tag: bool,
                waits: set[int]) -> Outcome | None:
        """The outcome that settles `action` without deleting it, or None to delete it."""
        # A source that cannot see untagged manifests (the registry API) does not see a planned
        # manifest once its tags went (a resumed run): absent from its crawl is no proof that
        # it is gone, and nothing it cannot see holds it. Its DELETE says (404: gone).
        unseen = action.kind == "delete_manifest" and not live.info.capabilities.untagged_manifests
        if verdict == "gone" and not unseen:
            return Outcome(GONE)
        if verdict not in ("ok", "gone"):
            return Outcome(SKIPPED, verdict)
        blocked = sorted(p for p in waits if p not in self.with_manifest
                         and self.run.outcomes.get(p, Outcome(FAILED)).status not in _WENT)
        if blocked:
            reason = "tagged" if self.run.actions[blocked[0]].kind == "delete_tag" else "referenced"
            return Outcome(SKIPPED, reason, f"waits on action #{blocked[0]}, which did not happen")
        refusal = self.target.refusal(action, planned, live)
        if refusal is not None and refusal.status != WITH_MANIFEST:
            return refusal
        if live_tag and action.repository and action.tag:
            try:
                now = self.target.live_tag(action.repository, action.tag)
            except Exception as e:  # noqa: BLE001 - any failure to ask is a failure of this action
                return Outcome(FAILED, "live_check_failed", _describe(e))
            if now is None:
                return Outcome(GONE)
            if now != action.digest:
                return Outcome(SKIPPED, "tag_moved", f"now {now}")
        return refusal

    def settle_with_manifests(self, planned: PlanActions) -> None:
        """Tags that went (or did not) with their manifest end as it did."""
        manifests = {(a.repository, a.digest): a.position for a in planned.of("delete_manifest")}
        decided = []
        for position, refusal in self.with_manifest.items():
            action = self.run.actions[position]
            manifest = self.run.outcomes.get(manifests.get((action.repository, action.digest), -1))
            if manifest is not None and manifest.status in _WENT:
                decided.append((position, Outcome(manifest.status)))
            else:
                why = f"{refusal.detail}; its manifest stays ({manifest.reason if manifest else 'not decided'})"
                decided.append((position, Outcome(SKIPPED, refusal.reason, why)))
        self.with_manifest.clear()
        self._settle(decided)

    def _delete(self, actions: list[Action]) -> None:
        if not actions:
            return
        if self.settings.dry_run:
            self._settle([(a.position, Outcome(WOULD_DELETE)) for a in actions])
            return
        size = max(1, min(self.settings.batch, int(self.settings.rate or self.settings.batch)))
        batches = [actions[i:i + size] for i in range(0, len(actions), size)]
        if self.settings.concurrency <= 1 or len(batches) == 1:
            for batch in batches:
                self._delete_batch(batch)
            return
        with ThreadPoolExecutor(self.settings.concurrency, thread_name_prefix="regstat-apply") as pool:
            list(pool.map(self._delete_batch, batches))

    def _delete_batch(self, batch: list[Action]) -> None:
        interrupts.check()  # SIGINT, SIGTERM: stop between deletions, the journal true
        self._limiter.wait(len(batch))
        if self.journal is not None:
            with self._lock:
                self.journal.deleting(a.position for a in batch)
        try:
            outcomes = self.target.delete(batch)
        except Exception as e:  # noqa: BLE001 - recorded as this batch's failure; the run goes on
            outcomes = [Outcome(FAILED, "error", _describe(e))] * len(batch)
        self._settle(list(zip((a.position for a in batch), outcomes, strict=True)))

    def _settle(self, decided: list[tuple[int, Outcome]]) -> None:
        with self._lock:
            for position, outcome in decided:
                self.run.outcomes[position] = outcome
            if self.journal is not None and not self.settings.dry_run:
                self.journal.outcomes(decided)
            self.progress.add("actions", len(decided))
            freed = sum(o.bytes_freed for _, o in decided)
            if freed:
                self.progress.add("bytes freed", freed)
            self.progress.set_remaining("actions", len(self.run.actions) - len(self.run.outcomes))


class Limiter:
    """At most `rate` deletions a second, on average, over the run: each batch starts no
    sooner than the batches before it, at that rate, allow."""

    def __init__(self, rate: float | None, clock: Callable[[], float] = time.monotonic,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._rate, self._clock, self._sleep = rate, clock, sleep
        self._next = clock()
        self._lock = threading.Lock()

    def wait(self, n: int) -> None:
        if not self._rate:
            return
        with self._lock:
            start = max(self._next, self._clock())
            self._next = start + n / self._rate
        delay = start - self._clock()
        if delay > 0:
            self._sleep(delay)


def _describe(error: BaseException) -> str:
    return f"{type(error).__name__}: {error}" if str(error) else type(error).__name__
