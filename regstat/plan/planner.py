"""`regstat plan-gc`: a snapshot and a retention policy in, a deletion plan out. Never deletes.

How a plan is made (docs/design.md "Safety rules of the planner"):

1. Repositories the plan may not touch are found first: crawl errors, a manifest that could
   not be read (rule 6); outside the policy's `repositories` they are left alone too.
2. Tags: the rule governing each repository selects tags (older_than and delete_tags must
   both agree); protections (keep_tags, the grace period, locks, recent pulls: defined once,
   for tags and manifests, in sql/plan_protections.sql) win; `keep` then spares the most
   recently updated of the selected tags (plan_tags).
3. Manifests: reachability is computed again from what the plan keeps — the tags it keeps,
   every protected manifest (sql/plan_protected.sql) and the orphans keep_untagged spares
   (sql/plan_kept_orphans.sql) — over index children and referrers; every manifest it
   leaves out is deleted (sql/plan_manifests.sql). So nothing a kept manifest reaches is
   ever deleted, and an orphan's referrers go with it.
4. Blobs: a blob is released only when no kept (repository, manifest) pair references it
   (sql/plan_blobs.sql); `delete_blob` actions exist only where the source sweeps blobs
   separately and the snapshot is complete, unfiltered and fully readable (rule 5, 6).
5. Actions are ordered so that applying them in order never leaves a dangling reference:
   tags, then manifests (an index before its children, a referrer before its subject), then
   blobs and uploads.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from .. import analysis, queries
from ..analysis import engine, protections, reachability
from ..analysis.engine import Engine, SparkOptions
from ..durations import format_duration
from ..errors import RegstatError
from ..snapshot import Snapshot, SnapshotInfo, iso
from .plan import KINDS, Plan, summary_key, write_actions
from .acr_purge import format_ago
from .policy import Policy, PolicyError, Rule

# A tag on a referrer (cosign's sha256-<digest>.sig) is kept or deleted with its manifest,
# which is kept exactly when its subject is: tag rules neither select nor count it.
FOLLOWS = "a tag on a referrer: it goes only with its subject"


class PlanError(RegstatError):
    """The plan cannot be made safely (e.g. a cycle among the manifests it would delete)."""


def plan_gc(snapshot: Snapshot, policy: Policy, *, memory_limit: str | None = None, engine_name: str = "duckdb",
            spark: SparkOptions | None = None) -> Plan:
    """Make the plan for `snapshot` under `policy`, on the engine `engine_name` (engine.ENGINES)."""
    info = snapshot.info

    # Keyed: every join and group-by on digest ids; the actions' ids become digests at the end.
    db = analysis.open_engine(snapshot, name=engine_name, memory_limit=memory_limit, spark=spark,
                              reachable=False, keyed=True)
    directory = Path(tempfile.mkdtemp(prefix="regstat-plan-"))
    try:
        # Read by nearly every step (reachability checks, tags, protections, deletions). Spark
        # reads its Parquet files once. DuckDB reads them each time: a scan takes only the
        # columns a step needs, and a table of every column would be held in memory until the
        # deletions are found (at 10M descriptors the plan's peak RSS fell from 2.95 to 2.55 GB
        # without it, for the same CPU time).
        held = ("manifests",) if db.name != "duckdb" else ()
        for view in held:
            db.materialise_view(view)
        db.preserve_insertion_order(False)
        reachability.materialise(db)
        _, blocked = keep(db, snapshot, policy)
        # An in-memory DuckDB holds every table in its memory (spilling past the limit): at
        # 10M descriptors the tables of a plan are ~2.4 GB. Drop each once no later step
        # reads it, so that the group-bys, the summary and the actions' sort have that memory.
        db.drop_tables("plan_protections", "plan_protected")  # read by keep() only
        # These read `reachable`, which now holds what the plan keeps. Only the references of
        # the blobs the plan releases are grouped, not every blob's (repository_references).
        _create(db, "plan_kept_blobs")
        _create(db, "plan_last_references")
        _create(db, "plan_last_reference_blobs")
        _create(db, "plan_deleted_manifests", "plan_manifests")
        _create(db, "plan_tag_actions")
        db.drop_tables("plan_tags", "reachable_now")
        _order(db)
        db.drop_tables(*held, "manifest_edges", "reachable", "plan_edges")
        _create(db, "plan_released", "plan_blobs")
        restrictions = _blob_restrictions(info, blocked)
        estimated = bool(restrictions)
        # No blob or upload actions on an estimate.
        _create(db, "plan_blob_actions", params=[not estimated])
        db.create_view("plan_uploads", queries.load("plan_uploads"))
        _create(db, "plan_upload_actions", params=[not estimated])
        # What the bytes count: the blobs deleted, or on an estimate what the registry frees.
        _create(db, "plan_released_blobs", params=[estimated, estimated])
        db.drop_tables("plan_kept_blobs", "plan_last_reference_blobs", "plan_released")
        db.create_view("plan_actions", queries.load("plan_actions"))
        summary = _summary(db, estimated)
        db.drop_tables("plan_last_references", "plan_released_blobs")
        actions_file = write_actions(db, directory)
    except BaseException:
        shutil.rmtree(directory, ignore_errors=True)
        raise
    finally:
        db.close()
    notes = restrictions + _notes(info, blocked.reasons, policy)
    return Plan(snapshot=_identity(info), policy=policy.to_json(), summary=summary, notes=notes,
                actions_file=actions_file)


def _create(db: Engine, table: str, query: str | None = None, params: list[Any] | None = None) -> None:
    """Create the table `table` from sql/QUERY.sql (QUERY defaults to the table's name)."""
    db.create_table(table, queries.load(query or table), params or ())


def keep(db: Engine, snapshot: Snapshot, policy: Policy) -> tuple[pa.Table, protections.Blocked]:
    """Decide tags and fill `reachable` (in a connection from analysis.connect) with what the
    plan keeps; `reachable_now` keeps the current reachability, `plan_protected` the
    protections. Return the tag decisions and the repositories the plan may not touch."""
    info = snapshot.info
    taken_at = info.finished_at or datetime.now(UTC)
    _check_policy_fits(policy, info)
    db.copy_table(reachability.TABLE, "reachable_now")
    blocked = protections.blocked_repositories(db, info)
    protections.bind_settings(db, taken_at=taken_at, grace_cutoff=policy.grace_cutoff(taken_at),
                              include_locked=policy.include_locked)
    protections.bind(db, _repositories(policy, protections.repository_names(db), blocked.reasons, taken_at),
                     _keep_tags(db, policy, blocked.reasons))
    tags = _decide_tags(db, policy, blocked.reasons, taken_at)
    db.load("plan_tags", tags)
    db.insert("plan_protected", queries.load("plan_kept_orphans"))
    protections.close_kept(db)
    return tags, blocked


# --- inputs -----------------------------------------------------------------------------------


def _check_policy_fits(policy: Policy, info: SnapshotInfo) -> None:
    if policy.include_locked and info.source.kind == "acr":
        # ACR refuses to delete a locked item; deleting it would mean unlocking it first, and
        # regstat never changes an item's attributes.
        raise PolicyError(
            "--include-locked (include_locked) is refused for an ACR snapshot: ACR does not delete locked tags "
            "and manifests, and regstat never unlocks them. Unlock on purpose, e.g. `az acr repository update "
            "--name REGISTRY --image REPO:TAG --delete-enabled true --write-enabled true` (or REPO@DIGEST), "
            "then crawl again"
        )
    if not info.capabilities.pull_times and any(r.pulled_within is not None for r in policy.all_rules):
        raise PolicyError(
            f"pulled_within needs pull times, and the snapshot's source ({info.source.kind}) has none: "
            "drop --pulled-within, or plan on a snapshot of a source that records pulls (ECR)"
        )


def _repositories(
    policy: Policy, repositories: list[str], blocked: dict[str, str], taken_at: datetime,
) -> list[dict[str, Any]]:
    """plan_repositories' rows (regstat.analysis.protections): each repository's rule."""
    rows = []
    for repository in repositories:
        rule = policy.rule_for(repository)
        pulled = rule.pulled_within if rule else None
        rows.append({
            "repository": repository,
            "rule": rule.name if rule else None,
            "untagged": bool(rule and rule.untagged),
            "keep_untagged": rule.keep_untagged if rule else None,
            "pulled_cutoff": taken_at - pulled if pulled is not None else None,
            "pulled_within": format_duration(pulled) if pulled is not None else None,
            "ago_cutoff": taken_at - rule.ago if rule and rule.ago is not None else None,
            "ago": format_ago(rule.ago) if rule and rule.ago is not None else None,
            "blocked": blocked.get(repository),
        })
    return rows


def _keep_tags(db: Engine, policy: Policy, blocked: dict[str, str]) -> list[dict[str, Any]]:
    """plan_keep_tags' rows: each tag of a repository the plan may touch and whose rule has
    keep_tags, with the first pattern it matches (re.search, as the policy was checked)."""
    if not any(r.keep_tags for r in policy.all_rules):
        return []
    rows = []
    for repository, tag in db.rows(queries.load("plan_tag_names"))[1]:
        rule = policy.rule_for(repository)
        if rule is None or repository in blocked:
            continue
        pattern = next((p for p in rule.keep_tags if re.search(p, tag)), None)
        if pattern is not None:
            rows.append({"repository": repository, "tag": tag, "pattern": repr(pattern)})
    return rows


def _tags_schema(digest: pa.DataType) -> pa.Schema:
    """plan_tags' columns; `digest` is text, or an id in a keyed analysis (regstat.snapshot.digest_ids)."""
    return pa.schema([("repository", pa.string()), ("tag", pa.string()), ("digest", digest),
                      ("size", pa.int64()), ("deleted", pa.bool_()), ("follows", pa.bool_()),
                      ("reason", pa.string()), ("rule", pa.string())])


def _decide_tags(
    db: Engine, policy: Policy, blocked: dict[str, str], taken_at: datetime
) -> pa.Table:
    """One row per tag: deleted or not, and why. Tags whose verdict their repository alone
    decides (outside the policy, blocked: the protection says why; no tag rule) are decided
    column-wise; the others (tag rules, tags on referrers) one by one."""
    tags = db.arrow(queries.load("plan_tag_protections"))
    repositories = pc.unique(tags.column("repository"))
    rules = [policy.rule_for(r) for r in repositories.to_pylist()]
    closed, names, by_rule, open_to_referrers = [], [], [], []
    for repository, rule in zip(repositories.to_pylist(), rules, strict=True):
        closed.append(rule is None or repository in blocked)
        names.append(rule.name if rule else None)
        by_rule.append(bool(rule and rule.selects_tags and repository not in blocked))
        open_to_referrers.append(bool(rule and repository not in blocked))
    index = pc.index_in(tags.column("repository"), value_set=repositories)
    one_by_one = pc.or_(
        pc.take(pa.array(by_rule, pa.bool_()), index),
        pc.and_(pc.fill_null(tags.column("is_referrer"), False),
                pc.take(pa.array(open_to_referrers, pa.bool_()), index)),
    )
    constant = tags.filter(pc.invert(one_by_one))
    constant_index = pc.index_in(constant.column("repository"), value_set=repositories)
    decided = pa.table({
        "repository": constant.column("repository"),
        "tag": constant.column("tag"),
        "digest": constant.column("digest"),
        "size": constant.column("size"),
        "deleted": pa.nulls(constant.num_rows, pa.bool_()).fill_null(False),
        "follows": pa.nulls(constant.num_rows, pa.bool_()).fill_null(False),
        "reason": pc.if_else(pc.take(pa.array(closed, pa.bool_()), constant_index), constant.column("protection"),
                             pa.scalar("no tag rule", pa.string())),
        "rule": pc.take(pa.array(names, pa.string()), constant_index),
    }, schema=_tags_schema(tags.schema.field("digest").type))
    looked = _decide_one_by_one(tags.filter(one_by_one), policy, taken_at)
    return pa.concat_tables([decided, looked])


def _decide_one_by_one(tags: pa.Table, policy: Policy, taken_at: datetime) -> pa.Table:
    """The tags of repositories the policy's rules may touch (rule set, not blocked)."""
    by_repository: dict[str, list[tuple]] = defaultdict(list)
    for row in zip(*(tags.column(c).to_pylist() for c in (
        "repository", "tag", "digest", "updated_at", "size", "is_referrer", "protection"
    )), strict=True):
        by_repository[row[0]].append(row)
    out = []
    for repository, rows in by_repository.items():
        rule = policy.rule_for(repository)
        assert rule is not None  # _decide_tags decides the others
        verdicts = {
            tag: _tag_verdict(rule, tag, updated_at, bool(is_referrer), protection, taken_at)
            for (_, tag, _, updated_at, _, is_referrer, protection) in rows
        }
        if rule.keep is not None:
            _keep_newest(rule.keep, [t for t in rows if verdicts[t[1]].startswith("selected: ")], verdicts)
        for (_, tag, digest, _, size, _, _) in rows:
            reason = verdicts[tag]
            selected = reason.startswith("selected: ")
            out.append({
                "repository": repository, "tag": tag, "digest": digest, "size": size,
                "deleted": selected, "follows": reason == FOLLOWS,
                "reason": f"{reason.removeprefix('selected: ')} ({rule.name})" if selected else reason,
                "rule": rule.name,
            })
    return pa.Table.from_pylist(out, schema=_tags_schema(tags.schema.field("digest").type))


def _keep_newest(keep: int, candidates: list[tuple], verdicts: dict[str, str]) -> None:
    """`keep` as acr purge, ECR's imageCountMoreThan, Harbor and zot count it: of the tags the
    rule's other selectors select and no protection keeps (`candidates`), the `keep` most
    recently updated stay; the verdicts of the others say they went past it."""
    for rank, tag in enumerate(_newest_first(candidates)):
        if rank < keep:
            verdicts[tag] = f"among the {keep} most recently updated of the selected tags"
        else:
            verdicts[tag] += f"{', ' if verdicts[tag] != 'selected: ' else ''}beyond the {keep} most recently updated"


def _newest_first(tags: list[tuple]) -> list[str]:
    """The tags' names, most recently updated first; a tag without a time counts as newest (it
    is never what `keep` gives up first), and equal times go by name (code points, ascending)."""
    far_future = datetime.max.replace(tzinfo=UTC)
    return [t[1] for t in sorted(tags, key=lambda t: (-(t[3] or far_future).timestamp(), t[1]))]


def _tag_verdict(
    rule: Rule, tag: str, updated_at: datetime | None, is_referrer: bool, protection: str | None, taken_at: datetime,
) -> str:
    """Why a tag is kept, FOLLOWS, or 'selected: <why the rule's filters select it>' (before
    `keep`, which ranks the selected tags of the repository together: _keep_newest). A rule's
    selectors speak first; then `protection` (sql/plan_protections.sql) keeps what they select."""
    if is_referrer:
        return protection or FOLLOWS
    if not rule.selects_tags:
        return "no tag rule"
    why = []
    if rule.tag_age is not None:
        age = format_duration(rule.tag_age) if rule.older_than is not None else f"{format_ago(rule.tag_age)} (ago)"
        if updated_at is None or updated_at > taken_at - rule.tag_age:
            return f"not older than {age}" if updated_at else "its age is unknown"
        why.append(f"older than {age}")
    if rule.delete_tags is not None:
        if not re.search(rule.delete_tags, tag):
            return f"does not match {rule.delete_tags!r}"
        why.append(f"matches {rule.delete_tags!r}")
    if rule.filter_tags:
        pattern = next((p for p in rule.filter_tags if re.search(p, tag)), None)
        if pattern is None:
            return f"matches no --filter tag expression ({', '.join(map(repr, rule.filter_tags))})"
        why.append(f"matches --filter tag expression {pattern!r}")
    return protection or "selected: " + ", ".join(why)


# --- restrictions -----------------------------------------------------------------------------


def _blob_restrictions(info: SnapshotInfo, blocked: protections.Blocked) -> list[str]:
    """Why this plan may not delete blobs (docs/design.md rules 5 and 6); empty when it may."""
    why = []
    # A partial crawl of a storage tree sees no unreferenced blobs either: its own reason says why.
    if info.partial:
        why.append("partial snapshot (--repository): other repositories may use any blob, so no blob deletions")
    elif not (info.capabilities.unreferenced_blobs and info.capabilities.stored_blob_sizes):
        why.append(f"the source ({info.source.kind}) frees blobs itself: no blob deletions; bytes are an estimate")
    # A partial snapshot is not complete either, but has its own reason above.
    if info.errors or blocked.errored or not (info.complete or info.partial):
        why.append("the snapshot is incomplete (crawl errors): no blob deletions")
    if blocked.unreadable_manifests:
        why.append(f"{blocked.unreadable_manifests} manifest(s) could not be read and may reference any blob: "
                   "no blob deletions")
    return why


def _notes(info: SnapshotInfo, blocked: dict[str, str], policy: Policy) -> list[str]:
    notes = []
    if info.source.kind == "acr":
        notes.append("ACR deletes a manifest's referrers with it: the plan lists them anyway, each before its subject")
    if any(r.untagged for r in policy.all_rules) and not info.capabilities.untagged_manifests:
        notes.append(f"the source ({info.source.kind}) cannot see untagged manifests: untagged finds nothing to delete")
    for repository, why in sorted(blocked.items()):
        notes.append(f"{repository}: no deletions: {why}")
    return notes


# --- order and output -------------------------------------------------------------------------


def _order(db: Engine) -> None:
    """Fill `plan_order` with a level for every deleted manifest, so that every index comes
    before its children and every referrer before its subject (sql/plan_order_*.sql)."""
    _create(db, "plan_edges")
    _create(db, "plan_order", "plan_order_seed")
    while db.insert("plan_order", queries.load("plan_order_step")):
        pass
    first = [dict(zip(("repository", "digest"), row, strict=True))
             for row in db.rows(f"SELECT * FROM ({engine.bare(queries.load('plan_unordered'))}) AS u LIMIT 3")[1]]
    left = [(r["repository"], r["digest"]) for r in engine.decode_rows(db, first)]
    if left:
        raise PlanError(f"the manifests to delete reference each other in a cycle (e.g. {left}): "
                        "the snapshot is damaged; no plan")


def _summary(db: Engine, estimated: bool) -> dict[str, Any]:
    """The plan's totals, and per repository its actions and the blobs only it referenced."""
    totals = dict(db.rows(queries.load("plan_totals"))[1])
    counts: dict[str, dict[str, int]] = defaultdict(lambda: {"tags": 0, "manifests": 0, "blobs": 0, "uploads": 0,
                                                              "bytes_reclaimed": 0})
    for row in _rows(db, queries.load("plan_summary")):
        c = counts[row["repository"]]
        c["tags"], c["manifests"], c["uploads"] = row["tags"], row["manifests"], row["uploads"]
        c["bytes_reclaimed"] += row["upload_bytes"]
    for row in _rows(db, queries.load("plan_blob_repositories")):
        if not estimated:  # an estimate frees bytes, but the plan deletes no blob
            counts[row["repository"]]["blobs"] = row["blobs"]
        counts[row["repository"]]["bytes_reclaimed"] += row["bytes"]
    blob_bytes, upload_bytes = engine.first_row(db, queries.load("plan_bytes")).values()
    return {
        **{summary_key(kind): totals.get(kind, 0) for kind in KINDS},
        "bytes_reclaimed": int(blob_bytes) + int(upload_bytes),
        "bytes_estimated": estimated,
        "repositories": [{"repository": r, **c} for r, c in sorted(counts.items())],
    }


def _identity(info: SnapshotInfo) -> dict[str, Any]:
    return {
        "id": info.id,
        "source": info.source.to_json(),
        "taken_at": iso(info.finished_at),
        "complete": info.complete,
        "partial": info.partial,
    }


def _rows(db: Engine, sql: str) -> list[dict[str, Any]]:
    columns, rows = db.rows(sql)
    return [dict(zip(columns, row, strict=True)) for row in rows]
