"""apply-gc's registry API target (regstat/apply/registry_api.py) against Debian's
docker-registry 2.8, which deletes manifests by digest but no tag alone, behind the loopback
FaultProxy (to count DELETEs, to answer 403, and to stand in for a registry that deletes tags,
which no component installed here does)."""

from __future__ import annotations

import json
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from support import images
from support.api_components import FaultProxy, SeededFaults
from support.apply_runs import apply_gc, apply_json, regstat
from support.apply_targets import LiveTags, PlannedSet, manifest_action, tag_action
from support.components import Registry, isolated_env
from support.gc_hazards import REPO_ROOT, skopeo_copy_out
from support.scenario import filler, populate

from regstat.apply.registry_api import RegistryApiTarget
from regstat.apply.target import DELETED, FAILED, GONE, SKIPPED, WITH_MANIFEST
from regstat.apply.targets import OPENERS
from regstat.snapshot.info import SourceInfo
from regstat.sources.base import CrawlOptions

REPO = "apps/web"


@dataclass
class Pushed:
    registry: Registry
    proxy: FaultProxy
    one: str  # tagged a and b
    two: str  # tagged c

    def target(self) -> RegistryApiTarget:
        target = OPENERS["distribution-api"](SourceInfo(kind="distribution-api", location=self.proxy.url),
                                             CrawlOptions())
        assert isinstance(target, RegistryApiTarget)
        return target

    def deletes(self) -> list[str]:
        return [path for method, path, _ in self.proxy.log if method == "DELETE"]


def _image(name: str) -> images.Image:
    return images.build_image([images.make_layer({f"srv/{name}": filler(name, 300)})], labels={"name": name})


@pytest.fixture
def pushed(registry_fs: Registry) -> Iterator[Pushed]:
    one, two = _image("one"), _image("two")
    registry_fs.push_image(REPO, one, "a")
    registry_fs.put_manifest(REPO, "b", one.manifest, one.media_type)
    registry_fs.push_image(REPO, two, "c")
    with FaultProxy(registry_fs.url) as proxy:
        yield Pushed(registry_fs, proxy, one.digest, two.digest)


def test_live_tag_names_the_digest_the_tag_points_at_now(pushed: Pushed) -> None:
    target = pushed.target()
    assert target.live_tag(REPO, "a") == pushed.one
    assert target.live_tag(REPO, "c") == pushed.two
    assert target.live_tag(REPO, "nope") is None
    pushed.registry.put_manifest(REPO, "a", *_manifest_of(pushed, "c"))  # the tag moves
    assert target.live_tag(REPO, "a") == pushed.two


def _manifest_of(pushed: Pushed, tag: str) -> tuple[bytes, str]:
    body, media_type, _ = pushed.registry.get_manifest(REPO, tag)
    return body, media_type


def test_on_2_8_a_tag_goes_only_with_its_manifest_and_every_tag_naming_it(pushed: Pushed) -> None:
    target = pushed.target()
    live = LiveTags().tag(REPO, "a", pushed.one).tag(REPO, "b", pushed.one).tag(REPO, "c", pushed.two)
    a, b, c = tag_action(REPO, "a", pushed.one), tag_action(REPO, "b", pushed.one), tag_action(REPO, "c", pushed.two)
    manifest = manifest_action(REPO, pushed.one)

    alone = target.refusal(c, PlannedSet().add([c]), live)
    assert alone is not None and (alone.status, alone.reason) == (SKIPPED, "tag_delete_unsupported")
    assert "400 DIGEST_INVALID" in alone.detail
    # b stays: deleting the manifest by digest would take it, so a cannot go with it either
    partial = target.refusal(a, PlannedSet().add([a, manifest]), live)
    assert partial is not None and (partial.status, partial.reason) == (SKIPPED, "tag_delete_unsupported")
    whole = PlannedSet().add([a, b, manifest])
    assert [target.refusal(x, whole, live).status for x in (a, b)] == [WITH_MANIFEST, WITH_MANIFEST]  # type: ignore[union-attr]
    assert target.refusal(manifest, whole, live) is None
    # Support was asked once, with a DELETE of a tag that does not exist; nothing was deleted.
    assert len(pushed.deletes()) == 1 and "/manifests/regstat-probe-" in pushed.deletes()[0]
    assert pushed.registry.tags(REPO) == ["a", "b", "c"]

    assert [o.status for o in target.delete([manifest])] == [DELETED]
    assert pushed.registry.tags(REPO) == ["c"]
    assert target.live_tag(REPO, "a") is None and target.live_tag(REPO, "b") is None
    assert [o.status for o in target.delete([manifest])] == [GONE]  # applying again deletes nothing more


