"""The registry API source under faults, a registry that changes mid-crawl, and hostile names.

A ``FaultProxy`` sits in front of the real registry (docker-registry 2.8.2). With a seeded
share of requests faulted, a crawl must give exactly the tables of a clean crawl; what it
cannot read in the end is recorded, and everything else is still exact. Tags that move and
manifests deleted while the crawl runs (pushed and deleted for real through the registry's
API, between the requests of the crawl) are captured consistently or recorded: never a
snapshot in which a kept image looks orphaned. Names from the registry that its grammar
rejects never reach a URL.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from support import images
from support.api_components import Canned, Delay, FaultProxy, SeededFaults
from support.components import Registry, isolated_env
from support.crawls import REPO_ROOT, api_crawl, crawled, tables, without
from support.expected import Populated

from regstat.snapshot import STORED_TABLES
from regstat.sources.registry_api.http import ATTEMPTS

pytestmark = pytest.mark.registry

SEED = 8  # with it, every kind of fault meets a request other than a referrers one


def parquet_bytes(snapshot: Path) -> dict[str, bytes]:
    """Every Parquet file of a snapshot, by its path inside it."""
    return {str(p.relative_to(snapshot)): p.read_bytes() for p in sorted(snapshot.rglob("*.parquet"))}


def regstat(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "regstat", *args], capture_output=True, text=True, env=isolated_env(), cwd=REPO_ROOT,
        timeout=120,
    )  # fmt: skip


def orphaned(snapshot: Path) -> list[dict[str, Any]]:
    """The `orphaned_manifests` view of the snapshot, through `regstat sql`."""
    done = regstat("sql", str(snapshot), "SELECT repository, digest, reason FROM orphaned_manifests", "-f", "json")
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def clean(populated_fs: Populated, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A clean API crawl of the populated registry, through a proxy that never faults (the
    source location is part of nothing but snapshot.json)."""
    out = tmp_path_factory.mktemp("clean") / "snap"
    with FaultProxy(populated_fs.registry.url) as proxy:
        crawled(api_crawl(proxy.url, out), out)  # type: ignore[attr-defined]
    return out


@pytest.fixture
def proxy(populated_fs: Populated) -> Iterator[FaultProxy]:
    with FaultProxy(populated_fs.registry.url) as server:
        yield server  # type: ignore[misc]


# --- a seeded share of faults -------------------------------------------------------------------


def test_a_fifth_of_requests_faulted_gives_the_clean_tables(proxy: FaultProxy, clean: Path, tmp_path: Path) -> None:
    proxy.fault = SeededFaults(SEED, 0.2)
    proxy.tag_page_size = 1  # pages of one: more requests, and Links followed through faults
    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out, env={"REGSTAT_PAGE_SIZE": "1"}), out)
    assert meta["complete"] and meta["errors"] == []
    assert parquet_bytes(out) == parquet_bytes(clean)  # every table, byte for byte
    assert len(parquet_bytes(out)) == len(STORED_TABLES)  # one part each, `digests` among them
    # Every kind of fault was served, truncated manifest bodies among them.
    kinds = {kind for kind, _, _ in proxy.faults}
    assert kinds == {"503", "429", "drop", "truncate", "slow"}
    assert any(kind == "truncate" and "/manifests/sha256:" in path for kind, _, path in proxy.faults)

    # The same seed gives the same faults (referrers requests aside: how many threads ask
    # before one learns that 2.8.2 has no referrers API depends on timing).
    def faults(server: FaultProxy) -> list[tuple[str, str, str]]:
        return sorted(f for f in server.faults if "/referrers/" not in f[2])

    with FaultProxy(proxy.upstream.geturl()) as again:
        again.fault = SeededFaults(SEED, 0.2)  # type: ignore[attr-defined]
        again.tag_page_size = 1  # type: ignore[attr-defined]
        out2 = tmp_path / "again"
        crawled(api_crawl(again.url, out2, env={"REGSTAT_PAGE_SIZE": "1"}), out2)  # type: ignore[attr-defined]
        assert faults(again) == faults(proxy)  # type: ignore[arg-type]
    assert parquet_bytes(out2) == parquet_bytes(clean)


