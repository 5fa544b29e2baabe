"""`regstat explain` on a crawl of tests/scenario_tree: the chains that keep manifests (tag, index
child, referrer), orphans, blobs and their last references, with and without a plan; plans
from another snapshot and unknown digests are refused; short digests, REPOSITORY:TAG and
REPOSITORY@DIGEST name what they print, ambiguous short digests list their candidates.
Names from tests/scenario_tree/EXPECTED.json."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_FAILURE, EXIT_OK, EXIT_USAGE

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
NAMES = json.loads((SAMPLE / "EXPECTED.json").read_text())["names"]


def invoke(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture(scope="module")
def planned(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A crawl of scenario_tree and its `--untagged --grace 0s` plan."""
    root = tmp_path_factory.mktemp("explain")
    snap, plan = root / "snap", root / "plan.json"
    assert invoke("crawl", str(SAMPLE), "-o", str(snap)).exit_code == EXIT_OK
    result = invoke("plan-gc", str(snap), "--untagged", "--grace", "0s", "-o", str(plan))
    assert result.exit_code == EXIT_OK, result.stderr
    return snap, plan


def explained(snap: Path, digest: str, *extra: str) -> dict:
    result = invoke("explain", str(snap), digest, "-f", "json", *extra)
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def test_an_untagged_index_child_is_kept_by_its_index(planned: tuple[Path, Path]) -> None:
    snap, plan = planned
    index = NAMES["cli_index"]
    out = explained(snap, index)
    assert out["references"] == [] and out["manifests"][0]["now"] == [f"tag tools/cli:v1 -> {index}"]
    query = f"SELECT digest FROM descriptors WHERE manifest_digest = '{index}' AND role = 'manifest'"
    digest = json.loads(invoke("sql", str(snap), query, "-f", "json").stdout)[0]["digest"]
    out = explained(snap, digest, "--plan", str(plan))
    (m,) = out["manifests"]
    assert m["tags"] == [] and m["now"] == [f"tag tools/cli:v1 -> {index}", f"index {index} lists {digest}"]
    assert m["plan"]["deleted"] is False and m["plan"]["kept_by"] == m["now"]
    text = invoke("explain", str(snap), digest, "--plan", str(plan)).stdout
    assert "untagged" in text and "index sha256:" in text and "DELETED" not in text


def test_an_untagged_signature_is_kept_through_its_subject_under_the_plan(planned: tuple[Path, Path]) -> None:
    snap, plan = planned
    signature, subject = NAMES["signature"], NAMES["api_v1"]
    (m,) = explained(snap, signature, "--plan", str(plan))["manifests"]
    # The cosign tag on the signature follows its subject: under the plan, the subject's tag keeps both.
    assert m["plan"]["kept_by"] == [f"tag apps/api:v1 -> {subject}", f"{signature} is a referrer of {subject}"]


def test_the_orphan_and_its_blob_are_deleted_with_their_reasons(planned: tuple[Path, Path]) -> None:
    snap, plan = planned
    orphan = NAMES["web_old"]
    out = explained(snap, orphan, "--plan", str(plan))
    (m,) = out["manifests"]
    assert m["now"] is None and m["plan"]["deleted"] is True
    assert m["plan"]["action"]["reason"] == "untagged" and m["plan"]["action"]["bytes_freed"] > 0
    assert out["blob_plan"]["deleted"] is True and out["blob_plan"]["action"]["reason"] == "last reference deleted"
    assert out["blob_plan"]["last_references"] == [
        {"repository": "apps/web", "manifest_digest": orphan, "as": "its own manifest blob", "deleted_by_plan": True}
    ]
    assert "DELETED" in invoke("explain", str(snap), orphan, "--plan", str(plan)).stdout


def test_a_shared_layer_is_kept_by_the_references_that_stay(planned: tuple[Path, Path]) -> None:
    snap, plan = planned
    out = explained(snap, NAMES["base_layer"], "--plan", str(plan))
    pairs = {(r["repository"], r["manifest_digest"]): (r["kept_now"], r["deleted_by_plan"]) for r in out["references"]}
    assert pairs[("apps/web", NAMES["web_old"])] == (False, True)  # the orphan goes
    assert pairs[("base/alpine", NAMES["base"])] == (True, False)
    assert out["blob_plan"]["deleted"] is False and len(out["blob_plan"]["kept_references"]) == len(pairs) - 1
    only_base = explained(snap, NAMES["base_layer"], "--repository", "base/alpine")
    assert {r["repository"] for r in only_base["references"]} == {"base/alpine"}


