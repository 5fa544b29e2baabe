"""Registries for the planner's tests: a hand builder, a hypothesis strategy for random
registry graphs with times, locks and uploads, and `PlanModel`, a plain-Python reading of
the planner's rules (docs/design.md "Safety rules of the planner", issue 5) that never runs SQL.

Times are relative to TAKEN, the `finished_at` that snapshots.write_snapshot records:
the planner measures every age to it.
"""

from __future__ import annotations

import json
import re
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from hypothesis import strategies as st

from regstat.plan.policy import Policy
from regstat.snapshot import TABLES, Snapshot
from regstat.sources import ecr, oci_layout
from regstat.sources.storage_tree import jobs as storage_jobs
from regstat.sources.registry_api import source as distribution_api

from .snapshots import write_snapshot

TAKEN = datetime(2026, 1, 1, 0, 0, 1, tzinfo=UTC)
DAY = timedelta(days=1)
OLD = TAKEN - 60 * DAY  # older than every grace period the tests use
YOUNG = TAKEN - timedelta(hours=1)  # inside the default 24h grace

Pair = tuple[str, str]  # (repository, manifest digest)

# Each source's capabilities and description, as its crawler records them.
SOURCES: dict[str, dict[str, Any]] = {
    "storage": {"capabilities": storage_jobs.CAPABILITIES.to_json(),
                "source": {"kind": "storage-layout", "driver": "filesystem", "location": "/fake"}},
    "oci": {"capabilities": oci_layout.CAPABILITIES.to_json(), "source": {"kind": "oci-layout", "location": "/fake"}},
    "api": {"capabilities": distribution_api.CAPABILITIES.to_json(),
            "source": {"kind": "distribution-api", "location": "http://127.0.0.1:5000"}},
    "ecr": {"capabilities": ecr.CAPABILITIES.to_json(), "source": {"kind": "ecr", "location": "ecr://us-east-1"}},
    # As ACR's data-plane API shows a registry: untagged manifests, exact times and locks; no blobs.
    "acr": {"capabilities": {"untagged_manifests": True, "unreferenced_blobs": False, "stored_blob_sizes": False,
                             "push_times": "exact", "pull_times": None, "locks": "exact"},
            "source": {"kind": "acr", "location": "acr://example.azurecr.io"}},
}


def snapshot(path: Path, tables: dict[str, list[dict]], source: str = "storage", **meta: Any) -> Snapshot:
    """write_snapshot as `source` (a key of SOURCES) would record it, with snapshot.json then
    changed by `meta` (complete, partial, errors...)."""
    snap = write_snapshot(path, tables)
    doc = json.loads((snap.path / "snapshot.json").read_text())
    doc.update(SOURCES[source], **meta)
    (snap.path / "snapshot.json").write_text(json.dumps(doc))
    return Snapshot.open(snap.path)


@dataclass
class Registry:
    """Rows for a hand-built snapshot. Manifest blobs are stored blobs of `size` bytes (as in a
    storage layout); a manifest's content (descriptors) is given once per repository holding it."""

    tables: dict[str, list[dict]] = field(default_factory=lambda: {name: [] for name in TABLES})
    sizes: dict[str, int] = field(default_factory=dict)

    def repository(self, repo: str, *, complete: bool = True, error_count: int = 0) -> Registry:
        rows = self.tables["repositories"]
        rows[:] = [r for r in rows if r["repository"] != repo]
        rows.append({"repository": repo, "complete": complete, "error_count": error_count})
        return self

    def blob(self, digest: str, size: int, *, stored: bool = True, modified_at: datetime | None = OLD) -> Registry:
        assert digest not in self.sizes, digest
        self.sizes[digest] = size
        self.tables["blobs"].append({"digest": digest, "size": size, "stored": stored, "modified_at": modified_at})
        return self

    def manifest(
        self, repo: str, digest: str, size: int = 100, *, config: str | None = None, layers: tuple[str, ...] = (),
        children: tuple[str, ...] = (), subject: str | None = None, pushed_at: datetime | None = OLD,
        locked: bool | None = None, last_pulled_at: datetime | None = None, status: str = "ok",
        blob_at: datetime | None = OLD, root: bool = False, updated_at: datetime | None = None,
    ) -> Registry:
        if not any(r["repository"] == repo for r in self.tables["repositories"]):
            self.repository(repo)
        if digest not in self.sizes:
            self.blob(digest, size, modified_at=blob_at)
        self.tables["manifests"].append({
            "repository": repo, "digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json",
            "size": self.sizes[digest], "subject_digest": subject, "status": status, "pushed_at": pushed_at,
            "last_pulled_at": last_pulled_at, "locked": locked, "root": root, "updated_at": updated_at,
        })
        roles = [("manifest", c) for c in children] + [("config", config)] * (config is not None)
        roles += [("layer", x) for x in layers] + [("subject", subject)] * (subject is not None)
        for position, (role, target) in enumerate(roles):
            self.tables["descriptors"].append({
                "repository": repo, "manifest_digest": digest, "role": role, "position": position,
                "digest": target, "media_type": f"type/{role}", "size": self.sizes.get(target, 1),
            })
        return self

    def tag(self, repo: str, tag: str, digest: str, updated_at: datetime | None = OLD, *,
            locked: bool | None = None) -> Registry:
        self.tables["tags"].append({"repository": repo, "tag": tag, "digest": digest, "updated_at": updated_at,
                                    "locked": locked})
        return self

    def upload(self, repo: str, uuid: str, size: int, started_at: datetime | None = OLD) -> Registry:
        self.tables["uploads"].append({"repository": repo, "uuid": uuid, "size": size, "started_at": started_at,
                                       "modified_at": None})
        return self


