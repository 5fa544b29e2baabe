"""What the planner tests and the Spark tests both check of a plan: its actions as tuples,
random policies, and the safety properties of a plan applied step by step (check_plan)."""

from __future__ import annotations

from collections import defaultdict
from typing import Any

from hypothesis import strategies as st
from support.planner_graphs import Pair, PlanModel, d

from regstat.plan.plan import Plan
from regstat.plan.policy import Policy, from_flags


def T(repo: str, tag: str) -> tuple:
    return ("tag", repo, tag)


def M(repo: str, name: str) -> tuple:
    return ("manifest", repo, d(name))


def B(name: str) -> tuple:
    return ("blob", d(name))


def U(repo: str, uuid: str) -> tuple:
    return ("upload", repo, uuid)


def actions(plan: Plan) -> list[tuple]:
    """The actions in order, each as T/M/B/U gives it."""
    out = []
    for a in plan.actions:
        kind = a["action"].removeprefix("delete_")
        if kind == "tag":
            out.append(T(a["repository"], a["tag"]))
        elif kind == "manifest":
            out.append(("manifest", a["repository"], a["digest"]))
        elif kind == "blob":
            out.append(("blob", a["digest"]))
        else:
            out.append(U(a["repository"], a["uuid"]))
    return out


def deleted(plan: Plan) -> set[tuple]:
    got = actions(plan)
    assert len(got) == len(set(got)), got  # nothing twice
    return set(got)



@st.composite
def policies(draw: st.DrawFn) -> Policy:
    """Random command-line policies: untagged on/off (keeping some orphans), tag selectors
    (regstat's, or acr purge's --filter and --ago), protections, grace."""
    untagged = draw(st.booleans())
    filters = draw(st.sampled_from([(), (), (), ("a:^v",), ("b/.*:pr|sig", "a|d:."), (".*:.*",)]))
    ago = draw(st.sampled_from([None, None, "0", "5d", "2d3h6m"]))
    return from_flags(
        untagged=untagged,
        keep_untagged=draw(st.sampled_from([None, 1, 2, 0])) if untagged else None,
        # None last: hypothesis favours the first
        older_than=None if ago else draw(st.sampled_from(["1d", "7d", "30d", None])),
        keep=draw(st.sampled_from([1, 0, 2, 3, None])),
        delete_tags=None if filters else draw(st.sampled_from(["^pr-", "^v", ".", ".", "sig$", None])),
        keep_tags=tuple(draw(st.lists(st.sampled_from(["^release-", "^latest$", r"\.sig$"]), max_size=2, unique=True))),
        grace=draw(st.sampled_from(["0s", "0s", "24h", "5d"])),
        include_locked=draw(st.booleans()),
        repositories=() if filters else tuple(draw(st.sampled_from([(), (), (), ("a",), ("b/*", "d")]))),
        filters=filters,
        ago=ago,
    )




class Applied:
    """The tables as the plan's actions leave them, applied one by one: each step is checked
    for a dangling reference (something left that names what was present and is now gone)."""

    def __init__(self, tables: dict[str, list[dict]]) -> None:
        self.model = PlanModel(tables, {})
        self.tags = {(t["repository"], t["tag"]): t["digest"] for t in tables["tags"]}
        self.manifests: set[Pair] = set(self.model.present)
        self.stored = {b["digest"] for b in tables["blobs"] if b["stored"]}
        self.uploads = {(u["repository"], u["uuid"]) for u in tables["uploads"]}
        self.first = (set(self.manifests), set(self.stored))

    def apply(self, a: dict[str, Any]) -> None:
        kind = a["action"]
        if kind == "delete_tag":
            del self.tags[(a["repository"], a["tag"])]
        elif kind == "delete_manifest":
            self.manifests.remove((a["repository"], a["digest"]))
        elif kind == "delete_blob":
            self.stored.remove(a["digest"])
        else:
            self.uploads.remove((a["repository"], a["uuid"]))

    def dangling(self) -> list[str]:
        present, stored = self.first
        out = [f"tag {k} -> {v}" for k, v in self.tags.items()
               if (k[0], v) in present and (k[0], v) not in self.manifests]
        for pair in self.manifests:
            repo = pair[0]
            out += [f"{pair} child {c}" for c in self.model.children[pair]
                    if (repo, c) in present and (repo, c) not in self.manifests]
            subject = self.model.subject(pair)
            if subject and (repo, subject) in present and (repo, subject) not in self.manifests:
                out.append(f"{pair} subject {subject}")
            out += [f"{pair} blob {b}" for b in self.model.refs[pair] if b in stored and b not in self.stored]
        return out


