"""Tags that move and manifests deleted while a storage crawl runs (issue 7).

Each test changes the tree at one deterministic moment of a crawl: on disk, just before the
crawl reads a given file (a hook on `FilesystemStorage._read`, which the forked crawl workers
inherit); on S3, just before the proxy in front of moto forwards a given request. Whatever the
moment, the snapshot must either capture each repository consistently (its tags and manifests
as they were before the change, or as they are after it) or record the repository as
incomplete: never a complete repository in which a kept image looks orphaned.
"""

from __future__ import annotations

import itertools
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from support.components import MotoServer
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK
from regstat.model import digest_of
from regstat.sources.storage_tree.storage import FilesystemStorage
from support.s3_fault_proxy import S3FaultProxy, S3Request

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
PREFIX = "reg"
LAYOUT = "docker/registry/v2"
WEB = "repositories/apps/web/_manifests"
TAGGED = "sha256:365166335bd3783309061b03b356516b04f8f0a50619b294f86478daa387e3f4"  # apps/web latest, v2
UNTAGGED = "sha256:659c1b4783e6e73aad304d61a0859b9500f0a6aef4e553fcce667d9f79acc638"  # apps/web
_buckets = itertools.count()


class Tree(Protocol):
    """A storage tree the tests change; paths are relative to docker/registry/v2."""

    def read(self, path: str) -> bytes: ...

    def write(self, path: str, data: bytes) -> None: ...

    def remove(self, directory: str) -> None: ...


class DiskTree:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.v2 = root / LAYOUT

    def read(self, path: str) -> bytes:
        return (self.v2 / path).read_bytes()

    def write(self, path: str, data: bytes) -> None:
        (self.v2 / path).parent.mkdir(parents=True, exist_ok=True)
        (self.v2 / path).write_bytes(data)

    def remove(self, directory: str) -> None:
        shutil.rmtree(self.v2 / directory)


class BucketTree:
    def __init__(self, client: object, bucket: str) -> None:
        self.s3, self.bucket = client, bucket

    def key(self, path: str) -> str:
        return f"{PREFIX}/{LAYOUT}/{path}"

    def read(self, path: str) -> bytes:
        return self.s3.get_object(Bucket=self.bucket, Key=self.key(path))["Body"].read()  # type: ignore[attr-defined]

    def write(self, path: str, data: bytes) -> None:
        self.s3.put_object(Bucket=self.bucket, Key=self.key(path), Body=data)  # type: ignore[attr-defined]

    def remove(self, directory: str) -> None:
        listed = self.s3.list_objects_v2(Bucket=self.bucket, Prefix=self.key(directory) + "/")  # type: ignore[attr-defined]
        for obj in listed.get("Contents", []):
            self.s3.delete_object(Bucket=self.bucket, Key=obj["Key"])  # type: ignore[attr-defined]


# --- what the registry does, in its own order -------------------------------------------------


def blob_path(digest: str) -> str:
    hex_ = digest.split(":")[1]
    return f"blobs/sha256/{hex_[:2]}/{hex_}/data"


def revision_dir(digest: str) -> str:
    return f"{WEB}/revisions/sha256/{digest.split(':')[1]}"


def tag_link(tag: str) -> str:
    return f"{WEB}/tags/{tag}/current/link"


def push_and_tag(tree: Tree) -> str:
    """Push a new image to apps/web (blob, then revision link) and move `latest` to it."""
    document = json.loads(tree.read(blob_path(TAGGED)))
    document["annotations"] = {**document.get("annotations", {}), "moved": "yes"}
    body = json.dumps(document).encode()
    digest = digest_of(body)
    tree.write(blob_path(digest), body)
    tree.write(f"{revision_dir(digest)}/link", digest.encode())
    tree.write(tag_link("latest"), digest.encode())
    return digest


def retag(tree: Tree) -> None:
    """Move `latest` to the manifest apps/web already holds untagged."""
    tree.write(tag_link("latest"), UNTAGGED.encode())


def delete_tagged(tree: Tree) -> None:
    """DELETE /v2/apps/web/manifests/<digest>: the revision link and every tag naming it."""
    tree.remove(revision_dir(TAGGED))
    tree.remove(f"{WEB}/tags/latest")
    tree.remove(f"{WEB}/tags/v2")


def collect_untagged(tree: Tree) -> None:
    """garbage-collect --delete-untagged: the untagged manifest's revision link and blob."""
    tree.remove(revision_dir(UNTAGGED))
    tree.remove(blob_path(UNTAGGED).rsplit("/", 1)[0])


