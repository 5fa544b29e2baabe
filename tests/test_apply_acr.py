"""apply-gc's ACR target (regstat/apply/acr.py) against the ACR stand-in over a real
docker-registry holding the standard scenario (support/scenario.py): crawl acr://, plan-gc,
apply-gc; tags deleted through `/acr/v1`, manifests through `/v2`, locks honoured (read live,
and a DELETE answered 405), faults, and a run killed mid-way then resumed.

What the registry holds afterwards is read through the stand-in's own API (`/acr/v1`, with
the admin user) and checked against what the plan says, never against another crawl."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import time
import urllib.request
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from support.acr_api import DISALLOWED, error
from support.acr_components import AcrStandin
from support.apply_runs import regstat
from support.apply_targets import LiveTags, PlannedSet, manifest_action, tag_action
from support.components import isolated_env
from support.expected import Expected
from support.gc_hazards import REPO_ROOT, skopeo_copy_out
from support.scenario import populate

from regstat.apply.acr import AcrTarget
from regstat.apply.target import DELETED, FAILED, GONE, SKIPPED
from regstat.apply.targets import OPENERS
from regstat.errors import EXIT_REFUSED
from regstat.snapshot.info import SourceInfo
from regstat.sources.base import CrawlOptions

pytestmark = pytest.mark.registry

# Tags alone (base/alpine:latest and apps/web:latest keep their manifests through 3.19 and v2),
# a manifest list with its children (tools/cli:v1-docker), and apps/web's untagged old latest.
PLAN = ("--untagged", "--delete-tags", "^(latest|v1-docker)$", "--grace", "0s")
State = dict[str, tuple[dict[str, str], frozenset[str]]]


def _admin(standin: AcrStandin) -> tuple[str, ...]:
    return ("--insecure", "--username", standin.admin_username, "--password-stdin")


def _run(standin: AcrStandin, *args: str) -> subprocess.CompletedProcess[str]:
    return regstat(*args, *_admin(standin), stdin=standin.admin_password + "\n")


def _crawl_and_plan(standin: AcrStandin, work: Path, *plan_args: str) -> tuple[Path, dict[str, Any]]:
    snapshot, plan = work / "snap", work / "plan.json"
    crawl = _run(standin, "crawl", standin.source, "-o", str(snapshot))
    assert crawl.returncode == 0, crawl.stderr
    planned = regstat("plan-gc", str(snapshot), *plan_args, "-o", str(plan))
    assert planned.returncode == 0, planned.stderr
    return plan, json.loads(plan.read_text())


def _apply(standin: AcrStandin, plan: Path, *args: str, code: int = 0) -> dict[str, Any]:
    result = _run(standin, "apply-gc", str(plan), "--json", *args)
    assert result.returncode == code, f"apply-gc exited {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return dict(json.loads(result.stdout))


def _get(standin: AcrStandin, path: str) -> Any:
    secret = base64.b64encode(f"{standin.admin_username}:{standin.admin_password}".encode()).decode()
    request = urllib.request.Request(standin.url + path, headers={"Authorization": f"Basic {secret}"})
    with urllib.request.urlopen(request, timeout=60) as response:
        return json.loads(response.read())


def _state(standin: AcrStandin) -> State:
    """Every repository as ACR's API shows it now: its tags (tag -> digest) and its manifests."""
    state = {}
    for name in _get(standin, "/acr/v1/_catalog?n=1000")["repositories"]:
        quoted = name.replace("/", "%2F")
        tags = {t["name"]: t["digest"] for t in _get(standin, f"/acr/v1/{quoted}/_tags?n=1000")["tags"]}
        manifests = frozenset(m["digest"] for m in _get(standin, f"/acr/v1/{quoted}/_manifests?n=1000")["manifests"])
        state[name] = (tags, manifests)
    return state


def _expected(before: State, plan: dict[str, Any], kept: frozenset[int] = frozenset()) -> State:
    """`before` with the plan's actions done, but for the positions in `kept`; a manifest takes its tags."""
    after = {name: (dict(tags), set(manifests)) for name, (tags, manifests) in before.items()}
    for position, a in enumerate(plan["actions"]):
        if position in kept:
            continue
        tags, manifests = after[a["repository"]]
        if a["action"] == "delete_tag":
            tags.pop(a["tag"], None)
        else:
            manifests.discard(a["digest"])
            for tag in [t for t, d in tags.items() if d == a["digest"]]:
                del tags[tag]
    return {name: (tags, frozenset(manifests)) for name, (tags, manifests) in after.items()}


