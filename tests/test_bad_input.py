"""Damaged storage trees: each problem is recorded against its repository, never a crash or a
silent wrong number, and the crawl goes on with everything else.

Each test damages a copy of scenario_tree/ (a tree the real registry wrote) in one way.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_INCOMPLETE, EXIT_OK, EXIT_SOURCE
from regstat.model import digest_of
from regstat.sources.storage_tree.storage import FilesystemStorage
from regstat.sources.storage_tree.layout import leaf_file

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
V2 = ("docker", "registry", "v2")


@pytest.fixture
def tree(tmp_path: Path) -> Path:
    root = tmp_path / "root"
    shutil.copytree(SAMPLE / "docker", root / "docker", symlinks=True)
    return root


def v2(root: Path) -> Path:
    return root.joinpath(*V2)


def crawl(root: Path | str, out: Path, *args: str) -> tuple[int, dict]:
    result = CliRunner().invoke(main, ["crawl", str(root), "--output", str(out), *args])
    meta = json.loads((out / "snapshot.json").read_text()) if (out / "snapshot.json").exists() else {}
    return result.exit_code, meta


def rows(out: Path, table: str) -> list[dict]:
    return digest_ids.read(out, table).to_pylist()


def first_revision(root: Path, repository: str) -> tuple[str, Path]:
    revisions = v2(root) / "repositories" / repository / "_manifests" / "revisions" / "sha256"
    hex_ = sorted(p.name for p in revisions.iterdir())[0]
    return f"sha256:{hex_}", revisions / hex_ / "link"


def add_blob(root: Path, body: bytes) -> str:
    digest = digest_of(body)
    hex_ = digest.split(":")[1]
    path = v2(root) / "blobs" / "sha256" / hex_[:2] / hex_ / "data"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(body)
    return digest


def add_revision(root: Path, repository: str, digest: str) -> None:
    link = v2(root) / "repositories" / repository / "_manifests" / "revisions" / "sha256" / digest[7:] / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(digest)


def assert_recorded(meta: dict, repository: str | None, kind: str) -> dict:
    matches = [e for e in meta["errors"] if e["repository"] == repository and e["kind"] == kind]
    assert matches, meta["errors"]
    assert meta["complete"] is False
    if repository is not None:
        assert repository in meta["incomplete_repositories"]
    return matches[0]


def test_clean_sample_is_complete(tree: Path, tmp_path: Path) -> None:
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_OK, meta.get("errors")
    assert meta["complete"] and meta["errors"] == [] and meta["counts"]["manifests"] > 0


def test_empty_tag_link(tree: Path, tmp_path: Path) -> None:
    link = v2(tree) / "repositories/apps/web/_manifests/tags/latest/current/link"
    link.write_bytes(b"")
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    error = assert_recorded(meta, "apps/web", "bad_link")
    assert error["path"].endswith("tags/latest/current/link")
    tags = rows(tmp_path / "snap", "tags")
    assert ("apps/web", "latest") not in {(t["repository"], t["tag"]) for t in tags}
    assert any(t["repository"] == "apps/api" for t in tags)  # the crawl went on
    repos = {r["repository"]: r for r in rows(tmp_path / "snap", "repositories")}
    assert repos["apps/web"]["complete"] is False and repos["apps/api"]["complete"] is True


def test_truncated_revision_link_keeps_the_manifest(tree: Path, tmp_path: Path) -> None:
    digest, link = first_revision(tree, "apps/api")
    link.write_text(digest[:30])
    code, meta = crawl(tree, tmp_path / "snap")  # caught by its size: no --verify-links
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "apps/api", "bad_link")
    # The manifest is still listed (and its references known): nothing it holds looks unreferenced.
    manifests = {(m["repository"], m["digest"]) for m in rows(tmp_path / "snap", "manifests")}
    assert ("apps/api", digest) in manifests


def test_garbage_layer_link(tree: Path, tmp_path: Path) -> None:
    layers = v2(tree) / "repositories/base/alpine/_layers/sha256"
    link = next(layers.iterdir()) / "link"
    link.write_bytes(b"\x00\xffgarbage")
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "base/alpine", "bad_link")


def test_link_that_names_another_digest(tree: Path, tmp_path: Path) -> None:
    # Of the right length, so only reading it tells: --verify-links. Without it the crawl goes
    # by the digest in the path, as the registry's enumeration of manifests does.
    digest, link = first_revision(tree, "tools/cli")
    link.write_text("sha256:" + "0" * 64)
    code, meta = crawl(tree, tmp_path / "snap", "--verify-links")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "tools/cli", "link_mismatch")
    code, meta = crawl(tree, tmp_path / "unverified")
    assert code == EXIT_OK, meta["errors"]
    manifests = {(m["repository"], m["digest"]) for m in rows(tmp_path / "unverified", "manifests")}
    assert ("tools/cli", digest) in manifests


def test_revision_link_path_that_names_no_digest(tree: Path, tmp_path: Path) -> None:
    # Checked by size alone, the path must still name a digest, or the manifest would vanish
    # from the snapshot without a word.
    _, link = first_revision(tree, "tools/cli")
    bad = link.parent.parent / ("z" * 64) / "link"
    bad.parent.mkdir()
    bad.write_text("sha256:" + "z" * 64)
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "tools/cli", "bad_link")


def test_revision_whose_blob_is_missing(tree: Path, tmp_path: Path) -> None:
    digest, _ = first_revision(tree, "apps/api")
    hex_ = digest[7:]
    shutil.rmtree(v2(tree) / "blobs" / "sha256" / hex_[:2] / hex_)
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    error = assert_recorded(meta, "apps/api", "missing_blob")
    assert hex_ in error["path"]
    statuses = {m["digest"]: m["status"] for m in rows(tmp_path / "snap", "manifests") if m["repository"] == "apps/api"}
    assert statuses[digest] == "missing"


def test_manifest_that_does_not_parse(tree: Path, tmp_path: Path) -> None:
    digest = add_blob(
        tree, b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": 7}')
    add_revision(tree, "apps/web", digest)
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "apps/web", "invalid_manifest")
    row = [m for m in rows(tmp_path / "snap", "manifests") if m["digest"] == digest][0]
    assert row["status"] == "invalid" and row["repository"] == "apps/web"


def test_manifest_content_that_does_not_match_its_digest(tree: Path, tmp_path: Path) -> None:
    digest, _ = first_revision(tree, "base/alpine")
    hex_ = digest[7:]
    (v2(tree) / "blobs" / "sha256" / hex_[:2] / hex_ / "data").write_text('{"schemaVersion": 2}')
    code, meta = crawl(tree, tmp_path / "snap")
    assert_recorded(meta, "base/alpine", "digest_mismatch")


def test_manifest_over_4_mib(tree: Path, tmp_path: Path) -> None:
    body = b'{"schemaVersion": 2, "annotations": {"x": "' + b"a" * (4 * 1024 * 1024) + b'"}}'
    add_revision(tree, "apps/web", add_blob(tree, body))
    code, meta = crawl(tree, tmp_path / "snap")
    assert_recorded(meta, "apps/web", "manifest_too_large")


def test_unknown_media_type_is_recorded_as_it_is(tree: Path, tmp_path: Path) -> None:
    media_type = "application/vnd.example.thing.v1+json"
    digest = add_blob(tree, json.dumps({"schemaVersion": 2, "mediaType": media_type}).encode())
    add_revision(tree, "apps/web", digest)
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_OK  # not an error: the crawl saw everything there is
    row = [m for m in rows(tmp_path / "snap", "manifests") if m["digest"] == digest][0]
    assert (row["media_type"], row["status"]) == (media_type, "unknown_media_type")


def test_dangling_tag(tree: Path, tmp_path: Path) -> None:
    link = v2(tree) / "repositories/apps/api/_manifests/tags/dangling/current/link"
    link.parent.mkdir(parents=True)
    link.write_text("sha256:" + "9" * 64)
    code, meta = crawl(tree, tmp_path / "snap")
    assert_recorded(meta, "apps/api", "dangling_tag")


def test_repository_directory_without_manifests(tree: Path, tmp_path: Path) -> None:
    src = v2(tree) / "repositories/base/alpine/_layers"
    shutil.copytree(src, v2(tree) / "repositories/stray/_layers")
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "stray", "no_manifests_dir")
    assert "stray" in {r["repository"] for r in rows(tmp_path / "snap", "repositories")}


@pytest.mark.parametrize(
    "path, repository",
    [
        ("repositories/apps/web/_manifests/notes.txt", "apps/web"),
        ("repositories/apps/web/_junk/x", "apps/web"),
        ("repositories/README", None),
        ("blobs/sha256/zz/nonsense", None),
        # Digest directories a walk looks into for their `link` or `data` alone: when that
        # file is missing or not a file, the directory is listed, and what it holds reported.
        (f"repositories/apps/web/_layers/sha256/{'a' * 64}/notes.txt", "apps/web"),
        (f"repositories/apps/web/_manifests/revisions/sha256/{'b' * 64}/link/x", "apps/web"),
        (f"blobs/sha256/cc/{'c' * 64}/partial", None),
        (f"blobs/sha256/dd/{'d' * 64}/data/x", None),
    ],
)
def test_key_outside_the_layout(tree: Path, tmp_path: Path, path: str, repository: str | None) -> None:
    target = v2(tree) / path
    target.parent.mkdir(parents=True, exist_ok=True)
    target.write_text("hello")
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    error = assert_recorded(meta, repository, "outside_layout")
    assert error["path"] == path


def test_symlink_out_of_the_tree_is_not_followed(tree: Path, tmp_path: Path) -> None:
    secret = tmp_path / "secret"
    secret.write_text("sha256:" + "5" * 64)
    link = v2(tree) / "repositories/apps/web/_manifests/tags/evil/current/link"
    link.parent.mkdir(parents=True)
    os.symlink(secret, link)
    code, meta = crawl(tree, tmp_path / "snap")
    assert_recorded(meta, "apps/web", "symlink")
    assert "evil" not in {t["tag"] for t in rows(tmp_path / "snap", "tags")}


def test_symlinked_layer_link_is_recorded(tree: Path, tmp_path: Path) -> None:
    link = next((v2(tree) / "repositories/base/alpine/_layers/sha256").iterdir()) / "link"
    target = tmp_path / "elsewhere"
    target.write_bytes(link.read_bytes())
    link.unlink()
    os.symlink(target, link)
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_INCOMPLETE
    error = assert_recorded(meta, "base/alpine", "symlink")
    assert error["path"] == str(link.relative_to(v2(tree)))


def test_the_walk_sees_all_but_files_beside_a_link_or_data(tree: Path) -> None:
    """With the layout's hint, the walk looks at each digest directory's `link` or `data`
    alone: it finds every file the plain walk finds, but for extra files beside those (which
    the registry never writes and no figure reads)."""
    base = v2(tree)
    layer = next((base / "repositories/base/alpine/_layers/sha256").iterdir())
    revision = next((base / "repositories/apps/web/_manifests/revisions/sha256").iterdir())
    blob = next(p for p in (base / "blobs/sha256").glob("*/*") if p.is_dir())
    beside = [layer / "notes.txt", revision / "link.tmp", blob / "data.partial"]
    for path in beside:
        path.write_text("x")
    (base / f"repositories/apps/web/_layers/sha256/{'e' * 64}").mkdir()  # empty: nothing to find
    (base / f"repositories/apps/web/_layers/sha256/{'f' * 64}/link").mkdir(parents=True)
    (base / f"repositories/apps/web/_layers/sha256/{'f' * 64}/link/inside").write_text("x")
    storage = FilesystemStorage(str(tree))
    for prefix in ("repositories", f"blobs/sha256/{blob.parent.name}"):
        plain = set(storage.walk(prefix))
        hinted = list(storage.walk(prefix, leaf=leaf_file))
        assert len(hinted) == len(set(hinted))
        missed = {str(base / e.path) for e in plain - set(hinted)}
        assert missed == {str(p) for p in beside if str(p.relative_to(base)).startswith(prefix)}
        assert set(hinted) <= plain


def test_missing_source_is_one_clear_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["crawl", str(tmp_path / "nope"), "--output", str(tmp_path / "snap")])
    assert result.exit_code == EXIT_SOURCE
    assert "no such directory" in result.stderr and "Traceback" not in result.stderr
    result = CliRunner().invoke(main, ["crawl", str(tmp_path), "--output", str(tmp_path / "snap")])
    assert result.exit_code == EXIT_SOURCE and "docker/registry/v2" in result.stderr
    assert not (tmp_path / "snap").exists()


def test_zero_filled_layer_link_is_caught_with_verify_links(tree: Path, tmp_path: Path) -> None:
    # The size of a zero-filled link is right, so only reading it tells (--verify-links).
    link = next((v2(tree) / "repositories/base/alpine/_layers/sha256").iterdir()) / "link"
    link.write_bytes(b"\0" * len(f"sha256:{link.parent.name}"))
    code, meta = crawl(tree, tmp_path / "snap", "--verify-links")
    assert code == EXIT_INCOMPLETE
    assert_recorded(meta, "base/alpine", "bad_link")


def test_first_push_in_flight_is_not_an_error(tree: Path, tmp_path: Path) -> None:
    src = v2(tree) / "repositories/base/alpine/_layers"
    new = v2(tree) / "repositories/fresh"
    shutil.copytree(src, new / "_layers")
    upload = new / "_uploads" / "0b9f1c52-1f7e-4d2e-9a57-3c1f4c1b2a10"
    upload.mkdir(parents=True)
    (upload / "startedat").write_text("2026-11-27T21:50:00.123456789Z")
    (upload / "data").write_bytes(b"12345")
    code, meta = crawl(tree, tmp_path / "snap")
    assert code == EXIT_OK, meta["errors"]
    uploads = [u for u in rows(tmp_path / "snap", "uploads") if u["repository"] == "fresh"]
    assert len(uploads) == 1 and uploads[0]["size"] == 5
    assert uploads[0]["started_at"].isoformat() == "2026-11-27T21:50:00.123456+00:00"


# --- hostile trees: names, nesting past the reachability bound, cycles a lying tree expresses --


def regstat(*args: str) -> subprocess.CompletedProcess[str]:
    """regstat in a child process: DuckDB and Arrow leave threads behind in this one, and the
    crawls later tests run fork their workers from it."""
    return subprocess.run([sys.executable, "-m", "regstat", *args], capture_output=True, text=True, timeout=120)


def snapshot_sql(out: Path, sql: str) -> tuple[int, str, str]:
    result = regstat("sql", str(out), sql, "--format", "json")
    return result.returncode, result.stdout, result.stderr


def orphaned(out: Path) -> set[tuple[str, str]]:
    code, stdout, stderr = snapshot_sql(out, "SELECT repository, digest FROM orphaned_manifests")
    assert code == EXIT_OK, stderr
    return {(r["repository"], r["digest"]) for r in json.loads(stdout)}


@pytest.fixture(scope="module")
def clean_snapshot(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("clean") / "snap"
    code, _ = crawl(SAMPLE, out)
    assert code == EXIT_OK
    return out


def assert_damage_deletes_nothing(out: Path, meta: dict, clean: Path) -> None:
    """Whatever looks orphaned in a repository the crawl calls complete looked orphaned in the
    undamaged sample too: the damage made nothing look deletable without saying so."""
    incomplete = set(meta["incomplete_repositories"])
    assert {o for o in orphaned(out) if o[0] not in incomplete} <= orphaned(clean)


HOSTILE_NAMES = ["caf\u00e9", "ctl\x01name", "new\nline", "esc\x1b[2Jape", "a%2Fb", "...", ".hidden", "-dash", "UPPER"]


def test_hostile_repository_directory_names(tree: Path, tmp_path: Path, clean_snapshot: Path) -> None:
    repositories = v2(tree) / "repositories"
    for name in HOSTILE_NAMES:
        shutil.copytree(repositories / "apps" / "web", repositories / name)
    # A name that is not UTF-8 (only a file system can hold one): escaped, never read.
    shutil.copytree(os.fsencode(repositories / "apps" / "web"), os.fsencode(repositories) + b"/caf\xe9")
    shutil.copytree(os.fsencode(repositories / "apps" / "web"), os.fsencode(repositories) + b"/apps/w\xffb")
    out = tmp_path / "snap"
    code, meta = crawl(tree, out)
    assert code == EXIT_INCOMPLETE
    for name in HOSTILE_NAMES:
        assert_recorded(meta, name, "invalid_name")
    assert_recorded(meta, None, "invalid_name")
    unreadable = {e["path"] for e in meta["errors"] if e["repository"] is None}
    assert unreadable == {"repositories/caf\\xe9", "repositories/apps/w\\xffb"}
    real = {"apps/api", "apps/web", "base/alpine", "tools/cli"}
    for table in ("tags", "manifests", "descriptors", "repository_blobs"):
        got = [r for r in rows(out, table) if r["repository"] in real]
        assert got == rows(clean_snapshot, table), table
    assert_damage_deletes_nothing(out, meta, clean_snapshot)


def _index(children: list[str]) -> bytes:
    manifests = [{"mediaType": "application/vnd.oci.image.manifest.v1+json", "digest": d, "size": 1} for d in children]
    return json.dumps(
        {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", "manifests": manifests}
    ).encode()


def _tag(root: Path, repository: str, tag: str, digest: str) -> None:
    link = v2(root) / "repositories" / repository / "_manifests" / "tags" / tag / "current" / "link"
    link.parent.mkdir(parents=True, exist_ok=True)
    link.write_text(digest)


@pytest.mark.parametrize("edge", ["index", "referrer"])
def test_chains_deeper_than_the_reachability_bound(tree: Path, tmp_path: Path, edge: str) -> None:
    # 70 levels above a real image, each held by apps/web and the top one tagged: the tree is
    # well-formed, so the crawl is complete; reachability refuses rather than stop at 64.
    digest, _ = first_revision(tree, "apps/web")
    for level in range(70):
        if edge == "index":
            body = _index([digest])
        else:
            body = json.dumps({
                "schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "artifactType": f"application/vnd.example.level{level}",
                "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": digest_of(b"{}"), "size": 2},
                "layers": [], "subject": {"mediaType": "application/vnd.oci.image.manifest.v1+json",
                                          "digest": digest, "size": 1},
            }).encode()
        digest = add_blob(tree, body)
        add_revision(tree, "apps/web", digest)
    if edge == "index":
        _tag(tree, "apps/web", "deep", digest)
    out = tmp_path / "snap"
    code, meta = crawl(tree, out)
    assert code == EXIT_OK, meta.get("errors", code)
    for sql in ("SELECT * FROM orphaned_manifests", "SELECT * FROM reachable", "SELECT * FROM unreferenced_blobs"):
        code, stdout, stderr = snapshot_sql(out, sql)
        # --format json: the error comes as JSON on stdout too (issue 16), never as rows.
        error = json.loads(stdout)
        assert code != EXIT_OK and error["kind"] == "reachability" and error["exit_code"] == code
        assert stderr.startswith("regstat: error: reachability") and "Traceback" not in stderr
    result = regstat("report", str(out))
    assert result.returncode != EXIT_OK and "reachability" in result.stderr and "Traceback" not in result.stderr


def test_index_cycle_a_lying_tree_expresses(tree: Path, tmp_path: Path, clean_snapshot: Path) -> None:
    # Content addressing rules out a real cycle; a tree can still claim one by storing, at the
    # paths of X and Y, indexes that list each other (and X lists itself). Neither hashes to
    # its digest, so neither is read as an index: both are recorded, nothing loops.
    x, y = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    for digest, children in ((x, [y, x]), (y, [x])):
        path = v2(tree) / "blobs" / "sha256" / digest[7:9] / digest[7:] / "data"
        path.parent.mkdir(parents=True)
        path.write_bytes(_index(children))
        add_revision(tree, "apps/web", digest)
    _tag(tree, "apps/web", "cycle", x)
    out = tmp_path / "snap"
    code, meta = crawl(tree, out)
    assert code == EXIT_INCOMPLETE
    assert {e["path"] for e in meta["errors"] if e["kind"] == "digest_mismatch"} == {
        f"blobs/sha256/{d[7:9]}/{d[7:]}/data" for d in (x, y)
    }
    assert meta["incomplete_repositories"] == ["apps/web"]
    assert not [d for d in rows(out, "descriptors") if d["manifest_digest"] in (x, y)]
    assert_damage_deletes_nothing(out, meta, clean_snapshot)