@dataclass(frozen=True)
class Case:
    name: str
    trigger: str  # the file whose first read (disk) or GET (S3) the change happens before
    change: Callable[[Tree], object]
    args: tuple[str, ...] = ()  # crawl options the trigger needs to be read


CASES = [
    Case("new push, tag moved before the tag is read", tag_link("latest"), push_and_tag),
    Case("tag moved to a held manifest before it is read", tag_link("latest"), retag),
    Case("manifest deleted before its tags are read", tag_link("latest"), delete_tagged),
    Case(  # revision links are read only with --verify-links (else checked by their size)
        "manifest deleted before its revision link is read",
        f"{revision_dir(TAGGED)}/link",
        delete_tagged,
        ("--verify-links",),
    ),
    Case("untagged manifest collected before its blob is read", blob_path(UNTAGGED), collect_untagged),
]


# --- the check --------------------------------------------------------------------------------


def crawl(source: str, out: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["crawl", source, "--output", str(out), *args])
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr
    return result.exit_code, json.loads((out / "snapshot.json").read_text())


def query(out: Path, sql: str) -> list[dict]:
    # In a child process: DuckDB and Arrow leave threads behind, and disk crawls fork from here.
    args = [sys.executable, "-m", "regstat", "sql", str(out), sql, "--format", "json"]
    result = subprocess.run(args, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def state(out: Path) -> dict[str, tuple[frozenset, frozenset]]:
    """Per repository: its tags (tag, digest) and the manifests it holds, without times."""
    found: dict[str, tuple[set, set]] = {}
    for row in pq.read_table(out / "repositories").to_pylist():
        found[row["repository"]] = (set(), set())
    for row in digest_ids.read(out, "tags").to_pylist():
        found[row["repository"]][0].add((row["tag"], row["digest"]))
    for row in digest_ids.read(out, "manifests").to_pylist():
        found[row["repository"]][1].add(row["digest"])
    return {name: (frozenset(tags), frozenset(manifests)) for name, (tags, manifests) in found.items()}


def assert_consistent_or_recorded(snap: Path, meta: dict, before: Path, after: Path) -> None:
    incomplete = set(meta["incomplete_repositories"])
    assert meta["complete"] == (not meta["errors"])
    assert (EXIT_OK if meta["complete"] else EXIT_INCOMPLETE) in (EXIT_OK, EXIT_INCOMPLETE)
    got, old, new = state(snap), state(before), state(after)
    for name, captured in got.items():
        if name not in incomplete:
            assert captured in (old.get(name), new.get(name)), f"{name}: a mix of before and after"
    # Nothing a complete repository shows as orphaned is kept now (reached from a live tag).
    kept = {(r["repository"], r["digest"]) for r in query(after, "SELECT repository, digest FROM reachable")}
    looks_deletable = {
        (r["repository"], r["digest"]) for r in query(snap, "SELECT repository, digest FROM orphaned_manifests")
    }
    assert not {(repo, d) for repo, d in looks_deletable & kept if repo not in incomplete}


# --- on disk -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def disk_before(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("before") / "snap"
    code, _ = crawl(str(SAMPLE), out)
    assert code == EXIT_OK
    return out


def hook_reads(monkeypatch: pytest.MonkeyPatch, path: str, action: Callable[[], object], marker: Path) -> None:
    """Run `action` once, just before the crawl first reads `path` (in whichever worker)."""
    original = FilesystemStorage._read

    def hooked(self: FilesystemStorage, wanted: str, limit: int) -> bytes:
        if wanted == path and not marker.exists():
            marker.touch()
            action()
        return original(self, wanted, limit)

    monkeypatch.setattr(FilesystemStorage, "_read", hooked)


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.name)
def test_disk_tree_changed_mid_crawl(
    case: Case, disk_before: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "docker", root / "docker")
    tree = DiskTree(root)
    fired = tmp_path / "fired"
    hook_reads(monkeypatch, case.trigger, lambda: case.change(tree), fired)
    code, meta = crawl(str(root), tmp_path / "snap", *case.args)
    assert fired.exists(), "the change never happened: the crawl did not read the trigger"
    monkeypatch.undo()
    after_code, _ = crawl(str(root), tmp_path / "after")
    assert after_code == EXIT_OK
    assert_consistent_or_recorded(tmp_path / "snap", meta, disk_before, tmp_path / "after")


