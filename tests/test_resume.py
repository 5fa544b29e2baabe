"""`regstat crawl --resume`: a crawl killed with SIGKILL part-way continues where it stopped.

Each killed crawl is `python -m regstat crawl` in a child that SIGKILLs itself at a chosen
point (after N job results, or while assembling), so the kill lands where the test wants it
whatever the machine's speed. REGSTAT_CHECKPOINT_SECONDS=0 checkpoints after every batch of
results. "Fetched less" is read from the `--json` summary (`work`: jobs run, items read) and,
for the registry API, from the proxy's request log.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest

from support.acr_components import PopulatedAcr
from support.api_components import FaultProxy
from support.components import REGION
from support.ecr_accounts import push_scenario
from support.expected import Populated
from regstat.errors import EXIT_OK, EXIT_SNAPSHOT
from regstat.shards import Selection
from regstat.crawl.checkpoint import JobCodec
from regstat.snapshot import STORED_TABLES, Snapshot

REPO_ROOT = Path(__file__).resolve().parent.parent
SAMPLE = REPO_ROOT / "tests" / "scenario_tree"
KILLED = -9

# Runs the CLI; SIGKILLs itself after `count` job results (`record`), after the `count`-th
# checkpoint, at the `count`-th snapshot table of the assembly (`assemble`), or just before the
# finished snapshot is renamed into place (`rename`). `tags_per_job` makes the API source split every repository's tags
# into jobs that share a RepositoryState (the case the journal must rebuild).
_CHILD = """
import os, signal, sys
import regstat.crawl.driver as driver
import regstat.crawl.publish as publish
import regstat.sources.registry_api.source as api
when, count, tags_per_job = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
api.TAGS_PER_JOB = tags_per_job
seen = [0]
def die_after(original):
    def wrapper(*args, **kwargs):
        value = original(*args, **kwargs)
        seen[0] += 1
        if seen[0] == count:
            os.kill(os.getpid(), signal.SIGKILL)
        return value
    return wrapper
if when == "record":
    driver.Crawl._record = die_after(driver.Crawl._record)
elif when == "rename":  # the snapshot is written; only its rename into place is left
    def rename(*args):
        os.kill(os.getpid(), signal.SIGKILL)
    os.rename = rename
elif when == "checkpoint":
    driver.Crawl._checkpoint = die_after(driver.Crawl._checkpoint)
elif when == "assemble":
    publish.PendingSnapshot.table = die_after(publish.PendingSnapshot.table)