# Hand builders: manifests and blobs named by short names (`d("img")` is "sha256:img").


def d(name: str) -> str:
    return f"sha256:{name}"


def image(reg: Registry, repo: str, name: str, size: int = 100, *, config: str | None = None,
          layers: tuple[str, ...] = (), **kw: Any) -> Registry:
    return reg.manifest(repo, d(name), size, config=d(config) if config else None,
                        layers=tuple(d(x) for x in layers), **kw)


def index(reg: Registry, repo: str, name: str, children: tuple[str, ...], size: int = 100, **kw: Any) -> Registry:
    return reg.manifest(repo, d(name), size, children=tuple(d(c) for c in children), **kw)


def referrer(reg: Registry, repo: str, name: str, subject: str, size: int = 100, *, layers: tuple[str, ...] = (),
             **kw: Any) -> Registry:
    return reg.manifest(repo, d(name), size, subject=d(subject), layers=tuple(d(x) for x in layers), **kw)


def blobs(reg: Registry, **sizes: int) -> Registry:
    for name, size in sizes.items():
        reg.blob(d(name), size)
    return reg


# --- random registry graphs -----------------------------------------------------------------

N_MANIFESTS = 8
MANIFESTS = [f"sha256:m{i}" for i in range(N_MANIFESTS)]
BLOBS = [f"sha256:b{i}" for i in range(5)]
REPOS = ["a", "b/c", "d"]
TAG_NAMES = ["latest", "v1", "v2", "pr-1", "pr-2", "release-1", "sha256-x.sig"]
TIMES = [OLD, TAKEN - 40 * DAY, TAKEN - 10 * DAY, TAKEN - 3 * DAY, YOUNG, None, OLD]  # mostly deletable