def test_a_manifest_a_kept_tag_names_is_never_deleted(pushed: Pushed) -> None:
    target = pushed.target()
    live = LiveTags().tag(REPO, "a", pushed.one).tag(REPO, "b", pushed.one)
    manifest = manifest_action(REPO, pushed.one)
    refused = target.refusal(manifest, PlannedSet().add([manifest, tag_action(REPO, "a", pushed.one)]), live)
    assert refused is not None and (refused.status, refused.reason) == (SKIPPED, "tagged")
    assert "b" in refused.detail


def test_a_signature_tag_of_the_tag_schema_keeps_its_subject(pushed: Pushed) -> None:
    signature = images.cosign_signature(_image("one"), REPO)
    sig_tag = pushed.one.replace(":", "-") + ".sig"
    pushed.registry.push_image(REPO, signature, sig_tag)
    target = pushed.target()
    live = LiveTags().tag(REPO, "c", pushed.two).tag(REPO, sig_tag, signature.digest)
    a, b = tag_action(REPO, "a", pushed.one), tag_action(REPO, "b", pushed.one)
    manifest = manifest_action(REPO, pushed.one)
    refused = target.refusal(manifest, PlannedSet().add([a, b, manifest]), live)
    assert refused is not None and (refused.status, refused.reason) == (SKIPPED, "referenced")
    assert sig_tag in refused.detail
    # When the plan deletes the signature's tag too, nothing holds the subject.
    with_signature = PlannedSet().add([a, b, manifest, tag_action(REPO, sig_tag, signature.digest)])
    assert pushed.target().refusal(manifest, with_signature, live) is None
    # A tag that merely starts like one names another digest: it does not count.
    other = pushed.two.replace(":", "-") + ".sig"
    pushed.registry.put_manifest(REPO, other, signature.manifest, signature.media_type)
    assert pushed.target().refusal(manifest, with_signature, live) is None


def test_a_refused_delete_is_failed_with_its_status(pushed: Pushed) -> None:
    target = pushed.target()
    pushed.proxy.canned[("DELETE", f"/v2/{REPO}/manifests/{pushed.two}")] = (
        403, {"Content-Type": "application/json"}, b'{"errors":[{"code":"DENIED","message":"no delete for you"}]}')
    outcome, = target.delete([manifest_action(REPO, pushed.two)])
    assert (outcome.status, outcome.reason) == (FAILED, "http_403")
    assert "DENIED" in outcome.detail
    assert pushed.registry.tags(REPO) == ["a", "b", "c"]


def test_no_right_to_delete_fails_a_tag_rather_than_calling_tags_undeletable(pushed: Pushed) -> None:
    def denied(method: str, path: str, headers: object) -> tuple[int, dict[str, str], bytes] | None:
        return (403, {}, b'{"errors":[{"code":"DENIED","message":"read only"}]}') if method == "DELETE" else None

    pushed.proxy.respond = denied
    c = tag_action(REPO, "c", pushed.two)
    outcome = pushed.target().refusal(c, PlannedSet().add([c]), LiveTags().tag(REPO, "c", pushed.two))
    assert outcome is not None and (outcome.status, outcome.reason) == (FAILED, "http_403")


def test_deletion_disabled_is_failed_as_such(pushed: Pushed) -> None:
    pushed.proxy.canned[("DELETE", f"/v2/{REPO}/manifests/{pushed.two}")] = (
        405, {"Content-Type": "application/json"}, b'{"errors":[{"code":"UNSUPPORTED","message":"unsupported"}]}')
    outcome, = pushed.target().delete([manifest_action(REPO, pushed.two)])
    assert (outcome.status, outcome.reason) == (FAILED, "delete_disabled")


def test_where_tags_can_be_deleted_a_tag_goes_alone_by_its_name(pushed: Pushed) -> None:
    """A registry of OCI distribution 1.1 deletes a tag alone: the proxy answers tag DELETEs as
    one would (404 for a tag that is not there, 202 and the tag gone otherwise)."""
    deleted_tags: list[str] = []

    def distribution_1_1(method: str, path: str, headers: object) -> tuple[int, dict[str, str], bytes] | None:
        prefix = f"/v2/{REPO}/manifests/"
        reference = path.removeprefix(prefix)
        if method != "DELETE" or not path.startswith(prefix) or reference.startswith("sha256:"):
            return None
        if reference not in pushed.registry.tags(REPO) or reference in deleted_tags:
            return 404, {}, b'{"errors":[{"code":"MANIFEST_UNKNOWN"}]}'
        deleted_tags.append(reference)
        return 202, {}, b""

    pushed.proxy.respond = distribution_1_1
    target = pushed.target()
    live = LiveTags().tag(REPO, "a", pushed.one).tag(REPO, "b", pushed.one)
    a = tag_action(REPO, "a", pushed.one)
    assert target.refusal(a, PlannedSet().add([a]), live) is None  # b and the manifest stay
    assert [o.status for o in target.delete([a])] == [DELETED]
    assert [o.status for o in target.delete([a])] == [GONE]
    assert deleted_tags == ["a"]
    assert all(not path.endswith(pushed.one) for path in pushed.deletes())  # never by digest