def test_an_unreferenced_blob(planned: tuple[Path, Path]) -> None:
    snap, plan = planned
    out = explained(snap, NAMES["unreferenced_blob"], "--plan", str(plan))
    assert out["manifests"] == [] and out["references"] == [] and out["blob"]["stored"] is True
    assert out["blob_plan"]["action"]["reason"] == "unreferenced"


def test_refusals(planned: tuple[Path, Path], tmp_path: Path) -> None:
    snap, plan = planned
    unknown = invoke("explain", str(snap), "sha256:" + "0" * 64)
    assert unknown.exit_code == EXIT_FAILURE and "no manifest, reference or blob" in unknown.stderr
    other = json.loads(plan.read_text())
    other["snapshot"]["id"] = "another"
    (tmp_path / "other.json").write_text(json.dumps(other))
    result = invoke("explain", str(snap), NAMES["web_old"], "--plan", str(tmp_path / "other.json"))
    assert result.exit_code == EXIT_FAILURE and "made from snapshot another" in result.stderr
    (tmp_path / "junk.json").write_text("[1, 2]")
    result = invoke("explain", str(snap), NAMES["web_old"], "--plan", str(tmp_path / "junk.json"))
    assert result.exit_code == EXIT_USAGE and "not a regstat plan" in result.stderr


# --- what explain accepts: what regstat prints ---------------------------------------------------