from regstat.cli import main
main(sys.argv[4:], prog_name="regstat")
"""


def crawl(
    source: str, out: Path, *extra: str, kill: tuple[str, int] = ("never", 0), tags_per_job: int = 64,
    stdin: str = "",
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "REGSTAT_CHECKPOINT_SECONDS": "0"}
    argv = [sys.executable, "-c", _CHILD, kill[0], str(kill[1]), str(tags_per_job)]
    argv += ["crawl", source, "-o", str(out), "--json", *extra]
    return subprocess.run(argv, input=stdin, capture_output=True, text=True, env=env, cwd=REPO_ROOT, timeout=120)


def summary(done: subprocess.CompletedProcess[str]) -> dict[str, Any]:
    assert done.returncode == EXIT_OK, done.stderr
    return json.loads(done.stdout)


def killed(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == KILLED, (done.returncode, done.stderr)


def assert_same_snapshot(got: Path, want: Path) -> None:
    for table in STORED_TABLES:  # the same digests, numbered alike: the same tables as readers see them
        assert pq.read_table(got / table).equals(pq.read_table(want / table)), table
    a, b = (json.loads((p / "snapshot.json").read_text()) for p in (got, want))
    for key in ("complete", "counts", "errors", "incomplete_repositories", "source", "capabilities",
                "source_repositories"):
        assert a[key] == b[key], key
    Snapshot.open(got)


def leftovers(out: Path) -> list[Path]:
    return list(out.parent.glob(f".{out.name}.regstat-*"))


@pytest.fixture(scope="module")
def tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """scenario_tree with its repositories copied 20 times: a few hundred jobs."""
    root = tmp_path_factory.mktemp("tree") / "root"
    shutil.copytree(SAMPLE / "docker", root / "docker")
    repositories = root / "docker/registry/v2/repositories"
    originals = [p.parent for p in repositories.rglob("_manifests")]
    for i in range(20):
        for repo in originals:
            shutil.copytree(repo, repositories / f"copy{i}" / repo.relative_to(repositories))
    return root


@pytest.fixture(scope="module")
def full(tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, Any]]:
    out = tmp_path_factory.mktemp("full") / "snap"
    return out, summary(crawl(str(tree), out))


def test_killed_crawl_resumes_to_the_same_tables_reading_less(
    tree: Path, full: tuple[Path, dict], tmp_path: Path
) -> None:
    out = tmp_path / "snap"
    killed(crawl(str(tree), out, kill=("record", 40)))
    assert not out.exists() and len(leftovers(out)) == 1
    resumed = summary(crawl(str(tree), out, "--resume"))
    assert_same_snapshot(out, full[0])
    work, whole = resumed["work"], full[1]["work"]
    assert work["resumed"] and work["jobs_reused"] > 0
    assert work["items_read"] < whole["items_read"] and work["jobs_run"] < whole["jobs_run"]
    assert len(resumed["resumed_at"]) == 1 and not leftovers(out)
    assert json.loads((out / "snapshot.json").read_text())["resumed_at"] == resumed["resumed_at"]


def test_kill_while_assembling_resumes_without_crawling_again(
    tree: Path, full: tuple[Path, dict], tmp_path: Path
) -> None:
    out = tmp_path / "snap"
    killed(crawl(str(tree), out, kill=("assemble", 3)))
    resumed = summary(crawl(str(tree), out, "--resume"))
    assert resumed["work"]["jobs_run"] == 0 and resumed["work"]["items_read"] == 0
    assert_same_snapshot(out, full[0])


def test_kill_before_the_rename_only_renames(tree: Path, full: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "snap"
    killed(crawl(str(tree), out, kill=("rename", 1)))
    (partial,) = leftovers(out)
    assert (partial / "snapshot.json").exists() and not (partial / "_staging").exists()
    resumed = summary(crawl(str(tree), out, "--resume"))
    assert resumed["work"] == {"resumed": True, "jobs_run": 0, "jobs_reused": 0, "items_read": 0}
    assert_same_snapshot(out, full[0])


def test_resume_twice(tree: Path, full: tuple[Path, dict], tmp_path: Path) -> None:
    out = tmp_path / "snap"
    killed(crawl(str(tree), out, kill=("record", 20)))
    killed(crawl(str(tree), out, "--resume", kill=("record", 20)))
    resumed = summary(crawl(str(tree), out, "--resume"))
    assert len(resumed["resumed_at"]) == 2
    assert resumed["work"]["items_read"] < full[1]["work"]["items_read"]
    assert_same_snapshot(out, full[0])


def test_partial_crawl_resumes_counting_the_repositories_left_out(tree: Path, tmp_path: Path) -> None:
    """snapshot.json's source_repositories counts the repositories --repository left out: the
    jobs that listed them before the kill are counted once, from the journal."""
    want, out = tmp_path / "want", tmp_path / "snap"
    summary(crawl(str(tree), want, "--repository", "copy1*"))
    killed(crawl(str(tree), out, "--repository", "copy1*", kill=("record", 40)))
    resumed = summary(crawl(str(tree), out, "--repository", "copy1*", "--resume"))
    assert resumed["work"]["jobs_reused"] > 0
    assert_same_snapshot(out, want)
    meta = json.loads((out / "snapshot.json").read_text())
    originals = len(list((SAMPLE / "docker").rglob("_manifests")))
    # copy1 and copy10..copy19 are crawled; the originals and the other copies are left out.
    assert meta["counts"]["repositories"] == 11 * originals
    assert meta["source_repositories"] == 21 * originals


def test_killed_shard_resumes_to_the_same_shard(tree: Path, tmp_path: Path) -> None:
    """A shard of a sharded crawl (one of N machines) resumes as itself, and only as itself:
    resumed as another shard, it would hand the merge repositories twice or not at all."""
    want, out = tmp_path / "want", tmp_path / "snap"
    summary(crawl(str(tree), want, "--shard", "2/3"))
    killed(crawl(str(tree), out, "--shard", "2/3", kill=("record", 20)))
    other = crawl(str(tree), out, "--shard", "1/3", "--resume")
    assert other.returncode == EXIT_SNAPSHOT and "shard '2/3', not '1/3'" in other.stderr, other.stderr
    resumed = summary(crawl(str(tree), out, "--shard", "2/3", "--resume"))
    assert resumed["work"]["jobs_reused"] > 0
    assert_same_snapshot(out, want)
    shards = [json.loads((p / "snapshot.json").read_text())["shard"] for p in (out, want)]
    assert shards[0] == shards[1] and shards[0]["index"] == 2


def test_resume_refuses_what_it_cannot_continue(tree: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    nothing = crawl(str(tree), out, "--resume")
    assert nothing.returncode == EXIT_SNAPSHOT and "nothing to resume" in nothing.stderr
    assert "without --resume" in nothing.stderr
    killed(crawl(str(tree), out, kill=("record", 10)))
    changed = crawl(str(tree), out, "--resume", "--repository", "copy1/*")
    assert changed.returncode == EXIT_SNAPSHOT and "repositories" in changed.stderr, changed.stderr
    other = crawl(str(SAMPLE), out, "--resume")
    assert other.returncode == EXIT_SNAPSHOT and "source" in other.stderr, other.stderr
    assert not out.exists() and len(leftovers(out)) == 1  # refusing keeps the interrupted crawl
    live = out.parent / f".{out.name}.regstat-partial-{os.getpid()}"  # as if this test were crawling
    live.mkdir()
    running = crawl(str(tree), out, "--resume")
    assert running.returncode == EXIT_SNAPSHOT and f"pid {os.getpid()}" in running.stderr, running.stderr
    live.rmdir()
    summary(crawl(str(tree), out, "--resume"))
    fresh = tmp_path / "fresh"  # without --resume, a dead crawl's directory is removed
    killed(crawl(str(tree), fresh, kill=("record", 10)))
    assert summary(crawl(str(tree), fresh))["work"]["resumed"] is False
    assert not leftovers(fresh)


def test_jobs_of_every_source_round_trip_through_the_journal() -> None:
    """ECR and OCI layout jobs carry dataclasses, tuples and frozensets; the journal keeps them."""
    from regstat.snapshot.previous import PreviousManifests
    from regstat.sources.ecr import EcrApi, EcrSource, ListedImage, fetch_images
    from regstat.sources.oci_layout import LayoutIndex, crawl_layout

    api = EcrApi(client=object(), location="ecr://eu-west-1", registry_id=None)
    source = EcrSource(api, None, None, Selection(("team/*",)))
    images = (ListedImage("sha256:" + "a" * 64, ("v1", "v2"), 1, None, "ACTIVE"),)
    listed = frozenset(f"sha256:{i:064x}" for i in range(100))  # one repository's listing
    # An incremental crawl's previous snapshot is the source's: named, never written out.
    source.previous = PreviousManifests(Path("/snaps/yesterday"), None, {images[0].digest: 120}, {})
    jobs = [(fetch_images, (api, "team/app", images[i:], listed, source.previous)) for i in range(2)]
    codec = JobCodec(source)
    encoded = json.loads(json.dumps([codec.encode(job) for job in jobs]))
    values = json.loads(json.dumps(codec.take_values()))
    assert len(values) == 1 and "sha256:" not in json.dumps(encoded).replace(images[0].digest, "")  # written once
    assert encoded[0]["args"][4] == {"resource": "previous"}
    decoded = [JobCodec(source, values=values).decode(form) for form in encoded]
    assert decoded == jobs and decoded[0][1][0] is api and decoded[0][1][4] is source.previous
    index = LayoutIndex(("sha256:" + "b" * 64,), (("latest", "sha256:" + "b" * 64),), 5)
    job = (crawl_layout, ("/srv/layout", "tools/cli", None, index))
    assert codec.decode(json.loads(json.dumps(codec.encode(job)))) == job


@pytest.mark.registry
def test_api_crawl_resumes_without_asking_again(populated_fs: Populated, tmp_path: Path) -> None:
    """One tag per job: a repository's jobs share what they fetched, rebuilt on resume."""
    with FaultProxy(populated_fs.registry.url) as proxy:
        source = proxy.url
        whole = summary(crawl(source, tmp_path / "full", tags_per_job=1))
        asked = len(proxy.log)
        proxy.log.clear()
        out = tmp_path / "snap"
        killed(crawl(source, out, kill=("record", 6), tags_per_job=1))
        before_kill = len(proxy.log)
        resumed = summary(crawl(source, out, "--resume", tags_per_job=1))
        asked_again = len(proxy.log) - before_kill
    assert resumed["work"]["jobs_reused"] > 0 and whole["complete"]
    assert asked_again < asked
    assert_same_snapshot(out, tmp_path / "full")