def test_a_repository_always_faulted_is_incomplete_and_the_rest_exact(
    proxy: FaultProxy, clean: Path, tmp_path: Path
) -> None:
    proxy.fault = SeededFaults(SEED, 0.2, doomed=("/v2/apps/web/",))
    out = tmp_path / "snap"
    meta = crawled(api_crawl(proxy.url, out), out, code=3)
    assert not meta["complete"] and meta["incomplete_repositories"] == ["apps/web"]
    assert {(e["repository"], e["kind"], e["path"]) for e in meta["errors"]} == {
        ("apps/web", "read_error", "/v2/apps/web/tags/list")
    }
    got, want = tables(out), tables(clean)
    for table in ("tags", "manifests", "descriptors", "repository_blobs", "uploads"):
        assert got[table] == without(want[table], "apps/web"), table
    assert {r["repository"]: r["complete"] for r in got["repositories"]} == {
        "apps/api": True, "apps/web": False, "base/alpine": True, "tools/cli": True,
    }  # fmt: skip
    named = {d["digest"] for d in got["descriptors"] if d["role"] != "subject"} | {
        m["digest"] for m in got["manifests"]
    }
    assert got["blobs"] == [b for b in want["blobs"] if b["digest"] in named]
    # The tag list failed every time: its attempts ran out (a connection dropped on reuse is
    # tried again at once on a fresh one, as an idle keep-alive closed by the server would be).
    web = [path for _, path, _ in proxy.log if path.startswith("/v2/apps/web/")]
    assert ATTEMPTS <= len(web) <= 2 * ATTEMPTS and set(web) == {"/v2/apps/web/tags/list?n=1000"}
    assert len([f for f in proxy.faults if f[2].startswith("/v2/apps/web/")]) == len(web)


# --- the registry changes while the crawl runs ---------------------------------------------------


class Moves:
    """A registry with one repository per change, and the proxy hooks that make each change
    between two requests of the crawl, through the registry's own API."""

    def __init__(self, registry: Registry) -> None:
        self.registry = registry
        layer = images.make_layer({"etc/motd": b"moves\n"})
        self.image = {n: images.build_image([layer], labels={"n": n}) for n in ("a", "b", "c", "d", "e")}
        self.index = images.build_index([self.image["d"], self.image["e"]])
        push = registry.push_image
        push("moves/early", self.image["a"], "stable")  # moves to c before its HEAD
        push("moves/late", self.image["a"], "stable")  # moves to c between HEAD and GET
        push("moves/deleted", self.image["a"], "stable")  # deleted between HEAD and GET
        push("moves/deleted", self.image["b"], "other")
        push("moves/gone", self.image["a"], "stable")  # deleted before its HEAD
        push("moves/gone", self.image["b"], "other")
        registry.push_index("moves/child", self.index, "v1")  # a child deleted before its GET
        self.done: list[str] = []

    def __call__(self, method: str, path: str, count: int) -> Canned | None:
        if count > 1:
            return None
        a, c = self.image["a"], self.image["c"]
        change = {
            ("HEAD", "/v2/moves/early/manifests/stable"): lambda: self.registry.push_image("moves/early", c, "stable"),
            ("GET", f"/v2/moves/late/manifests/{a.digest}"):
                lambda: self.registry.push_image("moves/late", c, "stable"),
            ("GET", f"/v2/moves/deleted/manifests/{a.digest}"): lambda: self.registry.delete_manifest(
                "moves/deleted", a.digest
            ),
            ("HEAD", "/v2/moves/gone/manifests/stable"): lambda: self.registry.delete_manifest("moves/gone", a.digest),
            ("GET", f"/v2/moves/child/manifests/{self.image['e'].digest}"): lambda: self.registry.delete_manifest(
                "moves/child", self.image["e"].digest
            ),
        }.get((method, path))
        if change is not None:
            change()
            self.done.append(path)
        return None


def test_tags_that_move_and_manifests_deleted_mid_crawl(make_registry: Any, tmp_path: Path) -> None:
    registry = make_registry("fs")
    moves = Moves(registry)
    out = tmp_path / "snap"
    with FaultProxy(registry.url) as proxy:
        proxy.fault = moves  # type: ignore[attr-defined]
        meta = crawled(api_crawl(proxy.url, out), out, code=3)  # type: ignore[attr-defined]
    assert len(moves.done) == 5, moves.done
    a, b, c = (moves.image[n].digest for n in "abc")
    d = moves.image["d"].digest
    got = tables(out)
    tags = {(t["repository"], t["tag"]): t["digest"] for t in got["tags"]}
    assert tags == {
        ("moves/early", "stable"): c,  # the move came first: the crawl saw its result
        ("moves/late", "stable"): a,  # HEAD saw a; a is still there by digest
        ("moves/deleted", "other"): b,
        ("moves/gone", "other"): b,
        ("moves/child", "v1"): moves.index.digest,
    }
    manifests = {(m["repository"], m["digest"]) for m in got["manifests"]}
    assert manifests == {
        ("moves/early", c), ("moves/late", a), ("moves/deleted", b), ("moves/gone", b),
        ("moves/child", moves.index.digest), ("moves/child", d),
    }  # fmt: skip
    assert {(e["repository"], e["kind"]) for e in meta["errors"]} == {
        ("moves/deleted", "tag_vanished"),
        ("moves/gone", "tag_vanished"),
        ("moves/child", "missing_manifest"),
    }
    assert sorted(meta["incomplete_repositories"]) == ["moves/child", "moves/deleted", "moves/gone"]
    # Consistent: nothing present looks orphaned, and every tag leads to a manifest present.
    assert orphaned(out) == []
    assert all((repository, digest) in manifests for (repository, _), digest in tags.items())
    # What stayed complete is what a crawl after the changes sees (moves/late: as it was at HEAD).
    after = tmp_path / "after"
    crawled(api_crawl(registry.url, after), after, code=3)  # moves/child's index names a deleted child
    later = {(t["repository"], t["tag"]): t["digest"] for t in tables(after)["tags"]}
    assert tags[("moves/early", "stable")] == later[("moves/early", "stable")]
    assert later[("moves/late", "stable")] == c