@st.composite
def random_registries(draw: st.DrawFn) -> dict[str, list[dict]]:
    """A registry whose manifests form a DAG, as content addressing demands (m<i> can name
    only m<j>, j > i): nested indexes, referrers of referrers, shared layers, the same manifest
    in several repositories, tags that moved (several tags, on any manifest), dangling tags,
    roots (an OCI layout's unnamed index.json entries), times missing or young, locks on
    manifests and on tags, manifests' update times (ACR's lastUpdateTime), pulls,
    unstored blobs, uploads; rarely a repository with crawl errors or a manifest that could
    not be read."""
    reg = Registry()
    for i, b in enumerate(BLOBS):
        reg.blob(b, 1000 * (i + 1), stored=draw(st.booleans() | st.just(True)),
                 modified_at=draw(st.sampled_from(TIMES)))
    contents = {}
    for i, d in enumerate(MANIFESTS):
        later = MANIFESTS[i + 1:]
        kind = draw(st.sampled_from(["image", "image", "index", "referrer"])) if later else "image"
        contents[d] = {
            "children": draw(st.lists(st.sampled_from(later), max_size=3, unique=True)) if kind == "index" else [],
            "subject": draw(st.sampled_from(later)) if kind == "referrer" else None,
            "config": draw(st.none() | st.sampled_from(BLOBS)) if kind != "index" else None,
            "layers": tuple(draw(st.lists(st.sampled_from(BLOBS), max_size=3))) if kind != "index" else (),
        }
        reg.blob(d, 100 + i, stored=True, modified_at=draw(st.sampled_from(TIMES)))
    repos = draw(st.lists(st.sampled_from(REPOS), min_size=1, max_size=3, unique=True))
    for repo in repos:
        errors = draw(st.integers(0, 19).map(lambda i: int(i == 7)))  # rare (not 0: hypothesis favours it)
        reg.repository(repo, complete=not errors, error_count=errors)
        for d in draw(st.lists(st.sampled_from(MANIFESTS), max_size=N_MANIFESTS, unique=True)):
            c = contents[d]
            reg.manifest(repo, d, config=c["config"], layers=c["layers"], children=tuple(c["children"]),
                         subject=c["subject"], pushed_at=draw(st.sampled_from(TIMES)),
                         locked=draw(st.sampled_from([None, None, False, True])),
                         updated_at=draw(st.sampled_from([None, *TIMES])),
                         last_pulled_at=draw(st.sampled_from(TIMES)),
                         status=draw(st.integers(0, 199).map(lambda i: "unknown_media_type" if i == 77 else "ok")),
                         root=draw(st.integers(0, 5).map(lambda i: i == 3)))
        held = sorted({m["digest"] for m in reg.tables["manifests"] if m["repository"] == repo})
        for tag in draw(st.lists(st.sampled_from(TAG_NAMES), max_size=5, unique=True)):
            # mostly on a manifest the repository holds; sometimes dangling
            target = draw(st.sampled_from(held) if held and draw(st.integers(0, 4)) else st.sampled_from(MANIFESTS))
            reg.tag(repo, tag, target, draw(st.sampled_from(TIMES)),
                    locked=draw(st.sampled_from([None, None, False, True])))
        for n in range(draw(st.integers(0, 2))):
            reg.upload(repo, f"u{n}", 7 * (n + 1), draw(st.sampled_from(TIMES)))
    return reg.tables


# snapshot.json changes (`snapshot(**meta)`): most complete, some partial or from sources
# that cannot see untagged manifests or blobs.
Meta = st.sampled_from([
    {},
    {},
    {},
    {"source": "ecr"},
    {"source": "api"},
    {"source": "acr"},
    {"complete": False, "errors": [{"repository": "d", "message": "x"}], "incomplete_repositories": ["d"]},
    {"partial": True},
])


# --- the planner's rules in plain Python ----------------------------------------------------


@dataclass
class Expected:
    tags: set[tuple[str, str]]  # (repository, tag)
    manifests: set[Pair]
    blobs: set[str]
    uploads: set[tuple[str, str]]
    bytes_reclaimed: int
    estimated: bool
    # repository -> (blobs, bytes) of the counted blobs only it references, plus its uploads
    repositories: dict[str, tuple[int, int]]