def assert_locks_held(tables: dict[str, list[dict]], policy: Policy, plan: Plan) -> None:
    """Without include_locked, no locked tag or manifest is deleted, nor anything a locked tag
    or manifest reaches (index children and referrers, at any depth)."""
    if policy.include_locked:
        return
    model = PlanModel(tables, {})
    locked = {(t["repository"], t["tag"]) for t in tables["tags"] if t.get("locked")}
    seeds = {(t["repository"], t["digest"]) for t in tables["tags"] if t.get("locked")}
    seeds |= {pair for pair, m in model.present.items() if m["locked"]}
    held = model.closure(seeds)
    for a in plan.actions:
        if a["action"] == "delete_tag":
            assert (a["repository"], a["tag"]) not in locked, a
        elif a["action"] == "delete_manifest":
            assert (a["repository"], a["digest"]) not in held, a


def check_plan(tables: dict[str, list[dict]], meta: dict[str, Any], policy: Policy, plan: Plan) -> None:
    """The safety properties of `plan`, by applying it, and its agreement with PlanModel."""
    applied = Applied(tables)
    kinds = [a["action"] for a in plan.actions]
    assert kinds == sorted(kinds, key=["delete_tag", "delete_manifest", "delete_blob", "delete_upload"].index)
    for i, a in enumerate(plan.actions):
        applied.apply(a)
        assert not applied.dangling(), (i, a, applied.dangling())
    # Every kept tag still resolves: its manifest, and all it reaches (children, referrers, at
    # any depth) with their blobs, are still there.
    model = applied.model
    kept_tag_targets = {(r, dig) for (r, _), dig in applied.tags.items() if (r, dig) in model.present}
    for pair in model.closure(kept_tag_targets | model.roots()):  # and every root, with what it reaches
        assert pair in applied.manifests, pair
        assert model.refs[pair] & applied.first[1] <= applied.stored, pair
    # Whatever stays keeps its referrers; no kept referrer points at a deleted subject.
    for pair in applied.manifests:
        assert model.closure({pair}) <= applied.manifests, pair
    # No delete_blob for a blob a kept pair references.
    kept_refs = set().union(*(model.refs[p] for p in applied.manifests))
    assert not {a["digest"] for a in plan.actions if a["action"] == "delete_blob"} & kept_refs
    # bytes_reclaimed: the blobs that disappear (and the uploads), each once.
    sizes = {b["digest"]: b["size"] for b in tables["blobs"]}
    upload_sizes = {(u["repository"], u["uuid"]): u["size"] for u in tables["uploads"]}
    removed_uploads = set(upload_sizes) - applied.uploads
    if not plan.summary["bytes_estimated"]:
        vanished = applied.first[1] - applied.stored
        assert plan.summary["bytes_reclaimed"] == sum(sizes[b] for b in vanished) + sum(
            upload_sizes[u] for u in removed_uploads)
    else:
        assert applied.stored == applied.first[1] and not removed_uploads
    # And exactly what the rules say, computed without the planner's SQL.
    expected = PlanModel(tables, meta).plan(policy)
    got = deleted(plan)
    assert {(t[1], t[2]) for t in got if t[0] == "tag"} == expected.tags
    assert {(t[1], t[2]) for t in got if t[0] == "manifest"} == expected.manifests
    assert {t[1] for t in got if t[0] == "blob"} == expected.blobs
    assert {(t[1], t[2]) for t in got if t[0] == "upload"} == expected.uploads
    assert plan.summary["bytes_reclaimed"] == expected.bytes_reclaimed
    assert plan.summary["bytes_estimated"] is expected.estimated
    counts: dict[str, int] = defaultdict(int)
    for k in kinds:
        counts[k] += 1
    assert (plan.summary["tags"], plan.summary["manifests"], plan.summary["blobs"], plan.summary["uploads"]) == (
        counts["delete_tag"], counts["delete_manifest"], counts["delete_blob"], counts["delete_upload"])
    per_repo: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for a in plan.actions:
        if a["action"] in ("delete_tag", "delete_manifest", "delete_upload"):
            per_repo[a["repository"]][a["action"]] += 1
    for r in plan.summary["repositories"]:
        assert (r["tags"], r["manifests"], r["uploads"]) == tuple(
            per_repo[r["repository"]][k] for k in ("delete_tag", "delete_manifest", "delete_upload")), r
        assert (r["blobs"], r["bytes_reclaimed"]) == expected.repositories.get(r["repository"], (0, 0)), r
    listed = {r["repository"] for r in plan.summary["repositories"]}
    assert set(per_repo) | set(expected.repositories) <= listed
