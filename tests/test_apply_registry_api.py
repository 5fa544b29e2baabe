"""apply-gc's registry API target (regstat/apply/registry_api.py) against Debian's
docker-registry 2.8, which deletes manifests by digest but no tag alone, behind the loopback
FaultProxy (to count DELETEs, to answer 403, and to stand in for a registry that deletes tags,
which no component installed here does)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from support import images
from support.api_components import FaultProxy
from support.apply_targets import LiveTags, PlannedSet, manifest_action, tag_action
from support.components import Registry
from support.scenario import filler

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
    assert partial is not None and partial.reason == "tag_delete_unsupported"
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
