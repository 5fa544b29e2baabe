"""`regstat explain` on a crawl of scenario_tree: the chains that keep manifests (tag, index
child, referrer), orphans, blobs and their last references, with and without a plan; plans
from another snapshot and unknown digests are refused. Names from tests/scenario_tree/EXPECTED.json."""

from __future__ import annotations

import json
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
