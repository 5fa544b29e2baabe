"""Snapshot schema 2: each digest stored once, in `digests`, and ids in the other tables
(regstat.snapshot.digest_ids).

- a crawl of scenario_tree: `digests` holds each digest some table names, once, numbered
  0..n-1 in the digests' order; every id resolves; the readers' tables equal what the crawl
  staged before numbering;
- digest_ids.write then digest_ids.read gives back random tables in the readers' form;
- the keyed analysis (report, plan-gc) decoded equals the text one (regstat sql, export),
  view by view, on the sample and on random registry graphs;
- decode and decode_rows: row order, NULLs, other integer columns.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from support.planner_graphs import random_registries
from support.planner_graphs import snapshot as graph_snapshot

from regstat import analysis, queries
from regstat.cli import main
from regstat.crawl import assemble, driver
from regstat.snapshot import digest_ids
from regstat.errors import EXIT_OK
from regstat.snapshot import DIGEST_COLUMNS, SCHEMAS, SORT_KEYS, STORED_SCHEMAS, STORED_TABLES, TABLES, Snapshot

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"


def multiset(table: pa.Table) -> Counter[tuple]:
    return Counter(tuple(row.values()) for row in table.to_pylist())


def sort_key(row: dict, keys: tuple[str, ...]) -> tuple:
    """A row's sort key as DuckDB orders it (ascending, NULLs last)."""
    return tuple((False, row[k]) if row[k] is not None else (True,) for k in keys)


# --- a crawl of scenario_tree ---------------------------------------------------------------------


def _staged_tables(stage: Path) -> dict[str, pa.Table]:
    """The snapshot tables as the crawl staged them before numbering digests: assembly's own
    queries (sql/snapshot_<table>.sql) over the staging parts, unranged, digests as text."""
    con = duckdb.connect()
    try:
        assemble._bind_staging(con, stage)
        assemble._restrict(con, None, (None, None))
        con.execute(f"CREATE TEMP TABLE stage_unsized_blobs AS {queries.load('snapshot_unsized_blobs')}")
        out = {}
        for name in assemble.SNAPSHOT_TABLES:
            logical = queries.load(f"snapshot_{name}").strip().rstrip(";")
            order = ", ".join(SORT_KEYS[name])
            table = con.sql(f"SELECT * FROM ({logical}) AS t ORDER BY {order}").to_arrow_table()
            out[name] = pa.Table.from_arrays(
                [table.column(f.name).cast(f.type) if table.column(f.name).null_count < table.num_rows
                 else pa.nulls(table.num_rows, f.type) for f in SCHEMAS[name]],
                schema=SCHEMAS[name],
            )
        return out
    finally:
        con.close()


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, pa.Table]]:
    """scenario_tree crawled, and the tables its crawl staged (readers' form)."""
    out = tmp_path_factory.mktemp("snap") / "s"
    staged: dict[str, pa.Table] = {}
    real = driver.assemble

    def assemble_and_keep(stage: Path, *args: Any, **kwargs: Any):  # type: ignore[no-untyped-def]
        result = real(stage, *args, **kwargs)
        staged.update(_staged_tables(stage))  # the staging parts stay until the snapshot is published
        return result

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(driver, "assemble", assemble_and_keep)
        result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.output
    assert set(staged) == set(assemble.SNAPSHOT_TABLES)
    return out, staged


def test_digests_are_each_named_digest_once_numbered_in_order(crawled: tuple[Path, dict[str, pa.Table]]) -> None:
    out, staged = crawled
    stored = pq.read_table(out / digest_ids.TABLE)
    assert stored.schema.remove_metadata() == STORED_SCHEMAS[digest_ids.TABLE]
    ids, digests = stored.column("digest_id").to_pylist(), stored.column("digest").to_pylist()
    named = {
        digest
        for name, columns in DIGEST_COLUMNS.items()
        for column in columns
        for digest in staged[name].column(column).to_pylist()
    } - {None}
    assert len(named) > 20  # the sample names manifests, configs, layers, subjects
    assert digests == sorted(named)  # each once, none left out, none extra, in order
    assert ids == list(range(len(named)))
    assert Snapshot.open(out).info.counts[digest_ids.TABLE] == len(named)