def _position(plan: dict[str, Any], **match: str) -> int:
    return next(i for i, a in enumerate(plan["actions"]) if all(a.get(k) == v for k, v in match.items()))


def _deletes(standin: AcrStandin) -> list[str]:
    """The DELETEs the stand-in carried out or refused (not those answered with a token challenge)."""
    return [path for method, path, status in standin.requests if method == "DELETE" and status != 401]


@pytest.fixture
def populated(acr_standin: AcrStandin) -> tuple[AcrStandin, Expected]:
    return acr_standin, populate(acr_standin.registry)


def test_crawl_plan_apply_deletes_the_plan_and_honours_locks_and_moved_tags(
    populated: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, expected = populated
    plan_path, plan = _crawl_and_plan(standin, tmp_path, *PLAN)
    kinds = [(a["action"], a["repository"]) for a in plan["actions"]]
    assert sorted(kinds) == sorted([("delete_tag", "base/alpine"), ("delete_tag", "apps/web"),
                                    ("delete_tag", "tools/cli"), ("delete_manifest", "apps/web")]
                                   + [("delete_manifest", "tools/cli")] * 3), kinds
    assert not any(a["action"] == "delete_blob" for a in plan["actions"])  # ACR frees blobs itself
    before = _state(standin)

    # Between plan and apply: a planned tag and a planned child of the list are locked, and a
    # new tag names the planned untagged manifest.
    web_old = expected.names["web_old"]
    child = next(a["digest"] for a in plan["actions"] if a["action"] == "delete_manifest"
                 and a["repository"] == "tools/cli" and a["digest"] != expected.names["cli_list"])
    standin.lock("base/alpine", tag="latest", delete=True)
    standin.lock("tools/cli", digest=child, write=True)
    body, media_type, _ = standin.registry.get_manifest("apps/web", web_old)
    standin.registry.put_manifest("apps/web", "moved", body, media_type)
    before["apps/web"][0]["moved"] = web_old
    kept = frozenset({_position(plan, action="delete_tag", repository="base/alpine"),
            _position(plan, action="delete_manifest", digest=child),
            _position(plan, action="delete_manifest", digest=web_old)})
    reasons = {_position(plan, action="delete_tag", repository="base/alpine"): "locked",
               _position(plan, action="delete_manifest", digest=child): "locked",
               _position(plan, action="delete_manifest", digest=web_old): "tagged"}

    dry = _apply(standin, plan_path)
    assert dry["counts"] == {"deleted": 0, "would_delete": len(plan["actions"]) - 3, "gone": 0, "skipped": 3,
                             "failed": 0}, dry
    assert {i["position"]: i["reason"] for i in dry["items"]} == reasons
    assert _deletes(standin) == [] and _state(standin) == before

    done = _apply(standin, plan_path, "--yes")
    assert done["counts"]["deleted"] == len(plan["actions"]) - 3 and done["counts"]["failed"] == 0, done
    assert {i["position"]: i["reason"] for i in done["items"]} == reasons
    after = _state(standin)
    assert after == _expected(before, plan, kept)
    deletes = _deletes(standin)
    assert sorted(p for p in deletes if "/_tags/" in p) == ["/acr/v1/apps%2Fweb/_tags/latest",
                                                             "/acr/v1/tools%2Fcli/_tags/v1-docker"]
    assert all("/manifests/sha256:" in p for p in deletes if "/_tags/" not in p)
    for name, (tags, _) in after.items():  # every kept tag still copies out whole
        for tag in tags:
            skopeo_copy_out(standin.registry, f"{name}:{tag}", tmp_path / "out" / name / tag, "dir")

    again = _apply(standin, plan_path, "--yes")
    assert again["counts"]["deleted"] == 0 and again["counts"]["failed"] == 0, again
    assert again["counts"]["gone"] == len(plan["actions"]) - 3
    assert _deletes(standin) == deletes and _state(standin) == after


def _target(standin: AcrStandin) -> AcrTarget:
    options = CrawlOptions(username=standin.admin_username, password=standin.admin_password, insecure=True)
    target = OPENERS["acr"](SourceInfo(kind="acr", location=standin.host), options)
    assert isinstance(target, AcrTarget)
    return target


def test_what_acr_answers_to_a_delete_decides_its_outcome(populated: tuple[AcrStandin, Expected]) -> None:
    standin, expected = populated
    target = _target(standin)
    alpine, web_old = expected.names["base"], expected.names["web_old"]
    tag, manifest = tag_action("base/alpine", "latest", alpine), manifest_action("apps/web", web_old)
    planned, live = PlannedSet().add([tag, manifest]), LiveTags().tag("base/alpine", "3.19", alpine)
    assert target.live_tag("base/alpine", "latest") == alpine and target.live_tag("base/alpine", "nope") is None
    assert target.refusal(tag, planned, live) is None and target.refusal(manifest, planned, live) is None

    # Locked after the last look: ACR answers the DELETE 405, which is a skip, never a failure.
    def locked_meanwhile(method: str, path: str) -> tuple[int, dict[str, str], bytes] | None:
        return error(405, "UNSUPPORTED", DISALLOWED) if method == "DELETE" and "_tags" in path else None

    standin.server.intercept = locked_meanwhile
    outcome, = target.delete([tag])
    assert (outcome.status, outcome.reason) == (SKIPPED, "locked")
    standin.server.intercept = lambda method, path: (
        error(403, "DENIED", "no delete for you") if method == "DELETE" else None)
    outcome, = target.delete([manifest])
    assert (outcome.status, outcome.reason) == (FAILED, "http_403") and "DENIED" in outcome.detail
    standin.server.intercept = None
    assert _state(standin)["base/alpine"][0] == {"3.19": alpine, "latest": alpine}

    # A locked repository holds everything in it; the lock is read live, never changed.
    standin.lock("apps/web", delete=True)
    refused = target.refusal(manifest, planned, live)
    assert refused is not None and (refused.status, refused.reason) == (SKIPPED, "locked")
    assert not any(m == "PATCH" for m, _, _ in standin.requests)
    standin.lock("apps/web")

    # A tag pushed onto the manifest after the fresh crawl: ACR says so right before the deletion.
    body, media_type, _ = standin.registry.get_manifest("apps/web", web_old)
    standin.registry.put_manifest("apps/web", "late", body, media_type)
    refused = target.refusal(manifest, planned, live)
    assert refused is not None and (refused.status, refused.reason) == (SKIPPED, "tagged") and "late" in refused.detail
    assert [o.status for o in target.delete([tag_action("apps/web", "late", web_old)])] == [DELETED]
    assert target.refusal(manifest, planned, live) is None

    assert [o.status for o in target.delete([tag, manifest])] == [DELETED, DELETED]
    assert [o.status for o in target.delete([tag, manifest])] == [GONE, GONE]
    assert target.refusal(manifest, planned, live).status == GONE  # type: ignore[union-attr]
    assert target.live_tag("base/alpine", "latest") is None


def test_a_referrer_goes_before_its_subject_and_filter_and_ago_plan_as_acr_purge(
    make_registry: Any, tmp_path: Path
) -> None:
    """acr purge's --filter and --ago select the old tags of apps/api (the image and its
    signature's fallback tag) and tools/cli:v1-docker; a fifth of requests faulted ends as a
    clean run does."""
    ends = []
    for share in (0.0, 0.2):
        with AcrStandin(make_registry("fs")) as standin:
            expected = populate(standin.registry)
            old = "2024-01-02T03:04:05"
            for repository, tag, _ in expected.tags:
                if (repository, tag) != ("tools/cli", "v1"):
                    standin.set_times(repository, tag=tag, updated=_when(old))
            for row in expected.manifests:
                standin.set_times(row.repository, digest=row.digest, created=_when(old), updated=_when(old))
            work = tmp_path / str(share)
            plan_path, plan = _crawl_and_plan(standin, work, "--filter", "apps/api:.*", "--filter", "tools/cli:.*",
                                              "--ago", "30d", "--untagged", "--grace", "0s")
            manifests = [a["digest"] for a in plan["actions"] if a["action"] == "delete_manifest"]
            signature, subject = expected.names["signature"], expected.names["api_v1"]
            assert manifests.index(signature) < manifests.index(subject)  # the referrer first
            assert expected.names["cli_index"] not in manifests and expected.names["cli_list"] in manifests
            before = _state(standin)
            standin.faults(share, seed=18)
            codes = []
            for _ in range(3):  # a deletion that failed every retry is tried again by a second run
                codes.append(_run(standin, "apply-gc", str(plan_path), "--yes").returncode)
                if codes[-1] == 0:
                    break
            assert codes[-1] == 0, codes
            standin.faults(0.0)
            ends.append(_state(standin))
            assert ends[-1] == _expected(before, plan)
            if share:
                assert any(s in (429, 503) for m, _, s in standin.requests if m == "DELETE"), "no DELETE faulted"
    assert ends[0] == ends[1]


def _when(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_killed_while_deleting_then_resumed_repeats_no_deletion(
    populated: tuple[AcrStandin, Expected], tmp_path: Path
) -> None:
    standin, _ = populated
    plan_path, plan = _crawl_and_plan(standin, tmp_path, *PLAN)
    before = _state(standin)
    hold = standin.hold("DELETE", r"/manifests/sha256:", nth=2)
    argv = [sys.executable, "-m", "regstat", "apply-gc", str(plan_path), "--yes", *_admin(standin)]
    with subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                          text=True, env=isolated_env(), cwd=REPO_ROOT) as child:
        assert child.stdin is not None
        child.stdin.write(standin.admin_password + "\n")
        child.stdin.close()
        try:
            assert hold.reached.wait(timeout=120), "the second manifest DELETE never came"
        finally:
            child.kill()
            child.wait(timeout=60)
    hold.release()  # the held DELETE reaches the registry: deleted, its outcome never journaled
    _settled(standin, r"/manifests/sha256:", 2)
    standin.server.intercept = None

    done = _apply(standin, plan_path, "--yes", "--resume")
    assert done["counts"]["failed"] == 0 and done["counts"]["skipped"] == 0, done
    deletes = _deletes(standin)
    assert sorted(deletes) == sorted(set(deletes)), ("a DELETE was repeated", deletes)
    assert len(deletes) == len(plan["actions"])
    assert _state(standin) == _expected(before, plan)


def _settled(standin: AcrStandin, pattern: str, count: int) -> None:
    """Wait until the stand-in has answered `count` DELETEs matching `pattern` (a safety net of 60 s)."""
    deadline = time.monotonic() + 60
    while standin.count("DELETE", pattern) < count:
        assert time.monotonic() < deadline, standin.requests
        time.sleep(0.05)


def test_a_plan_of_another_registry_is_refused(populated: tuple[AcrStandin, Expected], tmp_path: Path) -> None:
    standin, _ = populated
    plan_path, _ = _crawl_and_plan(standin, tmp_path, *PLAN)
    before = _state(standin)
    original = plan_path.read_text()
    doc = json.loads(original)
    doc["snapshot"]["source"]["location"] = "other.azurecr.io"
    plan_path.write_text(json.dumps(doc))
    refused = _run(standin, "apply-gc", str(plan_path), "--yes")
    assert refused.returncode == EXIT_REFUSED and "checksum" in refused.stderr, refused.stderr
    plan_path.write_text(original)
    named = _run(standin, "apply-gc", str(plan_path), "--yes", "--endpoint-url", "http://127.0.0.1:9")
    assert named.returncode == EXIT_REFUSED and "another registry" in named.stderr, named.stderr
    assert _deletes(standin) == [] and _state(standin) == before



def test_a_token_that_may_not_delete_fails_every_deletion_and_changes_nothing(
    populated: tuple[AcrStandin, Expected]
) -> None:
    standin, expected = populated
    standin.scoped_token("reader", "secret", ["base/alpine"], ("metadata_read", "pull"))
    options = CrawlOptions(username="reader", password="secret", insecure=True)
    target = OPENERS["acr"](SourceInfo(kind="acr", location=standin.host), options)
    alpine = expected.names["base"]
    tag = tag_action("base/alpine", "latest", alpine)
    assert target.refusal(tag, PlannedSet().add([tag]), LiveTags()) is None  # it may read
    outcome, = target.delete([tag])
    assert (outcome.status, outcome.reason) == (FAILED, "http_401"), outcome
    assert "secret" not in outcome.detail
    assert _state(standin)["base/alpine"][0] == {"3.19": alpine, "latest": alpine}
