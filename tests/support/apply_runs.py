"""`regstat apply-gc` on a real docker-registry's storage tree (disk or S3), and what to check
after it.

:func:`crawl_and_plan` crawls the tree and plans with :data:`POLICY` (the garbage of
gc_hazards.fill, and the tag ``mount/dst:v1``); :func:`apply_gc` runs apply-gc in a child
process; :func:`planned_prefixes` names the directories the plan removes, so that the end
state an apply must reach is computed from the plan alone: every file under those
directories gone, every other file still there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

from .components import Registry, isolated_env
from .gc_hazards import REPO_ROOT

# The hazards' garbage (untagged manifests, unreferenced blobs, the stale upload) and one
# tag: mount/dst:v1, whose image then goes too (its layer mounted from mount/src stays).
POLICY = """
grace = "0s"

[[rules]]
repositories = ["mount/dst"]
delete_tags = "^v1$"
untagged = true

[default]
untagged = true
"""


def regstat(*args: str, stdin: str | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``python -m regstat ARGS`` in a child process (dummy AWS credentials)."""
    return subprocess.run([sys.executable, "-m", "regstat", *args], capture_output=True, text=True, input=stdin,
                          env=isolated_env(), cwd=REPO_ROOT, timeout=timeout)


def crawl_and_plan(registry: Registry, work: Path, *, endpoint_url: str | None = None) -> tuple[Path, dict[str, Any]]:
    """Crawl the registry's tree (S3: at `endpoint_url`, default the moto server's) and plan
    with POLICY; return the plan's path and JSON."""
    snapshot, plan, policy = work / "snap", work / "plan.json", work / "policy.toml"
    policy.write_text(POLICY)
    crawl = ["crawl", registry.source, "-o", str(snapshot)]
    if registry.s3 is not None:
        crawl += ["--endpoint-url", endpoint_url or registry.s3.endpoint_url]
    for args in (crawl, ["plan-gc", str(snapshot), "--policy", str(policy), "-o", str(plan)]):
        result = regstat(*args)
        assert result.returncode == 0, f"regstat {' '.join(args)} failed ({result.returncode}):\n{result.stderr}"
    return plan, json.loads(plan.read_text())


def apply_gc(plan: Path, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return regstat("apply-gc", str(plan), *args, timeout=timeout)


def apply_json(plan: Path, *args: str, code: int = 0) -> dict[str, Any]:
    """apply-gc --json, its exit code checked; the summary."""
    result = apply_gc(plan, "--json", *args)
    assert result.returncode == code, f"apply-gc exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return dict(json.loads(result.stdout))


def planned_prefixes(plan: dict[str, Any], tree: dict[str, int]) -> set[str]:
    """The directories (paths relative to docker/registry/v2, ending in `/`) the plan's
    actions remove, as distribution's own deletions do; `tree` (the files before) gives each
    tag's index entries of a deleted manifest."""
    prefixes = set()
    for a in plan["actions"]:
        algorithm, _, hex_part = (a.get("digest") or "").partition(":")
        if a["action"] == "delete_tag":
            prefixes.add(f"repositories/{a['repository']}/_manifests/tags/{a['tag']}/")
        elif a["action"] == "delete_manifest":
            prefixes.add(f"repositories/{a['repository']}/_manifests/revisions/{algorithm}/{hex_part}/")
            tags = f"repositories/{a['repository']}/_manifests/tags/"
            prefixes |= {path.rsplit("/", 1)[0] + "/" for path in tree
                         if path.startswith(tags) and path.endswith(f"/index/{algorithm}/{hex_part}/link")}
        elif a["action"] == "delete_blob":
            prefixes.add(f"blobs/{algorithm}/{hex_part[:2]}/{hex_part}/")
        else:
            prefixes.add(f"repositories/{a['repository']}/_uploads/{a['uuid']}/")
    return prefixes


def expected_after(plan: dict[str, Any], before: dict[str, int]) -> dict[str, int]:
    """The tree once the whole plan is applied: `before` without what the plan removes."""
    prefixes = planned_prefixes(plan, before)
    return {path: size for path, size in before.items() if not any(path.startswith(p) for p in prefixes)}


def freed_data(before: dict[str, int], after: dict[str, int]) -> int:
    """The bytes of blob and upload data that left the tree (what bytes_reclaimed counts)."""
    return sum(size for path, size in before.items() if path not in after
               and path.endswith("/data") and (path.startswith("blobs/") or "/_uploads/" in path))