def snapshot_rows(snap: Path, query: str) -> list[dict]:
    result = invoke("sql", str(snap), query, "-f", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


def test_a_short_digest_names_its_digest(planned: tuple[Path, Path]) -> None:
    snap, _ = planned
    orphan = NAMES["web_old"]
    hex_ = orphan.removeprefix("sha256:")
    whole = explained(snap, orphan)
    for short in (orphan[:19], hex_[:12], hex_[:20], hex_[:12].upper()):
        out = explained(snap, short)
        assert out["argument"] == short and out["digest"] == orphan
        assert {k: v for k, v in out.items() if k != "argument"} == {k: v for k, v in whole.items() if k != "argument"}
    assert invoke("explain", str(snap), orphan[:19]).stdout.splitlines()[0] == f"{orphan} ({orphan[:19]})"
    # What the plan's text prints for the orphan is accepted as it stands.
    text = invoke("plan-gc", str(snap), "--untagged", "--grace", "0s").stdout
    printed = next(word for line in text.splitlines() for word in line.split() if word.endswith(orphan[:19]))
    out = explained(snap, printed)
    assert out["digest"] == orphan and [m["repository"] for m in out["manifests"]] == [printed.split("@")[0]]


def test_a_tag_names_the_manifest_it_points_to(planned: tuple[Path, Path]) -> None:
    snap, _ = planned
    tags = snapshot_rows(snap, "SELECT repository, tag, digest FROM tags ORDER BY 1, 2")
    assert any("/" in t["repository"] for t in tags)
    for t in tags:
        out = explained(snap, f"{t['repository']}:{t['tag']}")
        assert out["digest"] == t["digest"] and t["tag"] in out["manifests"][0]["tags"]


def test_short_digests_need_twelve_hex_digits(planned: tuple[Path, Path]) -> None:
    snap, _ = planned
    hex_ = NAMES["web_old"].removeprefix("sha256:")
    for short in (hex_[:11], "sha256:" + hex_[:11], "sha256:" + hex_[:4]):
        result = invoke("explain", str(snap), short)
        assert result.exit_code == EXIT_USAGE and "12 or more hex digits" in result.stderr, short
        assert f"this one has {len(short.removeprefix('sha256:'))}" in result.stderr


def test_unknown_tags_and_other_forms_are_refused(planned: tuple[Path, Path]) -> None:
    snap, _ = planned
    tag = snapshot_rows(snap, "SELECT repository, tag FROM tags ORDER BY 1, 2 LIMIT 1")[0]
    repository = tag["repository"]
    result = invoke("explain", str(snap), f"{repository}:no-such-tag")
    assert result.exit_code == EXIT_FAILURE
    assert f"tag {repository}:no-such-tag is not in the snapshot" in result.stderr and tag["tag"] in result.stderr
    result = invoke("explain", str(snap), "no/such/repository:v1")
    assert result.exit_code == EXIT_FAILURE and "has no repository no/such/repository" in result.stderr
    # A registry host (with its port) is not part of a repository name in a snapshot.
    result = invoke("explain", str(snap), f"registry.example.com:5000/{repository}:{tag['tag']}")
    assert result.exit_code == EXIT_FAILURE and f"try {repository}:{tag['tag']}" in result.stderr
    for argument in (repository, f"{repository}:", "not a digest", f"{repository}@latest"):
        result = invoke("explain", str(snap), argument)
        assert result.exit_code == EXIT_USAGE and "REPOSITORY:TAG" in result.stderr, argument
    result = invoke("explain", str(snap), f"{repository}:{tag['tag']}", "--repository", "another/repository")
    assert result.exit_code == EXIT_USAGE and "not of --repository another/repository" in result.stderr


@pytest.fixture(scope="module")
def lookalike(tmp_path_factory: pytest.TempPathFactory, planned: tuple[Path, Path]) -> tuple[Path, dict, str]:
    """A crawl of scenario_tree with a copy of its first tagged repository (REPOSITORY-copy: the
    same manifests in two repositories) and a stored blob whose digest shares its first 20 hex
    digits with a manifest's: the snapshot, that manifest (digest, the repositories holding
    it), the blob's digest."""
    copied = snapshot_rows(planned[0], "SELECT repository FROM tags ORDER BY 1 LIMIT 1")[0]["repository"]
    root = tmp_path_factory.mktemp("lookalike")
    shutil.copytree(SAMPLE / "docker", root / "tree" / "docker", symlinks=True)
    v2 = root / "tree" / "docker" / "registry" / "v2"
    shutil.copytree(v2 / "repositories" / copied, v2 / "repositories" / f"{copied}-copy", symlinks=True)
    assert invoke("crawl", str(root / "tree"), "-o", str(root / "copied")).exit_code == EXIT_OK
    rows = snapshot_rows(root / "copied", "SELECT digest, repository FROM manifests ORDER BY digest, repository")
    manifest = {"digest": rows[0]["digest"],
                "repositories": ", ".join(r["repository"] for r in rows if r["digest"] == rows[0]["digest"])}
    hex_ = manifest["digest"].removeprefix("sha256:")
    blob = hex_[:20] + ("0" if hex_[20] != "0" else "1") * 44
    data = v2 / "blobs" / "sha256" / blob[:2] / blob / "data"
    data.parent.mkdir(parents=True)
    data.write_bytes(b"a blob nothing references")
    assert invoke("crawl", str(root / "tree"), "-o", str(root / "snap")).exit_code == EXIT_OK
    return root / "snap", manifest, "sha256:" + blob


def test_a_repository_form_explains_that_repository_only(lookalike: tuple[Path, dict, str]) -> None:
    snap = lookalike[0]
    tags = snapshot_rows(snap, "SELECT repository, tag, digest FROM tags WHERE repository LIKE '%-copy' ORDER BY 2")
    assert tags
    for t in tags:
        copy, original = t["repository"], t["repository"].removesuffix("-copy")
        both = explained(snap, t["digest"])
        assert [m["repository"] for m in both["manifests"]] == [original, copy]
        for reference in (f"{copy}:{t['tag']}", f"{copy}@{t['digest'][:19]}"):
            out = explained(snap, reference)
            assert out["digest"] == t["digest"] and [m["repository"] for m in out["manifests"]] == [copy]
            assert {r["repository"] for r in out["references"]} <= {copy}
        assert [m["repository"] for m in explained(snap, f"{original}:{t['tag']}")["manifests"]] == [original]


def test_an_ambiguous_short_digest_lists_its_candidates(lookalike: tuple[Path, dict, str]) -> None:
    snap, manifest, blob = lookalike
    digest = manifest["digest"]
    for short in (digest[:19], digest[7:27], digest[:27]):
        result = invoke("explain", str(snap), short)
        assert result.exit_code == EXIT_FAILURE and "ambiguous: 2 digests" in result.stderr, short
        lines = result.stderr.splitlines()
        assert f"  {blob}  blob" in lines and f"  {digest}  manifest in {manifest['repositories']}" in lines
    # One more digit tells them apart.
    assert explained(snap, digest[:28])["digest"] == digest
    assert explained(snap, blob[:28])["digest"] == blob