@pytest.mark.registry
def test_acr_crawl_resumes(populated_acr: PopulatedAcr, tmp_path: Path) -> None:
    """ACR jobs carry the listed manifests with their tags (dataclasses) and the listing (a frozenset)."""
    acr_standin = populated_acr.standin
    login = ("--insecure", "--username", acr_standin.admin_username, "--password-stdin")
    password = acr_standin.admin_password + "\n"
    whole = summary(crawl(acr_standin.source, tmp_path / "full", *login, stdin=password))
    out = tmp_path / "snap"
    killed(crawl(acr_standin.source, out, *login, kill=("record", 4), stdin=password))
    resumed = summary(crawl(acr_standin.source, out, *login, "--resume", stdin=password))
    assert resumed["work"]["jobs_reused"] > 0 and resumed["work"]["jobs_run"] < whole["work"]["jobs_run"]
    assert_same_snapshot(out, tmp_path / "full")


@pytest.mark.registry
@pytest.mark.s3
def test_s3_crawl_resumes(populated_s3: Populated, tmp_path: Path) -> None:
    registry = populated_s3.registry
    assert registry.s3 is not None
    endpoint = ("--endpoint-url", registry.s3.endpoint_url)
    whole = summary(crawl(registry.source, tmp_path / "full", *endpoint, "-j", "2"))
    out = tmp_path / "snap"
    # Killed halfway through its jobs (how many there are depends on how S3 is listed).
    killed(crawl(registry.source, out, *endpoint, "-j", "2", kill=("record", whole["work"]["jobs_run"] // 2)))
    resumed = summary(crawl(registry.source, out, *endpoint, "--resume"))  # -j may change
    assert resumed["work"]["jobs_reused"] > 0
    assert resumed["work"]["items_read"] < whole["work"]["items_read"]
    assert_same_snapshot(out, tmp_path / "full")


@pytest.mark.s3
def test_ecr_crawl_resumes(account: Any, tmp_path: Path) -> None:  # noqa: F811 (the imported fixture)
    """ECR jobs carry the listed images (dataclasses) and the repository's digests (a frozenset)."""
    push_scenario(account)
    source = f"ecr://{REGION}"
    whole = summary(crawl(source, tmp_path / "full"))
    out = tmp_path / "snap"
    killed(crawl(source, out, kill=("record", 3)))
    resumed = summary(crawl(source, out, "--resume"))
    assert resumed["work"]["jobs_reused"] > 0 and resumed["work"]["jobs_run"] < whole["work"]["jobs_run"]
    assert_same_snapshot(out, tmp_path / "full")


def test_oci_layout_crawl_resumes(tmp_path: Path) -> None:
    from support import images
    from support.scenario import standard_scenario

    scenario = standard_scenario()
    layout = images.write_oci_layout(tmp_path / "layout", {"alpine": scenario.alpine, "cli": scenario.cli_index})
    source = f"oci:{layout}"
    whole = summary(crawl(source, tmp_path / "full"))
    out = tmp_path / "snap"
    killed(crawl(source, out, kill=("checkpoint", 2)))  # the first: the first jobs; then their results
    work = summary(crawl(source, out, "--resume"))["work"]
    assert work["jobs_reused"] >= 1 and work["jobs_run"] + work["jobs_reused"] == whole["work"]["jobs_run"]
    assert_same_snapshot(out, tmp_path / "full")