def test_every_id_resolves_to_the_digest_the_crawl_staged(crawled: tuple[Path, dict[str, pa.Table]]) -> None:
    """Decoded in Python from the stored Parquet files (not through digest_ids): each id
    column names the staged digest, and is NULL exactly where the staged digest is NULL."""
    out, staged = crawled
    digests = pq.read_table(out / digest_ids.TABLE).to_pylist()
    by_id = {row["digest_id"]: row["digest"] for row in digests}
    for name, keys in DIGEST_COLUMNS.items():
        stored = pq.read_table(out / name).to_pylist()
        want = staged[name].to_pylist()
        assert len(stored) == len(want) > 0, name
        for got_row, want_row in zip(stored, want, strict=True):  # both in the table's sort order
            for column, id_column in keys.items():
                got = got_row[id_column]
                if want_row[column] is None:
                    assert got is None, (name, want_row)
                else:
                    assert got is not None and by_id[got] == want_row[column], (name, want_row)
            others = {c: v for c, v in got_row.items() if c not in keys.values()}
            assert others == {c: v for c, v in want_row.items() if c not in keys}, name
    # Some nullable digest column holds NULLs in the sample (images have no subject).
    assert None in staged["manifests"].column("subject_digest").to_pylist()


def test_readers_see_what_the_crawl_staged(crawled: tuple[Path, dict[str, pa.Table]], tmp_path: Path) -> None:
    out, staged = crawled
    readers = {name: digest_ids.read(out, name) for name in TABLES}
    for name in assemble.SNAPSHOT_TABLES:
        assert readers[name].schema == SCHEMAS[name], name
        assert readers[name].to_pylist() == staged[name].to_pylist(), name
    # regstat sql's views (analysis.connect, text digests) hold the same rows.
    con = analysis.connect(Snapshot.open(out), reachable=False)
    try:
        for name in TABLES:
            assert multiset(con.sql(f"SELECT * FROM {name}").to_arrow_table()) == multiset(readers[name]), name
    finally:
        con.close()
    # Written again from the readers' form, the stored tables come out identical: the same
    # digests, the same ids, the same row order.
    again = tmp_path / "again"
    counts = digest_ids.write(again, readers)
    assert counts == {name: n for name, n in Snapshot.open(out).info.counts.items()}
    for name in STORED_TABLES:
        assert pq.read_table(again / name).equals(pq.read_table(out / name)), name


# --- write / read round trip ---------------------------------------------------------------------

_DIGESTS = [f"sha256:{c * 4}" for c in "0ab9f"]  # a small alphabet: repeats are the rule
_TIMES = [datetime(2026, 1, 1, tzinfo=UTC) + timedelta(seconds=s, microseconds=s) for s in (0, 1, 86400)]
_DIGEST_NAMES = {name: set(keys) for name, keys in DIGEST_COLUMNS.items()}


def _values(table: str, field: pa.Field) -> st.SearchStrategy:
    if field.name in _DIGEST_NAMES.get(table, ()):
        return st.sampled_from(_DIGESTS) | st.none()
    if field.name == "repository":
        return st.sampled_from(["a", "b/c", "d"])
    if pa.types.is_string(field.type):
        return st.none() | st.text(alphabet="xy/\x1bé", max_size=3)
    if pa.types.is_boolean(field.type):
        return st.none() | st.booleans()
    if pa.types.is_int32(field.type):
        return st.integers(-(2**31), 2**31 - 1)
    if pa.types.is_integer(field.type):
        return st.none() | st.integers(-(2**63), 2**63 - 1)
    if pa.types.is_timestamp(field.type):
        return st.none() | st.sampled_from(_TIMES)
    raise AssertionError(f"no strategy for {table}.{field.name}: {field.type}")