# --- end to end: crawl, plan-gc, apply-gc -------------------------------------------------------

# Tags of the standard scenario (support/scenario.py): `latest` names a manifest another tag
# (3.19, v2) keeps, so it would go alone, which 2.8 cannot do; `v1-docker` is the only tag of a
# manifest list, which goes with its two children.
DELETE_TAGS = "^(latest|v1-docker)$"


def _crawl_and_plan(
    source: str, work: Path, *args: str, delete_tags: str = DELETE_TAGS
) -> tuple[Path, dict[str, Any]]:
    snapshot, plan = work / "snap", work / "plan.json"
    for command in (["crawl", source, "-o", str(snapshot)],
                    ["plan-gc", str(snapshot), "--delete-tags", delete_tags, "--grace", "0s", "-o", str(plan), *args]):
        result = regstat(*command)
        assert result.returncode == 0, f"regstat {' '.join(command)}:\n{result.stderr}"
    return plan, json.loads(plan.read_text())


def _state(registry: Registry, plan: dict[str, Any]) -> tuple[dict[str, dict[str, str]], set[str]]:
    """Every repository's tags (tag -> digest), and which of the plan's manifests are still there."""
    tags = {repo: {tag: registry.get_manifest(repo, tag)[2] for tag in registry.tags(repo)}
            for repo in registry.catalog()}
    accept = {"Accept": ", ".join(images.ALL_MANIFEST_TYPES)}
    present = {a["digest"] for a in plan["actions"] if a["action"] == "delete_manifest"
               and registry.request("HEAD", f"/v2/{a['repository']}/manifests/{a['digest']}", headers=accept,
                                    expect=(200, 404))[0] == 200}
    return tags, present


def _expected(before: dict[str, dict[str, str]], plan: dict[str, Any]) -> dict[str, dict[str, str]]:
    """The tags once the plan is applied on 2.8: a tag goes only with its manifest."""
    gone = {(a["repository"], a["digest"]) for a in plan["actions"] if a["action"] == "delete_manifest"}
    return {repo: {t: d for t, d in tags.items() if (repo, d) not in gone} for repo, tags in before.items()}


def _copies_out(registry: Registry, tags: dict[str, dict[str, str]], work: Path) -> None:
    for repo, named in tags.items():
        for tag in named:
            skopeo_copy_out(registry, f"{repo}:{tag}", work / "out" / repo / tag, "dir")


def test_apply_gc_deletes_what_2_8_can_and_skips_the_rest(registry_fs: Registry, tmp_path: Path) -> None:
    populate(registry_fs)
    plan_path, plan = _crawl_and_plan(registry_fs.url, tmp_path)
    before, _ = _state(registry_fs, plan)
    manifests = [a for a in plan["actions"] if a["action"] == "delete_manifest"]
    alone = [a for a in plan["actions"] if a["action"] == "delete_tag"
             and (a["repository"], a["digest"]) not in {(m["repository"], m["digest"]) for m in manifests}]
    assert len(manifests) == 3 and len(alone) == 2, plan["actions"]

    dry = apply_json(plan_path)
    assert dry["counts"] == {"deleted": 0, "would_delete": len(plan["actions"]) - 2, "gone": 0, "skipped": 2,
                             "failed": 0}, dry
    assert _state(registry_fs, plan) == (before, {m["digest"] for m in manifests})

    done = apply_json(plan_path, "--yes")
    assert done["skipped_by_reason"] == {"tag_delete_unsupported": 2}, done
    assert done["counts"]["deleted"] == len(plan["actions"]) - 2
    after, present = _state(registry_fs, plan)
    assert present == set() and after == _expected(before, plan)
    _copies_out(registry_fs, after, tmp_path)

    again = apply_json(plan_path, "--yes")
    assert again["counts"]["deleted"] == 0 and again["counts"]["gone"] == len(plan["actions"]) - 2, again
    assert _state(registry_fs, plan) == (after, set())


