"""apply-gc's ECR target (regstat/apply/ecr.py) against moto's ECR, through the ECR-like
proxy of support/ecr_proxy.py (ECR's limit of 100 image ids a call, throttling, and a count
of every call).

Each test has an AWS account of its own on moto (support/ecr_accounts.py). moto differs from
ECR where it does not matter here: images are always put with their digest (moto invents one
otherwise), and no test moves an image's only tag (moto deletes the image then; ECR does not).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from click.testing import CliRunner

from support import images
from support.apply_targets import LiveTags, PlannedSet, manifest_action, tag_action
from support.components import REGION
from support.ecr_accounts import Account, push_scenario
from support.ecr_proxy import EcrProxy
from support.scenario import filler

from regstat.apply.ecr import EcrTarget
from regstat.apply.target import DELETED, FAILED, GONE, SKIPPED, WITH_MANIFEST
from regstat.apply.targets import OPENERS
from regstat.cli import main
from regstat.snapshot.info import SourceInfo
from regstat.sources.base import CrawlOptions

pytestmark = pytest.mark.s3

REPO = "apps/web"


@pytest.fixture
def proxy(account: Account, monkeypatch: pytest.MonkeyPatch) -> Iterator[EcrProxy]:
    with EcrProxy(account.moto.endpoint_url) as server:
        monkeypatch.setenv("AWS_ENDPOINT_URL", server.endpoint_url)
        yield server


def _target() -> EcrTarget:
    target = OPENERS["ecr"](SourceInfo(kind="ecr", location=f"ecr://{REGION}"), CrawlOptions())
    assert isinstance(target, EcrTarget)
    return target


def _image(name: str) -> images.Image:
    return images.build_image([images.make_layer({f"srv/{name}": filler(name, 200)})], labels={"name": name})


def _tags(account: Account, repository: str) -> dict[str, list[str]]:
    details = account.client.describe_images(repositoryName=repository)["imageDetails"]
    return {d["imageDigest"]: sorted(d.get("imageTags") or []) for d in details}


def test_live_tag(account: Account, proxy: EcrProxy) -> None:
    one = account.push_image(REPO, _image("one"), "a")
    target = _target()
    assert target.live_tag(REPO, "a") == one
    assert target.live_tag(REPO, "nope") is None
    assert target.live_tag("no/such-repository", "a") is None


def test_a_tag_goes_alone_only_while_another_stays_on_its_image(account: Account, proxy: EcrProxy) -> None:
    one = account.push_image(REPO, _image("one"), "a")
    account.push_image(REPO, _image("one"), "b")
    two = account.push_image(REPO, _image("two"), "c")
    live = LiveTags().tag(REPO, "a", one).tag(REPO, "b", one).tag(REPO, "c", two)
    a, b, c = tag_action(REPO, "a", one), tag_action(REPO, "b", one), tag_action(REPO, "c", two)
    target = _target()

    last = target.refusal(c, PlannedSet().add([c]), live)
    assert last is not None and (last.status, last.reason) == (SKIPPED, "would_delete_image")
    both = target.refusal(a, PlannedSet().add([a, b]), live)  # the manifest stays: so must one tag
    assert both is not None and (both.status, both.reason) == (SKIPPED, "would_delete_image")

    assert target.refusal(a, PlannedSet().add([a]), live) is None
    assert [o.status for o in target.delete([a])] == [DELETED]
    assert _tags(account, REPO) == {one: ["b"], two: ["c"]}
    # Checked again right before the call: b is now the image's last tag.
    skipped, = target.delete([b])
    assert (skipped.status, skipped.reason) == (SKIPPED, "would_delete_image")
    assert _tags(account, REPO) == {one: ["b"], two: ["c"]}


def test_tags_go_with_their_manifest_when_the_plan_deletes_it(account: Account, proxy: EcrProxy) -> None:
    one = account.push_image(REPO, _image("one"), "a")
    account.push_image(REPO, _image("one"), "b")
    two = account.push_image(REPO, _image("two"), "c")
    live = LiveTags().tag(REPO, "a", one).tag(REPO, "b", one).tag(REPO, "c", two)
    a, b, manifest = tag_action(REPO, "a", one), tag_action(REPO, "b", one), manifest_action(REPO, one)
    planned = PlannedSet().add([a, b, manifest])
    target = _target()
    assert [target.refusal(x, planned, live).status for x in (a, b)] == [WITH_MANIFEST] * 2  # type: ignore[union-attr]
    assert target.refusal(manifest, planned, live) is None
    assert [o.status for o in target.delete([manifest])] == [DELETED]
    assert _tags(account, REPO) == {two: ["c"]}
    assert [o.status for o in target.delete([manifest])] == [GONE]


def test_a_manifest_a_kept_tag_names_stays(account: Account, proxy: EcrProxy) -> None:
    one = account.push_image(REPO, _image("one"), "a")
    live = LiveTags().tag(REPO, "a", one)
    manifest = manifest_action(REPO, one)
    refused = _target().refusal(manifest, PlannedSet().add([manifest]), live)
    assert refused is not None and (refused.status, refused.reason) == (SKIPPED, "tagged")


def test_a_tag_pushed_after_the_check_keeps_the_image(account: Account, proxy: EcrProxy) -> None:
    one = account.push_image(REPO, _image("one"))
    manifest = manifest_action(REPO, one)
    target = _target()
    assert target.refusal(manifest, PlannedSet().add([manifest]), LiveTags()) is None
    account.push_image(REPO, _image("one"), "late")
    outcome, = target.delete([manifest])
    assert (outcome.status, outcome.reason) == (SKIPPED, "tagged")
    assert "late" in outcome.detail
    assert _tags(account, REPO) == {one: ["late"]}


def test_deletions_go_in_calls_of_100_and_a_rerun_finds_them_gone(account: Account, proxy: EcrProxy) -> None:
    digests = [account.push_image(REPO, _image(f"n{i}")) for i in range(250)]
    kept = account.push_image(REPO, _image("kept"), "kept")
    actions = [manifest_action(REPO, digest) for digest in digests]
    planned = PlannedSet().add(actions)
    target = _target()
    assert all(target.refusal(a, planned, LiveTags()) is None for a in actions)
    outcomes = target.delete(actions)
    assert [o.status for o in outcomes] == [DELETED] * 250, outcomes[0]
    assert [len(r["imageIds"]) for r in proxy.operations("BatchDeleteImage")] == [100, 100, 50]
    assert _tags(account, REPO) == {kept: ["kept"]}
    calls = len(proxy.calls)
    assert [o.status for o in target.delete(actions)] == [GONE] * 250
    assert len(proxy.operations("BatchDeleteImage")) == 3  # nothing was there to delete
    assert len(proxy.calls) - calls < 3 * 20  # halving the lookups, not one call per image


def test_a_call_ecr_keeps_refusing_fails_its_actions(
    account: Account, proxy: EcrProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    one = account.push_image(REPO, _image("one"))
    monkeypatch.setenv("AWS_MAX_ATTEMPTS", "2")  # keeps the test fast
    manifest = manifest_action(REPO, one)
    target = _target()
    proxy.throttle_if = lambda operation, request: operation == "BatchDeleteImage"
    outcome, = target.delete([manifest])
    assert (outcome.status, outcome.reason) == (FAILED, "throttling")
    assert "Rate exceeded" in outcome.detail
    assert one in _tags(account, REPO)


# --- end to end: crawl, plan-gc, apply-gc -------------------------------------------------------


def _regstat(*args: str, code: int = 0) -> str:
    """regstat in this process: the account's credentials are in its environment."""
    result = CliRunner().invoke(main, list(args))
    if result.exception and not isinstance(result.exception, SystemExit):
        raise result.exception
    assert result.exit_code == code, f"regstat {' '.join(args)} exited {result.exit_code}:\n{result.output}"
    return result.stdout


