"""The contracts between stages as types (issue 16): snapshot.json is written from and read into
SnapshotInfo / SourceInfo / Capabilities, sources hand the crawl those types, parsing fails
closed, and optional storage abilities are named Protocols, not attribute probes."""

from __future__ import annotations

import ast
import json
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

import pyarrow.parquet as pq
import pytest

from regstat.crawl import CrawlOptions, crawl
from regstat.cli.edge import outcome
from regstat.errors import EXIT_USAGE, CrawlError, SnapshotError
from regstat.plan.plan import ACTIONS_SCHEMA, Plan, PlanFileError
from regstat.plan.planner import plan_gc
from regstat.plan.policy import from_flags
from regstat.snapshot import Capabilities, Snapshot, SnapshotInfo, SourceInfo
from regstat.sources import ecr, oci_layout
from regstat.sources.registry_api import source as distribution_api
from regstat.sources.storage_tree import FilesystemStorage, jobs as storage_jobs
from regstat.sources.storage_tree.storage import PagedStorage

TREE = Path(__file__).resolve().parent / "scenario_tree"
SOURCES = Path(__file__).resolve().parent.parent / "regstat" / "sources"


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("contracts") / "snap"
    assert crawl(str(TREE), str(out), CrawlOptions(concurrency=2)).complete
    return out


def rewrite(snapshot: Path, tmp_path: Path, **changes: object) -> Path:
    """A copy of `snapshot` (its snapshot.json changed by `changes`; None removes a key)."""
    copy = tmp_path / "copy"
    copy.mkdir()
    for table in snapshot.iterdir():
        if table.is_dir():
            (copy / table.name).symlink_to(table, target_is_directory=True)
    doc = json.loads((snapshot / "snapshot.json").read_text())
    for key, value in changes.items():
        if value is None:
            doc.pop(key, None)
        else:
            doc[key] = value
    (copy / "snapshot.json").write_text(json.dumps(doc))
    return copy


def test_snapshot_json_is_what_the_types_write_and_read(crawled: Path) -> None:
    doc = json.loads((crawled / "snapshot.json").read_text())
    info = Snapshot.open(crawled).info
    assert info.to_json() == doc  # every key read, and written back the same
    assert list(info.to_json()) == list(doc)  # in the same order
    assert SnapshotInfo.from_json(doc) == info
    assert info.source == SourceInfo(kind="storage-layout", driver="filesystem", location=str(TREE))
    assert info.source.local_directory == TREE
    assert info.capabilities == storage_jobs.CAPABILITIES  # a whole crawl: unreferenced blobs seen
    assert info.complete and not info.partial and info.errors == ()
    assert info.counts["manifests"] > 0 and info.finished_at is not None and info.finished_at.tzinfo is not None
    assert info.finished_at >= info.started_at  # type: ignore[operator]


def test_absent_keys_read_as_lacking_fail_closed(crawled: Path, tmp_path: Path) -> None:
    """A snapshot.json without capabilities (hand-made, or damaged) sees nothing: every
    figure needing a capability is unknown, and plan-gc deletes no blob."""
    copy = rewrite(crawled, tmp_path, capabilities=None, source=None, counts=None, errors=None, complete=None)
    info = Snapshot.open(copy).info
    assert info.capabilities == Capabilities() and not info.capabilities.unreferenced_blobs
    assert not info.capabilities.untagged_manifests and info.capabilities.pull_times is None
    assert info.source.kind == "unknown" and info.source.local_directory is None
    assert info.counts == {} and info.errors == () and info.complete is False


@pytest.mark.parametrize("changes, key", [
    ({"complete": "yes"}, "complete"),
    ({"capabilities": {"unreferenced_blobs": "true"}}, "capabilities.unreferenced_blobs"),
    ({"counts": {"manifests": True}}, "counts.manifests"),
    ({"errors": ["a read error"]}, "an error"),
    ({"incomplete_repositories": [1]}, "incomplete_repositories"),
    ({"started_at": "yesterday"}, "started_at"),
    ({"source": {"kind": "oci-layout", "location": 7}}, "source.location"),
])
def test_a_key_of_the_wrong_type_is_refused(crawled: Path, tmp_path: Path, changes: dict, key: str) -> None:
    with pytest.raises(SnapshotError, match=rf"copy: snapshot\.json: {key}"):
        Snapshot.open(rewrite(crawled, tmp_path, **changes))


def test_errors_are_crawl_errors(crawled: Path, tmp_path: Path) -> None:
    error = CrawlError("apps/web", "repositories/apps/web/_layers", "read_error", "cannot list")
    copy = rewrite(crawled, tmp_path, errors=[error.to_json()], incomplete_repositories=["apps/x"], complete=False)
    info = Snapshot.open(copy).info
    assert info.errors == (error,)
    assert info.errored_repositories == {"apps/web", "apps/x"}