def test_a_signature_tag_added_after_the_plan_keeps_its_subject(registry_fs: Registry, tmp_path: Path) -> None:
    populate(registry_fs)
    plan_path, plan = _crawl_and_plan(registry_fs.url, tmp_path)
    before, _ = _state(registry_fs, plan)
    listed = registry_fs.get_manifest("tools/cli", "v1-docker")[2]
    # cosign signs the manifest list: a `sha256-<hex>.sig` tag, since 2.8 has no referrers API
    signature = images.build_referrer(images.Descriptor(images.DOCKER_MANIFEST_LIST, listed, 1), b"signed late\n")
    registry_fs.push_image("tools/cli", signature, listed.replace(":", "-") + ".sig")

    done = apply_json(plan_path, "--yes")
    reasons = {(i["action"], i["digest"]): i["reason"] for i in done["items"]}
    assert reasons[("delete_manifest", listed)] == "referenced"
    assert reasons[("delete_tag", listed)] == "tag_delete_unsupported"  # it stays with its manifest
    children = [a["digest"] for a in plan["actions"] if a["action"] == "delete_manifest" and a["digest"] != listed]
    assert all(reasons[("delete_manifest", child)] == "referenced" for child in children)  # the list stays
    assert done["counts"]["deleted"] == 0 and done["counts"]["failed"] == 0
    after, present = _state(registry_fs, plan)
    assert present == {a["digest"] for a in plan["actions"] if a["action"] == "delete_manifest"}
    assert after["tools/cli"]["v1-docker"] == listed and after == {**before, "tools/cli": after["tools/cli"]}
    _copies_out(registry_fs, {"tools/cli": {"v1-docker": listed}}, tmp_path)


def test_a_fifth_of_requests_faulted_ends_as_a_clean_run(make_registry: Any, tmp_path: Path) -> None:
    ends = []
    for share in (0.0, 0.2):
        registry = make_registry("fs")
        populate(registry)
        with FaultProxy(registry.url) as proxy:
            work = tmp_path / str(share)
            # Every tag of base/alpine and tools/cli: their manifests go, children and all.
            plan_path, plan = _crawl_and_plan(proxy.url, work, "--repository", "base/alpine", "--repository",
                                              "tools/cli", delete_tags=".")
            proxy.fault = SeededFaults(seed=18, share=share)
            codes = []
            for _ in range(3):  # a deletion that failed every retry is tried again by a second run
                codes.append(apply_gc(plan_path, "--yes").returncode)
                if codes[-1] == 0:
                    break
            assert codes[-1] == 0, codes
            if share:
                assert {fault for fault, method, _ in proxy.faults if method == "DELETE"}, "no DELETE was faulted"
        ends.append(_state(registry, plan))
    assert ends[0] == ends[1]


class HoldNthDelete:
    """FaultProxy.fault holding the Nth DELETE of a manifest by digest until `release`; then it
    goes to the registry (deleted there, the outcome never journaled: in flight)."""

    def __init__(self, n: int) -> None:
        self.n = n
        self.seen = 0
        self.held = threading.Event()
        self.release = threading.Event()
        self._lock = threading.Lock()

    def __call__(self, method: str, path: str, count: int) -> None:
        if method != "DELETE" or "/manifests/sha256:" not in path:
            return None
        with self._lock:
            self.seen += 1
            hold = self.seen == self.n
        if hold:
            self.held.set()
            self.release.wait(timeout=120)
        return None


def test_killed_while_deleting_then_resumed_repeats_no_deletion(registry_fs: Registry, tmp_path: Path) -> None:
    populate(registry_fs)
    with FaultProxy(registry_fs.url) as proxy:
        plan_path, plan = _crawl_and_plan(proxy.url, tmp_path, "--repository", "tools/cli", delete_tags=".")
        manifests = [a for a in plan["actions"] if a["action"] == "delete_manifest"]
        assert len(manifests) == 6, plan["actions"]  # two indexes and their four children
        hold = proxy.fault = HoldNthDelete(3)
        child = subprocess.Popen([sys.executable, "-m", "regstat", "apply-gc", str(plan_path), "--yes"],
                                 env=isolated_env(), cwd=REPO_ROOT, stdout=subprocess.DEVNULL,
                                 stderr=subprocess.DEVNULL)
        try:
            assert hold.held.wait(timeout=120), "the third DELETE never came"
            child.kill()
            child.wait(timeout=60)
        finally:
            hold.release.set()
        proxy.fault = None
        done = apply_json(plan_path, "--yes", "--resume")
        assert done["counts"]["failed"] == 0, done
        deletes = [path for method, path, _ in proxy.log if method == "DELETE" and "/manifests/sha256:" in path]
    assert sorted(deletes) == sorted(set(deletes)), ("a DELETE was repeated", deletes, done)
    assert len(deletes) == len(manifests)
    assert _state(registry_fs, plan)[1] == set()
