"""sample_data/, the README's first run: its AGES cover the tree and agree with how the registry
writes (a tag is never older than its manifest, a link never older than its blob), restoring
them dates every file, and only then does the README's `plan-gc --untagged` (default grace)
find what EXPECTED.json and AGES say it must: the orphans and stale uploads older than a day.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from pathlib import Path

import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_OK

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "sample_data"
sys.path.insert(0, str(REPO_ROOT / "scripts"))
from restore_sample_ages import read_ages, restore  # noqa: E402

EXPECTED = json.loads((SAMPLE / "EXPECTED.json").read_text())
AGES = read_ages(SAMPLE)
V2 = "docker/registry/v2"
DAY = 86400


def revision(repository: str, digest: str) -> str:
    return f"{V2}/repositories/{repository}/_manifests/revisions/sha256/{digest.split(':')[1]}/link"


def blob(digest: str) -> str:
    hex_ = digest.split(":")[1]
    return f"{V2}/blobs/sha256/{hex_[:2]}/{hex_}/data"


def tag_link(repository: str, tag: str) -> str:
    return f"{V2}/repositories/{repository}/_manifests/tags/{tag}/current/link"


def upload_age(upload: dict) -> int:
    return AGES[f"{V2}/repositories/{upload['repository']}/_uploads/{upload['uuid']}/startedat"]


def orphans() -> set[tuple[str, str]]:
    """Manifests no tag reaches, from EXPECTED.json alone (index children and referrers). A
    tag on a referrer (cosign's `.sig`) keeps nothing: the referrer goes with its subject."""
    referrers = {(m["repository"], m["digest"]) for m in EXPECTED["manifests"] if m["subject_digest"]}
    reached = {(t["repository"], t["digest"]) for t in EXPECTED["tags"]} - referrers
    children = [((d["repository"], d["manifest_digest"]), (d["repository"], d["digest"]))
                for d in EXPECTED["descriptors"] if d["role"] == "manifest"]
    subjects = [((m["repository"], m["subject_digest"]), (m["repository"], m["digest"]))
                for m in EXPECTED["manifests"] if m["subject_digest"]]
    while True:
        more = {to for source, to in children + subjects if source in reached} - reached
        if not more:
            break
        reached |= more
    return {(m["repository"], m["digest"]) for m in EXPECTED["manifests"]} - reached


def fresh_copy(destination: Path) -> Path:
    """sample_data as a fresh clone has it: every file written just now."""
    shutil.copytree(SAMPLE, destination)
    for path in AGES:
        (destination / path).touch()
    return destination


def crawl(tree: Path, out: Path) -> Path:
    result = CliRunner().invoke(main, ["crawl", str(tree), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    return out


def plan(snapshot: Path, *args: str) -> dict:
    result = CliRunner().invoke(main, ["plan-gc", str(snapshot), *args, "-f", "json"])
    assert result.exit_code == EXIT_OK, result.stderr
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def restored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A crawl of a copy of sample_data with its ages restored, as the README's command does."""
    base = tmp_path_factory.mktemp("sample")
    tree = fresh_copy(base / "tree")
    restore(tree)
    return crawl(tree, base / "snap")


# --- AGES -----------------------------------------------------------------------------------------


def test_ages_name_every_file_of_the_tree() -> None:
    files = {p.relative_to(SAMPLE).as_posix() for p in (SAMPLE / "docker").rglob("*") if p.is_file()}
    assert set(AGES) == files


def test_ages_are_as_the_registry_would_have_written_them() -> None:
    for t in EXPECTED["tags"]:
        assert AGES[tag_link(t["repository"], t["tag"])] <= AGES[revision(t["repository"], t["digest"])], t
    for m in EXPECTED["manifests"]:
        assert AGES[revision(m["repository"], m["digest"])] <= AGES[blob(m["digest"])], m
    for link in EXPECTED["repository_blobs"]:
        hex_ = link["digest"].split(":")[1]
        linked = AGES[f"{V2}/repositories/{link['repository']}/_layers/sha256/{hex_}/link"]
        assert linked <= AGES[blob(link["digest"])], link
    # Months of history, and some of it inside the default grace period.
    assert max(AGES.values()) > 200 * DAY and min(AGES.values()) < DAY
    assert len({age // (30 * DAY) for age in AGES.values()}) >= 7


def test_restore_dates_each_file_and_each_upload_start(tmp_path: Path) -> None:
    tree = fresh_copy(tmp_path / "tree")
    now = time.time()
    restore(tree, now)
    for path, age in AGES.items():
        assert abs((tree / path).stat().st_mtime - (now - age)) < 1, path
    for upload in EXPECTED["uploads"]:
        started = tree / V2 / "repositories" / upload["repository"] / "_uploads" / upload["uuid"] / "startedat"
        expected = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - upload_age(upload)))
        assert started.read_text() == expected


# --- the README's plans ---------------------------------------------------------------------------


def test_untagged_with_the_default_grace_deletes_the_old_orphans_and_uploads(restored: Path) -> None:
    actions = plan(restored, "--untagged")["actions"]
    old = {o for o in orphans() if AGES[revision(*o)] > DAY}
    young = orphans() - old
    assert len(old) >= 30 and young, "the sample should hold old orphans and one inside the grace"
    assert EXPECTED["names"]["web_staging_young"] in {digest for _, digest in young}
    assert {(a["repository"], a["digest"]) for a in actions if a["action"] == "delete_manifest"} == old
    signature_tags = {(t["repository"], t["tag"]) for t in EXPECTED["tags"] if (t["repository"], t["digest"]) in old}
    assert len(signature_tags) == 2 and all(tag.endswith(".sig") for _, tag in signature_tags)
    assert {(a["repository"], a["tag"]) for a in actions if a["action"] == "delete_tag"} == signature_tags
    stale = {u["uuid"] for u in EXPECTED["uploads"] if upload_age(u) > DAY}
    assert {a["uuid"] for a in actions if a["action"] == "delete_upload"} == stale
    assert EXPECTED["names"]["stale_upload"] in stale and EXPECTED["names"]["young_upload"] not in stale
    deleted_blobs = {a["digest"] for a in actions if a["action"] == "delete_blob"}
    assert EXPECTED["names"]["unreferenced_blob"] in deleted_blobs


def test_without_the_ages_the_grace_protects_everything(tmp_path: Path) -> None:
    """What a fresh clone gives before the restore step: every file minutes old. (Uploads are
    judged by the time written in `startedat`, which the clone holds as committed.)"""
    actions = plan(crawl(fresh_copy(tmp_path / "tree"), tmp_path / "snap"), "--untagged")["actions"]
    assert [a for a in actions if a["action"] != "delete_upload"] == []


def test_older_than_and_keep_on_the_ci_repositories(restored: Path) -> None:
    actions = plan(restored, "--older-than", "30d", "--keep", "5", "--repository", "ci/*")["actions"]
    deleted = [(a["repository"], a["tag"]) for a in actions if a["action"] == "delete_tag"]
    assert len(deleted) >= 20
    assert all(repository.startswith("ci/") for repository, _ in deleted)
    assert all(AGES[tag_link(*t)] > 30 * DAY for t in deleted)
    for repository in {r for r, _ in deleted}:
        tags = [t for t in EXPECTED["tags"] if t["repository"] == repository]
        assert len(tags) - sum(r == repository for r, _ in deleted) >= 5, repository


def test_the_readmes_first_command_restores_the_ages_before_it_crawls() -> None:
    first = re.search(r"```sh\n(.*?)\n```", (REPO_ROOT / "README.md").read_text(), re.S).group(1)
    steps = [step.strip() for step in first.split("&&")]
    crawl_at = next(i for i, step in enumerate(steps) if step.startswith(".venv/bin/regstat crawl sample_data "))
    assert steps.index("python3 scripts/restore_sample_ages.py") < crawl_at
    assert steps[-1] == ".venv/bin/regstat plan-gc out/sample --untagged"  # the default grace