@st.composite
def readers_tables(draw: st.DrawFn) -> dict[str, pa.Table]:
    """Random tables in the readers' form: digests from a small alphabet, NULLs in any digest
    column (subjects above all), repeated digests and repeated rows."""
    tables = {}
    for name, schema in SCHEMAS.items():
        row = st.fixed_dictionaries({f.name: _values(name, f) for f in schema})
        rows = draw(st.lists(row, max_size=6))
        if rows and draw(st.booleans()):
            rows.append(dict(rows[0]))  # an exact repeat
        tables[name] = pa.Table.from_pylist(rows, schema=schema)
    return tables


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=readers_tables())
def test_write_then_read_gives_the_same_rows(tables: dict[str, pa.Table], tmp_path_factory) -> None:
    directory = tmp_path_factory.mktemp("roundtrip")
    counts = digest_ids.write(directory, tables)
    named = {d for name, columns in DIGEST_COLUMNS.items() for c in columns
             for d in tables[name].column(c).to_pylist()} - {None}
    stored = pq.read_table(directory / digest_ids.TABLE)
    assert stored.column("digest").to_pylist() == sorted(named)
    assert stored.column("digest_id").to_pylist() == list(range(len(named)))
    assert counts == {digest_ids.TABLE: len(named)} | {name: tables[name].num_rows for name in TABLES}
    for name in TABLES:
        assert pq.read_schema(next((directory / name).glob("*.parquet"))).remove_metadata() == STORED_SCHEMAS[name]
        back = digest_ids.read(directory, name)
        assert back.schema == SCHEMAS[name], name
        assert multiset(back) == multiset(tables[name]), name
        keys = [sort_key(row, SORT_KEYS[name]) for row in back.to_pylist()]
        assert keys == sorted(keys), name  # in SORT_KEYS order


# --- keyed and text analyses agree ----------------------------------------------------------------


def assert_keyed_equals_text(snapshot: Snapshot) -> int:
    """Every snapshot table, `reachable` and every analysis view: the keyed connection's rows,
    decoded, equal the text connection's (as multisets). Returns the rows compared."""
    text = analysis.connect(snapshot, keyed=False)
    keyed = analysis.connect(snapshot, keyed=True)
    compared = 0
    try:
        for name in (*TABLES, "reachable", *analysis.VIEWS):
            want = text.sql(f"SELECT * FROM {name}").to_arrow_table()
            raw = keyed.sql(f"SELECT * FROM {name}").to_arrow_table()
            got = digest_ids.decode(keyed, raw)
            assert got.column_names == want.column_names, name
            assert got.schema.types == want.schema.types, (name, got.schema, want.schema)
            assert multiset(got) == multiset(want), name
            # Keyed really is keyed: what holds digests as text holds integers there.
            for column in want.column_names:
                if digest_ids.is_digest_column(column) and pa.types.is_string(want.schema.field(column).type):
                    assert pa.types.is_integer(raw.schema.field(column).type), (name, column)
            compared += want.num_rows
    finally:
        text.close()
        keyed.close()
    return compared


def test_keyed_and_text_analyses_agree_on_the_sample(crawled: tuple[Path, dict[str, pa.Table]]) -> None:
    out, _ = crawled
    assert assert_keyed_equals_text(Snapshot.open(out)) > 100


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=random_registries())
def test_keyed_and_text_analyses_agree_on_random_graphs(tables: dict, tmp_path_factory) -> None:
    assert_keyed_equals_text(graph_snapshot(tmp_path_factory.mktemp("graph") / "s", tables))


# --- decode and decode_rows -------------------------------------------------------------------------


@pytest.fixture()
def con() -> Iterator[duckdb.DuckDBPyConnection]:
    con = duckdb.connect()
    con.execute(
        "CREATE TABLE digests AS SELECT * FROM (VALUES (0, 'sha256:aa'), (1, 'sha256:bb'), (2, 'sha256:cc')) "
        "AS t(digest_id, digest)"
    )
    yield con
    con.close()


