"""Snapshots for tests without a registry: `write_snapshot` stores rows as a crawl stores
them, `build` makes the rows of a small registry graph; SAMPLE is the scenario's storage tree
(tests/scenario_tree/) and NAMES its digests by name."""

from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import pyarrow as pa

from regstat.snapshot import FORMAT, SCHEMA_VERSION, SCHEMAS, TABLES, Snapshot, digest_ids

SAMPLE = Path(__file__).resolve().parent.parent / "scenario_tree"
NAMES = json.loads((SAMPLE / "EXPECTED.json").read_text())["names"]
MANIFESTS = [f"sha256:m{i}" for i in range(7)]
BLOBS = [f"sha256:b{i}" for i in range(5)]


def rows(con, sql: str) -> list[tuple]:
    return con.execute(sql).fetchall()


def with_repeats(descriptors: list[dict]) -> list[dict]:
    """The rows with `repeated` as a crawl sets it, where a row does not give it: true when its
    manifest names the digest more than once as config, layer or child."""
    named: dict[tuple, int] = defaultdict(int)
    for d in descriptors:
        if d["role"] != "subject":
            named[(d["repository"], d["manifest_digest"], d["digest"])] += 1
    return [d if "repeated" in d else
            {**d, "repeated": d["role"] != "subject"
             and named[(d["repository"], d["manifest_digest"], d["digest"])] > 1}
            for d in descriptors]


def write_snapshot(path: Path, tables: dict[str, list[dict]]) -> Snapshot:
    """A finished snapshot of `tables` (rows in the readers' form: digests as text), stored as
    a crawl stores it (regstat.snapshot.digest_ids.write: `digests` plus ids)."""
    path.mkdir(parents=True)
    tables = {**tables, "descriptors": with_repeats(tables.get("descriptors", []))}
    counts = digest_ids.write(
        path, {name: pa.Table.from_pylist(tables.get(name, []), schema=SCHEMAS[name]) for name in TABLES}
    )
    meta = {
        "format": FORMAT,
        "schema_version": SCHEMA_VERSION,
        "regstat_version": "test",
        "id": "20260101T000000Z-00000000",
        "source": {"kind": "storage-layout", "driver": "filesystem", "location": "/fake"},
        "capabilities": {
            "untagged_manifests": True,
            "unreferenced_blobs": True,
            "stored_blob_sizes": True,
            "push_times": None,
            "pull_times": None,
            "locks": None,
        },
        "started_at": "2026-01-01T00:00:00Z",
        "finished_at": "2026-01-01T00:00:01Z",
        "complete": True,
        "partial": False,
        "repository_filter": [],
        "incomplete_repositories": [],
        "errors": [],
        "counts": {name: counts[name] for name in sorted(counts)},
    }
    (path / "snapshot.json").write_text(json.dumps(meta))
    return Snapshot.open(path)


def build(contents: dict[str, dict], holdings: dict[str, list[str]], tagged: dict[str, list[str]],
          roots: dict[str, list[str]] | None = None) -> dict:
    """Rows for a registry: `contents` gives each manifest digest's content (the same in every
    repository, as content addressing demands), `holdings` which repository holds which, and
    `roots` which of them are roots (an OCI layout's unnamed index.json entries)."""
    tables: dict[str, list[dict]] = {name: [] for name in TABLES}
    sizes = {d: 100 + i for i, d in enumerate(MANIFESTS)} | {b: 1000 * (i + 1) for i, b in enumerate(BLOBS)}
    for repo in sorted(holdings):
        tables["repositories"].append({"repository": repo, "complete": True, "error_count": 0})
        for digest in sorted(set(holdings[repo])):
            c = contents[digest]
            tables["manifests"].append(
                {"repository": repo, "digest": digest, "media_type": "x", "size": sizes[digest],
                 "subject_digest": c["subject"], "status": "ok", "root": digest in (roots or {}).get(repo, ())}
            )
            roles = [("manifest", k) for k in c["children"]] + [("layer", b) for b in c["layers"]]
            roles += [("config", c["config"])] if c["config"] else []
            roles += [("subject", c["subject"])] if c["subject"] else []
            for position, (role, target) in enumerate(roles):
                tables["descriptors"].append(
                    {"repository": repo, "manifest_digest": digest, "role": role, "position": position,
                     # media types vary with the naming manifest: a blob's smallest one is a choice
                     "digest": target, "media_type": f"type/{role}/{(position + len(repo)) % 3}",
                     "size": sizes[target]}
                )
        for i, digest in enumerate(sorted(set(tagged.get(repo, [])))):
            tables["tags"].append({"repository": repo, "tag": f"t{i}", "digest": digest})
    for digest, size in sizes.items():
        tables["blobs"].append({"digest": digest, "size": size, "stored": digest != BLOBS[-1]})
    return tables
