"""``regstat crawl`` in a child process, and its snapshot read back and checked.

:func:`run_crawl` and :func:`crawl_ok` crawl a registry's storage (or any source) with dummy
AWS credentials; :func:`api_crawl` crawls a registry's HTTP API with a password on stdin and
no Docker configuration. :func:`assert_snapshot_matches` checks every table against an
:class:`~support.expected.Expected`; :func:`tables` reads every table for comparisons, and
:func:`assert_same_tables` compares two snapshots whole (an incremental crawl and a fresh one).
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.snapshot import DIGEST_COLUMNS, TABLES, digest_ids

from .auth_registries import USER
from .components import Registry, isolated_env
from .expected import ROW_TYPES, Expected

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
API_TABLES = ("repositories", "tags", "manifests", "descriptors", "blobs", "repository_blobs", "uploads")


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


def json_crawl(source: str, out: Path | None, *args: str, **invoke: Any) -> tuple[int, dict[str, Any], str]:
    """``regstat crawl SOURCE -o OUT --json ARGS`` in this process (no ``-o`` when OUT is None:
    ARGS say where, e.g. ``--into``): (exit code, the --json summary or {}, stderr).
    ``invoke``: CliRunner.invoke's keywords (``input``, ``env``)."""
    output = ["-o", str(out)] if out is not None else []
    result = CliRunner().invoke(main, ["crawl", source, *output, "--json", *args], **invoke)
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.stderr, result.stderr
    summary = json.loads(result.stdout) if result.stdout.strip() else {}
    return result.exit_code, summary, result.stderr


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


def api_crawl(
    url: str,
    out: Path,
    *args: str,
    password: str | None = None,
    env: dict[str, str] | None = None,
) -> subprocess.CompletedProcess[str]:
    """``python -m regstat crawl URL --output OUT ARGS``; the password goes to stdin. The
    machine's Docker configuration is never read (DOCKER_CONFIG points at an empty place)."""
    argv = [sys.executable, "-m", "regstat", "crawl", url, "--output", str(out), *args]
    if password is not None:
        argv += ["--username", USER, "--password-stdin"]
    extra = {"DOCKER_CONFIG": str(out.parent / "no-docker-config"), **(env or {})}
    return subprocess.run(
        argv,
        input=f"{password}\n" if password is not None else "",
        capture_output=True,
        text=True,
        env=isolated_env(extra),
        cwd=REPO_ROOT,
        timeout=120,
    )


def crawled(result: subprocess.CompletedProcess[str], out: Path, code: int = 0) -> dict[str, Any]:
    assert result.returncode == code, f"exit {result.returncode}:\n{result.stdout}\n{result.stderr}"
    return json.loads((out / "snapshot.json").read_text())


def tables(snapshot: Path) -> dict[str, list[dict[str, Any]]]:
    """Every table without its timestamp columns, rows sorted."""
    out = {}
    for name in API_TABLES:
        data = digest_ids.read(snapshot, name)
        keep = [f.name for f in data.schema if not pa.types.is_timestamp(f.type)]
        out[name] = sorted(data.select(keep).to_pylist(), key=lambda r: json.dumps(r, default=str))
    return out


def without(rows: list[dict[str, Any]], repository: str) -> list[dict[str, Any]]:
    return [r for r in rows if r.get("repository") != repository]


def snapshot_tables(snapshot: Path) -> dict[str, Any]:
    """Every table as readers see it, rows sorted, and snapshot.json's errors and counts."""
    out: dict[str, Any] = {}
    for name in TABLES:
        rows = digest_ids.read(snapshot, name).to_pylist()
        out[name] = sorted(rows, key=lambda r: json.dumps(r, default=str, sort_keys=True))
    meta = json.loads((snapshot / "snapshot.json").read_text())
    out["errors"], out["counts"] = meta["errors"], meta["counts"]
    return out


def assert_same_tables(incremental: Path, fresh: Path) -> None:
    got, want = snapshot_tables(incremental), snapshot_tables(fresh)
    for name in want:
        assert got[name] == want[name], f"table {name} differs from a fresh crawl's"


def sample_copy(tree: Path) -> Path:
    """A copy of sample_data/ at `tree`, its files aged as the README's first command does."""
    subprocess.run(["cp", "-a", str(REPO_ROOT / "sample_data"), str(tree)], check=True)
    subprocess.run([sys.executable, str(REPO_ROOT / "scripts" / "restore_sample_ages.py"), str(tree)], check=True,
                   capture_output=True)
    return tree