def test_disk_tag_moved_to_a_new_push_is_recorded(
    disk_before: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The listing saw the old revisions, the tag names a manifest pushed since: apps/web is
    # incomplete (its old image now looks untagged), and the other repositories are exact.
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "docker", root / "docker")
    hook_reads(monkeypatch, tag_link("latest"), lambda: push_and_tag(DiskTree(root)), tmp_path / "fired")
    code, meta = crawl(str(root), tmp_path / "snap")
    assert code == EXIT_INCOMPLETE and meta["incomplete_repositories"] == ["apps/web"]
    assert {e["kind"] for e in meta["errors"]} == {"dangling_tag"}
    got, old = state(tmp_path / "snap"), state(disk_before)
    assert {n: s for n, s in got.items() if n != "apps/web"} == {n: s for n, s in old.items() if n != "apps/web"}


# --- on S3, through the proxy ------------------------------------------------------------------


def fill(moto: MotoServer) -> tuple[object, str]:
    name = f"moving-{next(_buckets)}"
    return moto.upload_tree(name, SAMPLE, PREFIX), name


def once(condition: Callable[[S3Request], bool], action: Callable[[], object]) -> Callable[[S3Request], None]:
    fired: list[bool] = []

    def before(request: S3Request) -> None:
        if not fired and condition(request):
            fired.append(True)
            action()

    before.fired = fired  # type: ignore[attr-defined]
    return before


def crawl_s3_changing(moto: MotoServer, tmp_path: Path, condition: Callable[[S3Request], bool],
                      change: Callable[[Tree], object], page_size: int = 2,
                      args: tuple[str, ...] = ()) -> tuple[dict, Path]:
    """Crawl a fresh sample bucket through the proxy, changing it once `condition` holds;
    return the snapshot's metadata and a clean crawl of the bucket as it is afterwards."""
    s3, bucket = fill(moto)
    source = f"s3://{bucket}/{PREFIX}"
    with S3FaultProxy(moto.endpoint_url, page_size=page_size) as proxy:
        proxy.before = once(condition, lambda: change(BucketTree(s3, bucket)))
        _, meta = crawl(source, tmp_path / "snap", "--endpoint-url", proxy.endpoint_url, *args)
        assert proxy.before.fired, "the change never happened"  # type: ignore[attr-defined]
    code, _ = crawl(source, tmp_path / "after", "--endpoint-url", moto.endpoint_url)
    assert code == EXIT_OK
    return meta, tmp_path / "after"


# The S3 read path differs from the disk's (threads, GETs, NoSuchKey): the cases that change
# what a read finds.
S3_CASES = [CASES[0], CASES[3], CASES[4]]


@pytest.mark.s3
@pytest.mark.parametrize("case", S3_CASES, ids=lambda c: c.name)
def test_s3_tree_changed_mid_crawl(case: Case, moto_server: MotoServer, disk_before: Path, tmp_path: Path) -> None:
    target = f"{PREFIX}/{LAYOUT}/{case.trigger}"
    meta, after = crawl_s3_changing(
        moto_server, tmp_path, lambda r: r.method == "GET" and r.key == target, case.change, args=case.args
    )
    # scenario_tree on S3 crawls to the same tags and manifests as on disk: disk_before serves.
    assert_consistent_or_recorded(tmp_path / "snap", meta, disk_before, after)


def first_tag_page() -> int:
    """With one key a page, the page of the listing of `repositories/apps/` that holds
    apps/web's first tag key: every revision of apps/web is listed before it."""
    base = SAMPLE / LAYOUT / "repositories" / "apps"
    keys = sorted(p.relative_to(base).as_posix() for p in base.rglob("*") if p.is_file())
    return next(i for i, k in enumerate(keys) if k.startswith("web/_manifests/tags/"))


@pytest.mark.s3
@pytest.mark.parametrize("change", [delete_tagged, push_and_tag], ids=lambda f: f.__name__)
def test_s3_tree_changed_between_listing_pages(
    change: Callable[[Tree], object], moto_server: MotoServer, disk_before: Path, tmp_path: Path
) -> None:
    # The listing has passed apps/web's revisions and not reached its tags when the tree changes.
    shard, page = f"{PREFIX}/{LAYOUT}/repositories/apps/", first_tag_page()
    meta, after = crawl_s3_changing(
        moto_server, tmp_path, lambda r: r.is_listing and r.target == shard and r.count == page + 1, change, page_size=1
    )
    assert_consistent_or_recorded(tmp_path / "snap", meta, disk_before, after)
    if change is delete_tagged:  # its revision was listed, its tags were gone: a mix, recorded
        assert meta["incomplete_repositories"] == ["apps/web"]
