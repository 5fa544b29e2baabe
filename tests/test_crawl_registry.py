"""End to end: a real docker-registry (filesystem and S3 storage) crawled by ``regstat crawl``.

The registry is filled by ``populate`` (tests/support/scenario.py) with skopeo and the HTTP API; the
snapshot's tables must then equal its :class:`Expected` exactly. The committed trees the real
registry wrote (``tests/scenario_tree/``, the scenario's, and ``sample_data/``, the README's) are
checked the same way against their ``EXPECTED.json``, without a registry.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from support.components import Registry
from support.crawls import REPO_ROOT, assert_snapshot_matches, crawl_ok, read_table
from support.expected import ROW_TYPES, Expected, Populated
from support.scenario import populate
from support.storage_check import FilesystemView, verify_storage, verify_tree

COMMITTED_TREES = [REPO_ROOT / "tests" / "scenario_tree", REPO_ROOT / "sample_data"]
TABLES = tuple(ROW_TYPES)

# Markers from pyproject.toml, so `-m "not s3"` or `-m "not registry"` can narrow a run.
needs_registry = pytest.mark.registry
needs_s3 = pytest.mark.s3


# --- helpers ----------------------------------------------------------------------------------


def comparable(snapshot: Path, table: str) -> list[dict[str, Any]]:
    """A table without its timestamp columns (which differ between two pushes), sorted."""
    data = read_table(snapshot, table)
    keep = [f.name for f in data.schema if not pa.types.is_timestamp(f.type)]
    if table == "uploads":
        # An upload's uuid is random and its size is only visible on a filesystem.
        keep = [c for c in keep if c not in ("uuid", "size")]
    return sorted(
        data.select(keep).to_pylist(), key=lambda row: json.dumps(row, sort_keys=True, default=str)
    )


# --- the fixtures themselves (no crawler needed) --------------------------------------------------


@needs_registry
def test_populate_fs_storage_is_as_expected(populated_fs: Populated) -> None:
    verify_storage(populated_fs.registry, populated_fs.expected)
    # The scenario's special cases are really there.
    e = populated_fs.expected
    tagged = {t.digest for t in e.tags}
    present = {m.digest for m in e.manifests}
    assert e.names["web_old"] in present - tagged  # overwritten tag left it untagged
    assert e.names["web_deleted"] not in present  # deleted through the API ...
    assert e.names["web_deleted"] in {b.digest for b in e.blobs}  # ... its blob left behind
    referrers = {m.digest for m in e.manifests if m.subject_digest == e.names["api_v1"]}
    assert referrers == {e.names["signature"]}
    assert len(e.uploads) == 1


@needs_registry
@needs_s3
def test_populate_s3_storage_is_as_expected(populated_s3: Populated) -> None:
    verify_storage(populated_s3.registry, populated_s3.expected)


@needs_registry
@needs_s3
def test_populated_registries_hold_the_same_content(
    populated_fs: Populated, populated_s3: Populated
) -> None:
    """Pushes are deterministic: the same digests on either storage (uploads aside)."""
    fs, s3 = populated_fs.expected, populated_s3.expected
    for table in TABLES:
        if table != "uploads":
            assert fs.table(table) == s3.table(table), table


@pytest.mark.parametrize("tree", COMMITTED_TREES, ids=lambda p: p.name)
def test_committed_tree_is_as_described(tree: Path) -> None:
    """The committed tree holds what EXPECTED.json says (checked without regstat)."""
    expected = Expected.from_json(json.loads((tree / "EXPECTED.json").read_text()))
    verify_tree(FilesystemView(tree), expected)


# --- crawls ---------------------------------------------------------------------------------


@needs_registry
def test_crawl_filesystem_registry(populated_fs: Populated, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    meta = crawl_ok(populated_fs.registry, out)
    assert meta["source"]["driver"] == "filesystem"
    assert_snapshot_matches(out, meta, populated_fs.expected)


@needs_registry
@needs_s3
def test_crawl_s3_registry(populated_s3: Populated, tmp_path: Path) -> None:
    out = tmp_path / "snap"
    meta = crawl_ok(populated_s3.registry, out)
    assert meta["source"]["driver"] == "s3"
    assert_snapshot_matches(out, meta, populated_s3.expected, upload_sizes=False)


@needs_registry
@needs_s3
def test_filesystem_and_s3_crawls_give_identical_tables(
    populated_fs: Populated, populated_s3: Populated, tmp_path: Path
) -> None:
    crawl_ok(populated_fs.registry, tmp_path / "fs")
    crawl_ok(populated_s3.registry, tmp_path / "s3")
    for table in TABLES:
        fs_rows, s3_rows = comparable(tmp_path / "fs", table), comparable(tmp_path / "s3", table)
        assert fs_rows == s3_rows, f"{table} differs between filesystem and S3"


@pytest.mark.parametrize("tree", COMMITTED_TREES, ids=lambda p: p.name)
def test_crawl_committed_tree(tree: Path, tmp_path: Path) -> None:
    expected = Expected.from_json(json.loads((tree / "EXPECTED.json").read_text()))
    out = tmp_path / "snap"
    meta = crawl_ok(tree, out)
    assert_snapshot_matches(out, meta, expected)


@needs_registry
def test_crawl_schema1_image(make_registry: Callable[..., Registry], tmp_path: Path) -> None:
    """A Docker schema 1 image (pushed with skopeo --format v2s1; the registry stores the JWS
    payload): no config, layers without media type, sized from the stored blobs."""
    registry = make_registry("fs", schema1=True)
    expected = populate(registry, schema1=True)
    verify_storage(registry, expected)
    out = tmp_path / "snap"
    meta = crawl_ok(registry, out)
    assert_snapshot_matches(out, meta, expected)