class PlanModel:
    """What the plan must delete, straight from the rules as issue 5 and docs/design.md state them."""

    def __init__(self, tables: dict[str, list[dict]], meta: dict[str, Any]) -> None:
        self.tables = tables
        self.meta = meta
        self.taken = TAKEN
        self.present = {(m["repository"], m["digest"]): m for m in tables["manifests"]}
        self.children: dict[Pair, set[str]] = defaultdict(set)
        self.refs: dict[Pair, set[str]] = defaultdict(set)  # own blob, config, layers, children
        self.descriptor_size: dict[str, int] = {}
        for pair in self.present:
            self.refs[pair].add(pair[1])
        for d in tables["descriptors"]:
            pair = (d["repository"], d["manifest_digest"])
            if d["role"] == "manifest":
                self.children[pair].add(d["digest"])
            if d["role"] in ("config", "layer", "manifest"):
                self.refs[pair].add(d["digest"])
                self.descriptor_size[d["digest"]] = max(d["size"], self.descriptor_size.get(d["digest"], 0))
        for m in tables["manifests"]:
            self.descriptor_size[m["digest"]] = max(m["size"], self.descriptor_size.get(m["digest"], 0))
        self.blob = {b["digest"]: b for b in tables["blobs"]}

    def subject(self, pair: Pair) -> str | None:
        return self.present[pair]["subject_digest"]

    def is_referrer(self, pair: Pair) -> bool:
        s = self.subject(pair) if pair in self.present else None
        return s is not None and (pair[0], s) in self.present

    def closure(self, seeds: set[Pair]) -> set[Pair]:
        """Seeds present, plus index children and referrers, within each repository."""
        reached = {p for p in seeds if p in self.present}
        todo = list(reached)
        while todo:
            repo, digest = todo.pop()
            nxt = {(repo, c) for c in self.children[(repo, digest)]}
            nxt |= {p for p in self.present if p[0] == repo and self.subject(p) == digest}
            for p in nxt:
                if p in self.present and p not in reached:
                    reached.add(p)
                    todo.append(p)
        return reached

    def roots(self) -> set[Pair]:
        return {pair for pair, m in self.present.items() if m["root"]}

    def blocked(self) -> set[str]:
        out = {r["repository"] for r in self.tables["repositories"] if not r["complete"] or r["error_count"]}
        out |= {repo for (repo, _), m in self.present.items() if m["status"] != "ok"}
        out |= {e["repository"] for e in self.meta.get("errors") or [] if e.get("repository")}
        return out | set(self.meta.get("incomplete_repositories") or [])

    def may_delete_blobs(self) -> bool:
        caps = self.meta.get("capabilities") or {}
        errored = any(not r["complete"] or r["error_count"] for r in self.tables["repositories"])
        return bool(caps.get("unreferenced_blobs") and caps.get("stored_blob_sizes") and self.meta.get("complete")
                    and not self.meta.get("partial") and not self.meta.get("errors")
                    and not self.meta.get("incomplete_repositories") and not errored
                    and all(m["status"] == "ok" for m in self.present.values()))

    def plan(self, policy: Policy) -> Expected:
        grace_cutoff = self.taken - policy.grace if policy.grace else None
        blocked = self.blocked()

        def young(t: datetime | None) -> bool:
            return grace_cutoff is not None and (t is None or t > grace_cutoff)

        # Tags: deleted (selected and unprotected), following their referrer, or kept.
        deleted_tags: set[tuple[str, str]] = set()
        follows: dict[tuple[str, str], Pair] = {}
        seeds: set[Pair] = set()
        by_repo: dict[str, list[dict]] = defaultdict(list)
        for t in self.tables["tags"]:
            by_repo[t["repository"]].append(t)
        for repo, tags in by_repo.items():
            rule = policy.rule_for(repo)
            selected = []
            for t in tags:
                pair = (repo, t["digest"])
                m = self.present.get(pair)
                protected = rule is None or repo in blocked or (
                    any(re.search(p, t["tag"]) for p in rule.keep_tags) or young(t["updated_at"])
                    or ((t.get("locked") or (m is not None and m["locked"])) and not policy.include_locked)
                    or (rule.pulled_within is not None and m is not None and m["last_pulled_at"] is not None
                        and m["last_pulled_at"] >= self.taken - rule.pulled_within))
                if protected:
                    seeds.add(pair)
                elif self.is_referrer(pair):
                    follows[(repo, t["tag"])] = pair
                elif self.selected(rule, t):
                    selected.append(t)
                else:
                    seeds.add(pair)
            # keep: of the selected, unprotected tags, the most recently updated stay (a missing
            # time counts as newest; equal times by name)
            ranked = sorted(selected, key=lambda t: (t["updated_at"] is not None,
                                                     -(t["updated_at"] or TAKEN).timestamp(), t["tag"]))
            spared = rule.keep if rule is not None and rule.keep is not None else 0
            for i, t in enumerate(ranked):
                if i < spared:
                    seeds.add((repo, t["digest"]))
                else:
                    deleted_tags.add((repo, t["tag"]))

        # Protected manifests seed reachability with the kept tags; roots are kept whatever the rules.
        now = self.closure({(t["repository"], t["digest"]) for t in self.tables["tags"]} | self.roots())
        protected: set[Pair] = set()
        for pair, m in self.present.items():
            rule = policy.rule_for(pair[0])
            if (rule is None or pair[0] in blocked or m["status"] != "ok" or m["root"]
                    or (m["locked"] and not policy.include_locked) or young(m["pushed_at"])
                    or (rule.ago is not None and self.updated_since(m, self.taken - rule.ago))
                    or (rule.pulled_within is not None and m["last_pulled_at"] is not None
                        and m["last_pulled_at"] >= self.taken - rule.pulled_within)
                    or (not rule.untagged and pair not in now)):
                protected.add(pair)
        seeds |= protected | self.spared_orphans(policy, now, protected)
        while True:  # a kept referrer keeps its subject
            kept = self.closure(seeds)
            subjects = {(p[0], self.subject(p)) for p in kept if self.is_referrer(p)} - kept
            if not subjects:
                break
            seeds |= subjects
        deleted = set(self.present) - kept
        deleted_tags |= {key for key, pair in follows.items() if pair in deleted}

        # Blobs: gone when no kept pair references them.
        kept_refs = set().union(*(self.refs[p] for p in kept))
        all_refs = set().union(*(self.refs[p] for p in self.present))
        if self.may_delete_blobs():
            blobs = {d for d, b in self.blob.items()
                     if b["stored"] and not young(b["modified_at"]) and d not in kept_refs}
            repos = {r["repository"] for r in self.tables["repositories"]} | {p[0] for p in self.present}
            repos |= {t["repository"] for t in self.tables["tags"]}
            uploads = {(u["repository"], u["uuid"]): u["size"] for u in self.tables["uploads"]
                       if u["repository"] in repos and policy.rule_for(u["repository"]) is not None
                       and u["repository"] not in blocked and not young(u["started_at"] or u["modified_at"])}
            size = {d: self.blob[d]["size"] for d in blobs}
            return Expected(deleted_tags, deleted, blobs, set(uploads), sum(size.values()) + sum(uploads.values()),
                            False, self.per_repository(size, uploads))
        released = all_refs - kept_refs  # what the registry frees itself once the manifests go
        size = {d: self.blob[d]["size"] if d in self.blob else self.descriptor_size[d] for d in released}
        return Expected(deleted_tags, deleted, set(), set(), sum(size.values()), True,
                        self.per_repository(size, {}, count_blobs=False))

    def per_repository(self, size: dict[str, int], uploads: dict[tuple[str, str], int], *,
                       count_blobs: bool = True) -> dict[str, tuple[int, int]]:
        """Blobs count under a repository when it alone references them; uploads where they are.
        An estimate (no blob deletions) counts their bytes but no blobs."""
        out: dict[str, tuple[int, int]] = defaultdict(lambda: (0, 0))
        for digest, n in size.items():
            repos = {p[0] for p in self.present if digest in self.refs[p]}
            if len(repos) == 1:
                (repo,) = repos
                out[repo] = (out[repo][0] + int(count_blobs), out[repo][1] + n)
        for (repo, _), n in uploads.items():
            out[repo] = (out[repo][0], out[repo][1] + n)
        return {r: v for r, v in out.items() if v != (0, 0)}

    @staticmethod
    def updated_since(m: dict, cutoff: datetime) -> bool:
        """acr purge's --ago on a manifest: updated (else pushed) after `cutoff`, or when unknown."""
        when = m.get("updated_at") or m["pushed_at"]
        return when is None or when > cutoff

    def selected(self, rule: Any, t: dict) -> bool:
        """Whether the rule's filters select tag `t` (before `keep` ranks the selected)."""
        if not rule.selects_tags:
            return False
        age = rule.older_than if rule.older_than is not None else rule.ago
        if age is not None and (t["updated_at"] is None or t["updated_at"] > self.taken - age):
            return False
        if rule.filter_tags and not any(re.search(p, t["tag"]) for p in rule.filter_tags):
            return False
        return rule.delete_tags is None or re.search(rule.delete_tags, t["tag"]) is not None

    def spared_orphans(self, policy: Policy, now: set[Pair], protected: set[Pair]) -> set[Pair]:
        """keep_untagged: per repository, the most recently updated (else pushed) unprotected
        orphans that no manifest of the repository reaches (a missing time counts as newest;
        equal times by digest)."""
        reached = {(p[0], c) for p in self.present for c in self.children[p]}
        reached |= {p for p in self.present if self.is_referrer(p)}
        by_repo: dict[str, list[dict]] = defaultdict(list)
        for pair, m in self.present.items():
            if pair not in now and pair not in protected and pair not in reached:
                by_repo[pair[0]].append(m)
        spared = set()
        for repo, orphans in by_repo.items():
            rule = policy.rule_for(repo)
            if rule is None or not rule.untagged or not rule.keep_untagged:
                continue
            def when(m: dict) -> datetime | None:
                return m.get("updated_at") or m["pushed_at"]

            orphans.sort(key=lambda m: (when(m) is not None, -(when(m) or TAKEN).timestamp(), m["digest"]))
            spared |= {(repo, m["digest"]) for m in orphans[:rule.keep_untagged]}
        return spared