def test_sources_describe_themselves_and_their_capabilities_as_types() -> None:
    for capabilities in (storage_jobs.CAPABILITIES, oci_layout.CAPABILITIES, distribution_api.CAPABILITIES,
                         ecr.CAPABILITIES):
        assert isinstance(capabilities, Capabilities)
        assert Capabilities.from_json(capabilities.to_json()) == capabilities
    source = storage_jobs.StorageLayoutSource(FilesystemStorage(str(TREE)), CrawlOptions())
    assert source.describe() == SourceInfo(kind="storage-layout", driver="filesystem", location=str(TREE))
    assert source.capabilities(False) == storage_jobs.CAPABILITIES
    # --repository: the blobs no crawled repository references may be another's
    assert source.capabilities(True) == replace(storage_jobs.CAPABILITIES, unreferenced_blobs=False)


def test_source_info_json_keeps_each_kinds_keys() -> None:
    """As docs/snapshot.md lists them; `--resume` compares them with the interrupted crawl's."""
    assert SourceInfo(kind="ecr", location="ecr://eu-west-1").to_json() == {
        "kind": "ecr", "location": "ecr://eu-west-1", "registry_id": None}
    s3 = SourceInfo(kind="storage-layout", driver="s3", location="s3://b/p", endpoint_url="http://127.0.0.1:1")
    assert s3.to_json() == {"kind": "storage-layout", "driver": "s3", "location": "s3://b/p",
                            "endpoint_url": "http://127.0.0.1:1"}
    assert s3.local_directory is None
    oci = SourceInfo(kind="oci-layout", location="/l", repository="web")
    assert oci.to_json() == {"kind": "oci-layout", "location": "/l", "repository": "web"}
    for info in (s3, oci):
        assert SourceInfo.from_json(info.to_json()) == info


def test_a_paged_storage_is_a_named_protocol_not_a_probe() -> None:
    """Jobs choose S3's paged listing by the PagedStorage Protocol; no source module probes an
    object for an attribute with hasattr."""
    assert not isinstance(FilesystemStorage(str(TREE)), PagedStorage)
    probes = [
        f"{path.relative_to(SOURCES.parent.parent)}:{node.lineno}"
        for path in SOURCES.rglob("*.py")
        for node in ast.walk(ast.parse(path.read_text()))
        if isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id == "hasattr"
    ]
    assert probes == []


# --- plans ---------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def made(crawled: Path) -> Iterator[Plan]:
    with plan_gc(Snapshot.open(crawled), from_flags(untagged=True, older_than="0s", grace="0s")) as plan:
        yield plan


def test_a_plan_loads_back_as_it_was_made(made: Plan, tmp_path: Path) -> None:
    assert made.count > 3  # deletes tags, manifests and blobs of the scenario
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(made.to_json()))
    with Plan.load(path) as loaded:
        assert loaded.to_json() == made.to_json()
        assert loaded.snapshot_id == made.snapshot["id"]
        assert pq.read_schema(loaded.actions_file) == pq.read_schema(made.actions_file) == ACTIONS_SCHEMA
        digest = next(a["digest"] for a in made.actions if a["action"] == "delete_manifest")
        assert loaded.actions_on({digest}) == made.actions_on({digest}) != []
        assert [a["position"] for a in loaded.actions_on({digest})] == [
            i for i, a in enumerate(made.actions) if a.get("digest") == digest]


@pytest.mark.parametrize("text, says", [
    ("[1, 2]", "not a regstat plan"),
    ('{"format": "regstat.plan/2"}', "not a regstat plan"),
    ("{", "not a plan"),
    ('{"format": "regstat.plan/1", "snapshot": {"id": "x"}, "policy": {}, "summary": {}, "notes": []}',
     "actions missing or wrong"),
])
def test_load_refuses_what_is_not_a_plan(tmp_path: Path, text: str, says: str) -> None:
    path = tmp_path / "plan.json"
    path.write_text(text)
    with pytest.raises(PlanFileError, match=says) as refused:
        Plan.load(path)
    assert outcome(refused.value) == ("usage", EXIT_USAGE)


@pytest.mark.parametrize("damage", [
    lambda a: a.update(action="delete_everything"),
    lambda a: a.pop("reason"),
    lambda a: a.update(size="large"),
    lambda a: a.update(reason=None),
])
def test_load_refuses_damaged_actions(made: Plan, tmp_path: Path, damage: Callable[[dict], object]) -> None:
    doc = made.to_json()
    damage(doc["actions"][1])
    path = tmp_path / "plan.json"
    path.write_text(json.dumps(doc))
    with pytest.raises(PlanFileError, match="damaged regstat plan"):
        Plan.load(path)
