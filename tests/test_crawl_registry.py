"""End to end: a real docker-registry (filesystem and S3 storage) crawled by ``regstat crawl``.

The registry is filled by ``populate`` (tests/scenario.py) with skopeo and the HTTP API; the
snapshot's tables must then equal its :class:`Expected` exactly. The committed trees the real
registry wrote (``tests/scenario_tree/``, the scenario's, and ``sample_data/``, the README's) are
checked the same way against their ``EXPECTED.json``, without a registry.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any, Callable, Iterable, Sequence

import pyarrow as pa
import pytest

from regstat.snapshot import digest_ids
from regstat.snapshot import DIGEST_COLUMNS

from components import Registry, isolated_env
from expected import ROW_TYPES, Expected, Populated
from scenario import populate
from storage_check import FilesystemView, verify_storage, verify_tree

REPO_ROOT = Path(__file__).resolve().parent.parent
COMMITTED_TREES = [REPO_ROOT / "tests" / "scenario_tree", REPO_ROOT / "sample_data"]
TABLES = tuple(ROW_TYPES)

# Markers from pyproject.toml, so `-m "not s3"` or `-m "not registry"` can narrow a run.
needs_registry = pytest.mark.registry
needs_s3 = pytest.mark.s3


# --- helpers ----------------------------------------------------------------------------------


def run_crawl(registry_or_source: Registry | str | Path, out: Path) -> subprocess.CompletedProcess[str]:
    """``python -m regstat crawl SOURCE --output OUT`` in a child process, with dummy AWS
    credentials and no AWS_CA_BUNDLE; S3 sources get ``--endpoint-url``."""
    argv = [sys.executable, "-m", "regstat", "crawl"]
    if isinstance(registry_or_source, Registry):
        argv.append(registry_or_source.source)
        if registry_or_source.s3 is not None:
            argv += ["--endpoint-url", registry_or_source.s3.endpoint_url]
    else:
        argv.append(str(registry_or_source))
    argv += ["--output", str(out)]
    return subprocess.run(
        argv, capture_output=True, text=True, env=isolated_env(), cwd=REPO_ROOT, timeout=120
    )


def crawl_ok(registry_or_source: Registry | str | Path, out: Path) -> dict[str, Any]:
    """Crawl, require a complete snapshot, and return its snapshot.json."""
    result = run_crawl(registry_or_source, out)
    assert result.returncode == 0, (
        f"crawl failed ({result.returncode}):\n{result.stdout}\n{result.stderr}"
    )
    meta = json.loads((out / "snapshot.json").read_text())
    assert meta["complete"] is True and meta["errors"] == [], meta
    return meta


def read_table(snapshot: Path, table: str) -> pa.Table:
    """Every part of one snapshot table, as readers see it (digests as text)."""
    return digest_ids.read(snapshot, table)


def rows(snapshot: Path, table: str, columns: Sequence[str]) -> Counter[tuple[Any, ...]]:
    """The snapshot table's rows, projected on ``columns``, as a multiset (duplicates count)."""
    data = read_table(snapshot, table).select(list(columns)).to_pylist()
    return Counter(tuple(row[c] for c in columns) for row in data)


def assert_rows_equal(
    table: str,
    got: Counter[tuple[Any, ...]],
    want: Iterable[tuple[Any, ...]],
    columns: Sequence[str],
) -> None:
    """Fail with the unexpected and missing rows unless ``got`` equals ``want`` exactly."""
    want_counter = Counter(tuple(row) for row in want)
    if got == want_counter:
        return
    unexpected = sorted((got - want_counter).elements(), key=repr)
    missing = sorted((want_counter - got).elements(), key=repr)
    lines = [f"table {table} differs; columns {list(columns)}"]
    lines += [f"  unexpected {row}" for row in unexpected]
    lines += [f"  missing    {row}" for row in missing]
    pytest.fail("\n".join(lines), pytrace=False)


def assert_snapshot_matches(
    snapshot: Path, meta: dict[str, Any], expected: Expected, *, upload_sizes: bool = True
) -> None:
    """Every table equals ``expected`` on the columns Expected knows, and counts agree.

    ``upload_sizes=False`` for S3: the driver keeps a partial upload's bytes in a multipart
    upload, not in an object, so a storage crawl cannot see them.
    """
    for table, row_type in ROW_TYPES.items():
        columns = list(row_type._fields)
        want = expected.table(table)
        if table == "uploads" and not upload_sizes:
            columns.remove("size")
            want = {(u.repository, u.uuid) for u in expected.uploads}
        assert_rows_equal(table, rows(snapshot, table, columns), want, columns)
        assert meta["counts"][table] == len(expected.table(table)), (table, meta["counts"])
    # `digests`: each digest any table names, once.
    named = {
        getattr(row, column)
        for table, columns in DIGEST_COLUMNS.items() for row in expected.table(table) for column in columns
    } - {None}
    assert meta["counts"][digest_ids.TABLE] == len(named), meta["counts"]
    assert set(read_table(snapshot, digest_ids.TABLE).column("digest").to_pylist()) == named


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
