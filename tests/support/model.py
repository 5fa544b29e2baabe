"""An independent implementation of docs/design.md's definitions over plain rows (dicts
shaped like the snapshot tables), for checking the analysis SQL against without running it."""

from __future__ import annotations

from collections import defaultdict


class Model:
    """The definitions of docs/design.md over plain rows (dicts shaped like the snapshot tables)."""

    def __init__(self, tables: dict[str, list[dict]]) -> None:
        self.tables = tables
        self.present = {(m["repository"], m["digest"]) for m in tables["manifests"]}
        self.blob_size = {b["digest"]: b["size"] for b in tables["blobs"]}
        # pair -> blobs it keeps alive: its own manifest blob, config, layers, index children
        self.refs: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.layers: dict[tuple[str, str], set[str]] = defaultdict(set)
        self.children: dict[tuple[str, str], set[str]] = defaultdict(set)
        for m in tables["manifests"]:
            self.refs[(m["repository"], m["digest"])].add(m["digest"])
        for d in tables["descriptors"]:
            pair = (d["repository"], d["manifest_digest"])
            if d["role"] in ("config", "layer", "manifest"):
                self.refs[pair].add(d["digest"])
            if d["role"] in ("config", "layer"):
                self.layers[pair].add(d["digest"])
            if d["role"] == "manifest":
                self.children[pair].add(d["digest"])

    def size(self, digest: str) -> int:
        return self.blob_size[digest]

    def reachable(self) -> dict[tuple[str, str], int]:
        """(repository, digest) -> steps from the nearest tag or root, by a plain fixed point."""
        depth = {(t["repository"], t["digest"]): 0 for t in self.tables["tags"]}
        depth |= {(m["repository"], m["digest"]): 0 for m in self.tables["manifests"] if m.get("root")}
        depth = {k: v for k, v in depth.items() if k in self.present}
        changed = True
        while changed:
            changed = False
            for repo, digest in sorted(self.present):
                candidates = [
                    depth[(repo, parent)] + 1
                    for (r, parent), kids in self.children.items()
                    if r == repo and digest in kids and (repo, parent) in depth
                ]
                subject = self._subject(repo, digest)
                if subject is not None and (repo, subject) in depth:
                    candidates.append(depth[(repo, subject)] + 1)
                if candidates and min(candidates) < depth.get((repo, digest), 1 << 30):
                    depth[(repo, digest)] = min(candidates)
                    changed = True
        return depth

    def _subject(self, repo: str, digest: str) -> str | None:
        for m in self.tables["manifests"]:
            if m["repository"] == repo and m["digest"] == digest:
                return m["subject_digest"]
        return None

    def orphans(self) -> set[tuple[str, str]]:
        return self.present - set(self.reachable())

    def exclusive_bytes(self, pairs: set[tuple[str, str]]) -> int:
        inside = set().union(*(self.refs[p] for p in pairs)) if pairs else set()
        outside = set().union(*(blobs for p, blobs in self.refs.items() if p not in pairs))
        return sum(self.size(b) for b in inside - outside)

    def layer_sharing(self) -> dict[str, tuple[int, int, int, int]]:
        """digest -> (size, manifests, repositories, savings_bytes)."""
        pairs_of: dict[str, set[tuple[str, str]]] = defaultdict(set)
        for pair, blobs in self.layers.items():
            for b in blobs:
                pairs_of[b].add(pair)
        return {
            b: (self.size(b), len(ps), len({r for r, _ in ps}), self.size(b) * (len(ps) - 1))
            for b, ps in pairs_of.items()
        }

    def dedup_summary(self) -> tuple[int, int, int]:
        physical = sum(b["size"] for b in self.tables["blobs"] if b["stored"])
        logical = sum(self.size(b) for blobs in self.layers.values() for b in blobs)
        savings = sum(s for _, _, _, s in self.layer_sharing().values())
        return physical, logical, savings

    def unreferenced_blobs(self) -> set[str]:
        named = {d["digest"] for d in self.tables["descriptors"] if d["role"] in ("config", "layer", "manifest")}
        manifests = {digest for _, digest in self.present}
        return {b["digest"] for b in self.tables["blobs"] if b["stored"]} - named - manifests

    def repository_usage(self) -> dict[str, tuple[int, ...]]:
        orphans = self.orphans()
        usage = {}
        for r in (row["repository"] for row in self.tables["repositories"]):
            pairs = {p for p in self.present if p[0] == r}
            referenced = set().union(*(self.refs[p] for p in pairs)) if pairs else set()
            exclusive = self.exclusive_bytes(pairs)
            usage[r] = (
                sum(1 for t in self.tables["tags"] if t["repository"] == r),
                len(pairs),
                len(pairs & orphans),
                sum(self.size(b) for p in pairs for b in self.layers[p]),
                exclusive,
                sum(self.size(b) for b in referenced) - exclusive,
                self.exclusive_bytes(pairs & orphans),
            )
        return usage
