"""apply-gc killed (SIGKILL) at exact moments, then --resume; and under injected S3 faults.

The registry's tree is in S3 (moto) behind a proxy: the crawl and the plan go through it, so
the plan's snapshot names the proxy, and so does apply-gc. tests/support/delete_hold_proxy.py
holds the Nth DeleteObjects until the test has killed apply-gc (the tag, manifest, blob
phases: one request each), then drops it or forwards it (deleted, but never heard of). The
resumed run ends in the state the plan describes, and no key is ever sent to S3 twice. Under
a fifth of requests faulted (tests/support/s3_fault_proxy.py), the end state is the same.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from support.apply_runs import REPO_ROOT, apply_json, crawl_and_plan, expected_after
from support.components import Registry, isolated_env
from support.delete_hold_proxy import DeleteHoldProxy
from support.gc_hazards import fill
from support.s3_fault_proxy import S3FaultProxy
from support.storage_check import storage_view

pytestmark = [pytest.mark.registry, pytest.mark.s3]
WAIT = 60.0  # safety nets only: every wait below ends on an event


@pytest.mark.parametrize(("hold_at", "forward_held"), [(1, True), (2, False), (3, True), (3, False)])
def test_killed_then_resumed(make_registry: Any, tmp_path: Path, hold_at: int, forward_held: bool) -> None:
    registry: Registry = make_registry("s3")
    assert registry.s3 is not None
    fill(registry)
    with DeleteHoldProxy(registry.s3.endpoint_url, hold_at=hold_at, forward_held=forward_held) as proxy:
        plan_path, plan = crawl_and_plan(registry, tmp_path, endpoint_url=proxy.url)
        view = storage_view(registry)
        before = view.files()

        killed = subprocess.Popen([sys.executable, "-m", "regstat", "apply-gc", str(plan_path), "--yes"],
                                  stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=isolated_env(), cwd=REPO_ROOT)
        try:
            assert proxy.reached.wait(WAIT), killed.communicate(timeout=WAIT)
            killed.send_signal(signal.SIGKILL)
            assert killed.wait(WAIT) == -signal.SIGKILL
        finally:
            proxy.release.set()
            killed.kill()
            killed.communicate()
        if forward_held:
            assert proxy.held_done.wait(WAIT)
        sent_before = len(proxy.forwarded)

        resumed = apply_json(plan_path, "--yes", "--resume")
        assert view.files() == expected_after(plan, before)
        assert resumed["counts"]["failed"] == resumed["counts"]["skipped"] == 0, resumed
        assert resumed["resumed"] == sum(1 for _ in _settled(plan_path)), resumed
        keys = Counter(key for request in proxy.forwarded for key in request)
        assert keys and max(keys.values()) == 1, [k for k, n in keys.items() if n > 1]
        assert len(proxy.forwarded) > sent_before


def _settled(plan_path: Path) -> list[int]:
    """Positions the killed run settled (an outcome, and no deletion asked for after it)."""
    settled: dict[int, bool] = {}
    lines = Path(f"{plan_path}.journal").read_text().splitlines()
    for line in lines[:lines.index(next(x for x in lines if '"resumed":true' in x))]:
        record = json.loads(line)
        if record["event"] == "deleting":
            settled.update({p: False for p in record["positions"]})
        elif record["event"] == "outcome":
            settled[record["position"]] = record["status"] in ("deleted", "gone", "skipped")
    return [p for p, done in settled.items() if done]


@pytest.mark.parametrize("seed", [3, 4])
def test_injected_faults_end_in_the_clean_state(make_registry: Any, tmp_path: Path, seed: int) -> None:
    registry: Registry = make_registry("s3")
    assert registry.s3 is not None
    fill(registry)
    with S3FaultProxy(registry.s3.endpoint_url, seed=seed, rate=0.2) as proxy:
        plan_path, plan = crawl_and_plan(registry, tmp_path, endpoint_url=proxy.url)
        before = storage_view(registry).files()
        done = apply_json(plan_path, "--yes")
        assert proxy.faults_injected(), "no fault was injected"
    assert done["counts"]["deleted"] == len(plan["actions"]), done
    assert storage_view(registry).files() == expected_after(plan, before)