# --- hostile names --------------------------------------------------------------------------------

HOSTILE_REPOSITORIES = [
    "apps/../../etc",
    "..",
    "apps%2Fweb",
    "apps/wéb",
    "bad\x00name",
    "new\nline",
    "esc\x1b[31mred",
    "/absolute",
    "apps//web",
    "Apps/Web",
    "a" * 300,
]
HOSTILE_TAGS = ["..", "../../_catalog", "a/b", "%2F..", "tag\nx", "ü", "-leading", "x" * 129]


def _requests_stay_inside(log: list[tuple[str, str, int]], repositories: list[str]) -> None:
    for _, path, _ in log:
        assert (
            path == "/v2/" or path.startswith("/v2/_catalog?")
            or any(path.startswith(f"/v2/{r}/") for r in repositories)
        ), path
        assert ".." not in path and "%2F" not in path.upper() and path.isascii() and path.isprintable(), path


def test_hostile_repository_names_in_the_catalog(proxy: FaultProxy, clean: Path, tmp_path: Path) -> None:
    valid = sorted(r["repository"] for r in tables(clean)["repositories"])
    catalog = json.dumps({"repositories": valid + HOSTILE_REPOSITORIES}).encode()
    proxy.canned[("GET", "/v2/_catalog")] = (200, {"Content-Type": "application/json"}, catalog)
    out = tmp_path / "snap"
    result = api_crawl(proxy.url, out)
    meta = crawled(result, out, code=3)
    assert "Traceback" not in result.stderr
    assert sorted(meta["incomplete_repositories"]) == sorted(HOSTILE_REPOSITORIES)
    assert sorted((e["repository"], e["kind"]) for e in meta["errors"]) == sorted(
        (name, "invalid_name") for name in HOSTILE_REPOSITORIES
    )
    _requests_stay_inside(proxy.log, valid)
    got, want = tables(out), tables(clean)
    assert ({k: v for k, v in got.items() if k != "repositories"}
            == {k: v for k, v in want.items() if k != "repositories"})
    # The snapshot stays usable: the report runs over it.
    for fmt in ("text", "json", "markdown", "html"):
        done = regstat("report", str(out), "--format", fmt)
        assert done.returncode in (0, 3) and "Traceback" not in done.stderr, (fmt, done.stderr[-2000:])


def test_hostile_tag_names_are_never_requested(proxy: FaultProxy, clean: Path, tmp_path: Path) -> None:
    proxy.extra_tags["apps/web"] = HOSTILE_TAGS
    out = tmp_path / "snap"
    result = api_crawl(proxy.url, out)
    meta = crawled(result, out, code=3)
    assert "Traceback" not in result.stderr
    assert meta["incomplete_repositories"] == ["apps/web"]
    assert sorted(e["message"] for e in meta["errors"]) == sorted(f"not a valid tag name: {t!r}" for t in HOSTILE_TAGS)
    assert {(e["repository"], e["kind"], e["path"]) for e in meta["errors"]} == {
        ("apps/web", "invalid_name", "/v2/apps/web/tags/list")
    }
    _requests_stay_inside(proxy.log, sorted(r["repository"] for r in tables(clean)["repositories"]))
    got, want = tables(out), tables(clean)
    assert ({k: v for k, v in got.items() if k != "repositories"}
            == {k: v for k, v in want.items() if k != "repositories"})


def test_answers_slower_than_the_timeout_are_retried(
    proxy: FaultProxy, clean: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Each manifest's first answer stalls past the read timeout (shortened here): the
    request times out and is retried, and the tables are the clean ones."""
    from regstat.crawl import crawl_source
    from regstat.sources.registry_api import http
    from regstat.sources.base import CrawlOptions
    from regstat.sources.registry_api.source import open_distribution_api

    monkeypatch.setattr(http, "TIMEOUT", 0.5)
    monkeypatch.setenv("DOCKER_CONFIG", str(tmp_path / "no-docker-config"))
    proxy.fault = lambda method, path, count: Delay(1.5) if "/manifests/" in path and count == 1 else None
    options = CrawlOptions()
    result = crawl_source(open_distribution_api(proxy.url, options), str(tmp_path / "snap"), options)
    assert result.complete
    assert parquet_bytes(tmp_path / "snap") == parquet_bytes(clean)
    stalled = {path for kind, _, path in proxy.faults if kind == "slow"}
    assert stalled and all(sum(p == path for _, p, _ in proxy.log) == 2 for path in stalled)