TEXT = {0: "sha256:aa", 1: "sha256:bb", 2: "sha256:cc", None: None}


def test_decode_keeps_row_order_nulls_and_other_columns(con: duckdb.DuckDBPyConnection) -> None:
    n = 20_000  # enough rows for DuckDB's joins to run in parallel and out of order
    ids = [None if i % 7 == 3 else (i * 7919) % 3 for i in range(n)]
    subjects = [None if i % 2 else (i * 31) % 3 for i in range(n)]
    table = pa.table({
        "repository": [f"r{i}" for i in range(n)],
        "digest": pa.array(ids, pa.int64()),
        "size": pa.array([i % 3 for i in range(n)], pa.int64()),  # integers that look like ids
        "digests": pa.array([i % 3 for i in range(n)], pa.int64()),  # a count, not a digest
        "subject_digest": pa.array(subjects, pa.int64()),
    })
    out = digest_ids.decode(con, table)
    assert out.column_names == table.column_names
    assert out.column("digest").to_pylist() == [TEXT[i] for i in ids]
    assert out.column("subject_digest").to_pylist() == [TEXT[i] for i in subjects]
    assert pa.types.is_string(out.schema.field("digest").type)
    for column in ("repository", "size", "digests"):
        assert out.column(column).to_pylist() == table.column(column).to_pylist(), column
        assert out.schema.field(column).type == table.schema.field(column).type, column


def test_decode_leaves_digest_columns_that_hold_text_alone(con: duckdb.DuckDBPyConnection) -> None:
    """Only integer columns hold ids (decode's contract): a digest column already in text, next
    to one of ids, stays as it is."""
    table = pa.table({"manifest_digest": ["sha256:text", None], "digest": pa.array([1, None], pa.int64())})
    out = digest_ids.decode(con, table)
    assert out.to_pylist() == [{"manifest_digest": "sha256:text", "digest": "sha256:bb"},
                               {"manifest_digest": None, "digest": None}]


@settings(max_examples=50, deadline=None)
@given(ids=st.lists(st.none() | st.integers(0, 2), max_size=50))
def test_decode_any_order_of_ids(ids: list[int | None]) -> None:
    con = duckdb.connect()
    try:
        con.execute("CREATE TABLE digests AS SELECT * FROM (VALUES (0, 'sha256:aa'), (1, 'sha256:bb'), "
                    "(2, 'sha256:cc')) AS t(digest_id, digest)")
        table = pa.table({"layer_digest": pa.array(ids, pa.int64()), "n": pa.array(range(len(ids)), pa.int64())})
        out = digest_ids.decode(con, table)
        assert out.to_pylist() == [{"layer_digest": TEXT[i], "n": k} for k, i in enumerate(ids)]
    finally:
        con.close()


def test_decode_rows_leaves_other_integer_columns_alone(con: duckdb.DuckDBPyConnection) -> None:
    rows = [
        {"repository": "a", "digest": 2, "size": 1, "manifests": 0, "subject_digest": None, "tags": 2},
        {"repository": "b", "digest": 0, "size": 0, "manifests": 2, "subject_digest": 1, "tags": 1},
        {"repository": "c", "digest": "sha256:text", "size": 5, "manifests": 1, "subject_digest": 0, "tags": 0},
    ]
    assert digest_ids.decode_rows(con, rows) == [
        {"repository": "a", "digest": "sha256:cc", "size": 1, "manifests": 0, "subject_digest": None, "tags": 2},
        {"repository": "b", "digest": "sha256:aa", "size": 0, "manifests": 2, "subject_digest": "sha256:bb", "tags": 1},
        {"repository": "c", "digest": "sha256:text", "size": 5, "manifests": 1, "subject_digest": "sha256:aa",
         "tags": 0},
    ]
    plain = [{"repository": "a", "size": 3, "manifests": 1}]
    assert digest_ids.decode_rows(con, plain) == plain