def _images(account: Account) -> dict[str, dict[str, list[str]]]:
    """Every repository's images: digest -> tags."""
    return {repo: _tags(account, repo) for repo in sorted(account.repositories)}


def test_apply_gc_on_ecr(account: Account, proxy: EcrProxy, tmp_path: Path) -> None:
    """The standard scenario as ECR holds it (support/ecr_accounts.py): `latest` goes alone
    where another tag stays on its image; `v1-docker`, a manifest list's only tag, goes with it
    and its two children; apps/web's untagged old image goes (--untagged)."""
    push_scenario(account)
    snapshot, plan_path = tmp_path / "snap", tmp_path / "plan.json"
    _regstat("crawl", f"ecr://{REGION}", "-o", str(snapshot))
    _regstat("plan-gc", str(snapshot), "--delete-tags", "^(latest|v1-docker)$", "--untagged", "--grace", "0s",
             "-o", str(plan_path))
    plan = json.loads(plan_path.read_text())
    before = _images(account)
    manifests = {(a["repository"], a["digest"]) for a in plan["actions"] if a["action"] == "delete_manifest"}
    tags = {(a["repository"], a["tag"]) for a in plan["actions"] if a["action"] == "delete_tag"}
    assert len(manifests) == 4 and len(tags) == 3, plan["actions"]

    dry = json.loads(_regstat("apply-gc", str(plan_path), "--json"))
    assert dry["counts"]["would_delete"] == len(plan["actions"]) and not dry["items"], dry
    assert _images(account) == before

    done = json.loads(_regstat("apply-gc", str(plan_path), "--yes", "--json"))
    assert done["counts"]["deleted"] == len(plan["actions"]) and not done["items"], done
    expected = {repo: {digest: [t for t in named if (repo, t) not in tags] for digest, named in images_.items()
                       if (repo, digest) not in manifests} for repo, images_ in before.items()}
    assert _images(account) == expected
    deleted_by = [r["imageIds"] for r in proxy.operations("BatchDeleteImage")]
    assert all(len(ids) <= 100 for ids in deleted_by)

    again = json.loads(_regstat("apply-gc", str(plan_path), "--yes", "--json"))
    assert again["counts"]["deleted"] == 0 and again["counts"]["gone"] == len(plan["actions"]), again
    assert len(proxy.operations("BatchDeleteImage")) == len(deleted_by)  # nothing was sent
    assert _images(account) == expected


def test_a_tag_kept_by_the_plan_keeps_its_image_with_the_last_deleted_tag(
    account: Account, proxy: EcrProxy, tmp_path: Path
) -> None:
    """The plan deletes `old` but keeps its manifest (another tag, `pinned`, is protected and
    then removed between plan and apply): ECR would delete the image with `old`, so it stays."""
    one = account.push_image(REPO, _image("one"), "old")
    account.push_image(REPO, _image("one"), "pinned")
    snapshot, plan_path = tmp_path / "snap", tmp_path / "plan.json"
    _regstat("crawl", f"ecr://{REGION}", "-o", str(snapshot))
    _regstat("plan-gc", str(snapshot), "--delete-tags", "^old$", "--grace", "0s", "-o", str(plan_path))
    account.client.batch_delete_image(repositoryName=REPO, imageIds=[{"imageTag": "pinned"}])
    done = json.loads(_regstat("apply-gc", str(plan_path), "--yes", "--json"))
    assert [(i["tag"], i["status"], i["reason"]) for i in done["items"]] == [("old", SKIPPED, "would_delete_image")]
    assert _tags(account, REPO) == {one: ["old"]}
