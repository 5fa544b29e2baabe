"""The analysis SQL: portable (sqlglot, three dialects), and exact against independent Python.

The expected values here are computed in Python straight from the Parquet tables (or the rows
written for a fake snapshot), from docs/design.md's definitions, never by re-running the SQL.
"""

from __future__ import annotations

import json
import re
import tempfile
from importlib import resources
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import sqlglot
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlglot import exp
from support.model import Model
from support.snapshots import BLOBS, MANIFESTS, NAMES, SAMPLE, build, rows, write_snapshot

from regstat.analysis import connection as analysis, reachability
from regstat.analysis.engine import DuckDB
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_OK
from regstat.analysis.reachability import ReachabilityError
from regstat.errors import SnapshotError
from regstat.snapshot import ADDED_COLUMNS, SCHEMA_VERSION, TABLES, Snapshot

SQL_FILES = sorted(p for p in resources.files("regstat.sql").iterdir() if p.name.endswith(".sql"))
DIALECTS = ("duckdb", "spark", "trino")


# --- portability ------------------------------------------------------------------------------

_FORBIDDEN_FUNCTIONS = {"any_value", "arg_max", "arg_min", "hash", "read_parquet", "read_csv", "list", "struct_pack"}


def _strip_comments(sql: str) -> str:
    return re.sub(r"--[^\n]*", "", sql)


def portability_problems(sql: str, dialect: str) -> list[str]:
    """What in `sql` is not portable DuckDB / Spark SQL / Trino (docs/design.md "Portable SQL")."""
    problems = []
    body = _strip_comments(sql)
    if "::" in body:
        problems.append("'::' cast")
    if not re.match(r"\s*(SELECT|WITH)\b", body, re.IGNORECASE):
        problems.append("not a plain SELECT (FROM-first?)")
    if re.search(r"\.parquet|'/", body):
        problems.append("a file path")
    tree = sqlglot.parse_one(sql, read=dialect)
    # An ORDER BY item without NULLS FIRST/LAST: where NULLs go depends on the engine (DuckDB
    # and Trino put them last, Spark first, ascending), so its rows' order would too.
    orders = []
    for d in DIALECTS:
        try:
            orders.append([o.args.get("nulls_first") for o in sqlglot.parse_one(sql, read=d).find_all(exp.Ordered)])
        except sqlglot.ParseError:
            pass  # not this dialect's SQL at all: the other checks say why
    if any(len(set(item)) > 1 for item in zip(*orders, strict=True)):
        problems.append("ORDER BY without NULLS FIRST/LAST")
    for node in tree.walk():
        if isinstance(node, exp.With) and node.args.get("recursive"):
            problems.append("WITH RECURSIVE")
        elif isinstance(node, exp.Qualify):
            problems.append("QUALIFY")
        elif isinstance(node, exp.Group) and node.args.get("all"):
            problems.append("GROUP BY ALL")
        elif isinstance(node, exp.Star) and any(node.args.get(k) for k in ("except", "except_", "replace", "rename")):
            problems.append("* EXCLUDE / REPLACE")
        elif isinstance(node, (exp.AnyValue, exp.ArgMax, exp.ArgMin, exp.Array, exp.Struct, exp.Map)):
            problems.append(type(node).__name__)
        elif isinstance(node, (exp.Anonymous, exp.Func)) and _function_name(node) in _FORBIDDEN_FUNCTIONS:
            problems.append(_function_name(node))
        elif isinstance(node, exp.Div) and not any(isinstance(side, exp.Cast) for side in (node.left, node.right)):
            problems.append("'/' without a cast")
        elif isinstance(node, exp.Select):
            distinct_counts = [
                c
                for c in node.find_all(exp.Count)
                if isinstance(c.this, exp.Distinct) and c.find_ancestor(exp.Select) is node
            ]
            if len(distinct_counts) > 1:
                problems.append("several COUNT(DISTINCT ...) in one SELECT")
    return problems


def _function_name(node: exp.Expression) -> str:
    if isinstance(node, exp.Anonymous):
        return str(node.this).lower()
    return node.sql_name().lower()


@pytest.mark.parametrize("path", SQL_FILES, ids=lambda p: p.name)
@pytest.mark.parametrize("dialect", DIALECTS)
def test_sql_files_round_trip_and_stay_portable(path, dialect: str) -> None:
    sql = path.read_text()
    trees = sqlglot.parse(sql, read=dialect)
    assert len([t for t in trees if t is not None]) == 1, "one statement per file"
    tree = trees[0]
    generated = tree.sql(dialect=dialect)
    again = sqlglot.parse_one(generated, read=dialect)
    # Equal trees: nothing the dialect could not express was dropped or rewritten.
    assert again == tree
    assert again.sql(dialect=dialect) == generated
    assert portability_problems(sql, dialect) == []


@pytest.mark.parametrize(
    "sql, problem",
    [
        ("WITH RECURSIVE r AS (SELECT 1 AS x) SELECT x FROM r", "WITH RECURSIVE"),
        ("SELECT a FROM t QUALIFY row_number() OVER (ORDER BY a) = 1", "QUALIFY"),
        ("SELECT a, count(*) FROM t GROUP BY ALL", "GROUP BY ALL"),
        ("SELECT * EXCLUDE (a) FROM t", "* EXCLUDE / REPLACE"),
        ("SELECT a::BIGINT FROM t", "'::' cast"),
        ("SELECT any_value(a) FROM t", "AnyValue"),
        ("SELECT arg_max(a, b) FROM t", "ArgMax"),
        ("SELECT hash(a) FROM t", "hash"),
        ("SELECT a FROM read_parquet('x/*.parquet')", "a file path"),
        ("SELECT count(DISTINCT a), count(DISTINCT b) FROM t", "several COUNT(DISTINCT ...) in one SELECT"),
        ("SELECT a / b FROM t", "'/' without a cast"),
        ("SELECT [a, b] AS l FROM t", "Array"),
        ("FROM t SELECT a", "not a plain SELECT (FROM-first?)"),
        ("SELECT a FROM t ORDER BY a", "ORDER BY without NULLS FIRST/LAST"),
        ("SELECT row_number() OVER (ORDER BY a DESC, b) AS n FROM t", "ORDER BY without NULLS FIRST/LAST"),
    ],
)
def test_portability_check_catches(sql: str, problem: str) -> None:
    assert problem in portability_problems(sql, "duckdb")


_ENGINE_STATEMENT = re.compile(r"""f?["'](?:CREATE|INSERT|COPY|SET|ALTER|DROP)\b|read_parquet\(|EXCLUDE \(""")


def test_engine_specific_statements_live_in_one_module() -> None:
    # The analysis and what reads it (plan, report, cli) run an engine's own statements (CREATE
    # TABLE AS, INSERT, COPY, SET, read_parquet, * EXCLUDE) through the engine interface only:
    # DuckDB's in regstat.analysis.engine, Spark's in regstat.analysis.spark; their queries
    # are in sql/.
    package = Path(__file__).resolve().parent.parent / "regstat"
    found = [
        f"{path.relative_to(package)}:{number}"
        for stage in ("analysis", "plan", "report", "cli")
        for path in sorted((package / stage).rglob("*.py"))
        for number, line in enumerate(path.read_text().splitlines(), 1)
        if _ENGINE_STATEMENT.search(line) and path.name not in ("engine.py", "spark.py")
    ]
    assert found == []


# --- the sample registry -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def sample(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("snap") / "s"
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    return out


@pytest.fixture(scope="module")
def sample_model(sample: Path) -> Model:
    return Model({name: digest_ids.read(sample, name).to_pylist() for name in TABLES})


@pytest.fixture()
def sample_con(sample: Path):
    con = analysis.connect(Snapshot.open(sample))
    yield con
    con.close()


def test_sample_orphans(sample_con, sample_model: Model) -> None:
    got = {(r, d): (reason, xb) for r, d, reason, xb in rows(
        sample_con, "SELECT repository, digest, reason, exclusive_bytes FROM orphaned_manifests"
    )}
    # The overwritten apps/web manifest is the only orphan: tools/cli's untagged index
    # children and apps/api's signature are reached.
    assert set(got) == sample_model.orphans() == {("apps/web", NAMES["web_old"])}
    reason, exclusive = got[("apps/web", NAMES["web_old"])]
    assert reason == "untagged"
    assert exclusive == sample_model.exclusive_bytes({("apps/web", NAMES["web_old"])})
    assert exclusive > 557  # its manifest blob, plus the config and layer only it has
    reached = {(r, d) for r, d in rows(sample_con, "SELECT repository, digest FROM reachable")}
    assert ("apps/api", NAMES["signature"]) in reached
    assert {d for r, d in reached if r == "tools/cli"} >= sample_model.children[("tools/cli", NAMES["cli_index"])]


def test_sample_reachable_depths(sample_con, sample_model: Model) -> None:
    got = {(r, d): depth for r, d, depth in rows(sample_con, "SELECT repository, digest, depth FROM reachable")}
    assert got == sample_model.reachable()
    assert len(got) == len(set(got))


def test_sample_unreferenced_blobs(sample_con, sample_model: Model) -> None:
    got = dict(rows(sample_con, "SELECT digest, size FROM unreferenced_blobs"))
    assert set(got) == sample_model.unreferenced_blobs()
    assert {NAMES["unreferenced_blob"], NAMES["web_deleted"]} <= set(got)
    assert all(got[d] == sample_model.size(d) for d in got)


def test_sample_layer_sharing_and_dedup(sample_con, sample_model: Model) -> None:
    got = {r[0]: tuple(r[1:]) for r in rows(
        sample_con, "SELECT digest, size, manifests, repositories, savings_bytes FROM layer_sharing"
    )}
    assert got == sample_model.layer_sharing()
    base = got[NAMES["base_layer"]]
    assert base[1:3] == (4, 3)  # alpine, api, web's two images: 4 manifests in 3 repositories
    assert rows(sample_con, "SELECT physical_bytes, logical_bytes, dedup_savings_bytes FROM dedup_summary") == [
        sample_model.dedup_summary()
    ]
    media = dict(rows(sample_con, "SELECT digest, media_type FROM layer_sharing"))
    assert all(media.values())


def test_sample_repository_usage(sample_con, sample_model: Model) -> None:
    got = {r[0]: tuple(r[1:]) for r in rows(
        sample_con,
        "SELECT repository, tags, manifests, orphaned_manifests, logical_bytes, exclusive_bytes, shared_bytes,"
        " orphaned_bytes FROM repository_usage",
    )}
    assert got == sample_model.repository_usage()
    assert got["apps/web"][2] == 1 and got["tools/cli"][1:3] == (6, 0)


def test_views_by_name_in_regstat_sql(sample: Path) -> None:
    for view in analysis.VIEWS:
        result = CliRunner().invoke(main, ["sql", str(sample), f"SELECT count(*) AS n FROM {view}", "-f", "json"])
        assert result.exit_code == 0, result.stderr
    help_text = CliRunner().invoke(main, ["sql", "--help"]).stdout
    assert all(view in help_text for view in analysis.VIEWS)


def test_duckdb_spills_under_tmpdir_not_the_working_directory(
    sample: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # DuckDB's default for an in-memory database is `.tmp` in the working directory, which a
    # cron job (working directory /) cannot or should not write.
    monkeypatch.setenv("TMPDIR", str(tmp_path))
    monkeypatch.setattr(tempfile, "tempdir", None)  # re-read TMPDIR
    con = analysis.connect(Snapshot.open(sample), memory_limit="64MB", reachable=False)
    try:
        spill, limit = con.execute(
            "SELECT current_setting('temp_directory'), current_setting('memory_limit')"
        ).fetchone()
    finally:
        con.close()
    assert Path(spill).parent == tmp_path and limit.startswith("6")


def test_regstat_sql_computes_reachability_only_for_queries_that_read_it(
    sample: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    computed: list[int] = []
    real = reachability.materialise
    monkeypatch.setattr(reachability, "materialise", lambda con, **kw: computed.append(1) or real(con, **kw))
    snapshot = Snapshot.open(sample)
    analysis.query(snapshot, "SELECT count(*) FROM tags")
    analysis.query(snapshot, "SELECT count(*) FROM media_types")  # a view that does not need it
    assert computed == []
    # Through a view, and directly: each computes it, and the orphan is found.
    _, orphaned = analysis.query(snapshot, "SELECT repository FROM orphaned_manifests")
    assert orphaned == [("apps/web",)] and len(computed) == 1
    _, tagged = analysis.query(snapshot, "SELECT count(*) FROM reachable WHERE depth = 0")
    assert tagged[0][0] > 0 and len(computed) == 2


def test_regstat_sql_ranks_media_types_only_for_queries_that_read_them(
    sample: Path, sample_con, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The ranks read every descriptor; layer sharing and friends need them, tags do not.
    computed: list[int] = []
    real = analysis.media_type_ranks

    def counted(con, *, empty: bool = False) -> None:
        computed.extend([] if empty else [1])
        real(con, empty=empty)

    monkeypatch.setattr(analysis, "media_type_ranks", counted)
    snapshot = Snapshot.open(sample)
    analysis.query(snapshot, "SELECT count(*) FROM tags")
    assert computed == []
    _, ranks = analysis.query(snapshot, "SELECT count(*) FROM media_type_ranks")
    _, types = analysis.query(snapshot, "SELECT count(DISTINCT media_type) FROM descriptors")
    assert ranks == types and ranks[0][0] > 0 and len(computed) == 1
    # Through a view: the same media types as the eager connection's.
    _, lazy = analysis.query(snapshot, "SELECT digest, media_type FROM layer_sharing ORDER BY digest")
    assert lazy == rows(sample_con, "SELECT digest, media_type FROM layer_sharing ORDER BY digest")
    assert all(media_type for _, media_type in lazy) and len(computed) == 2


# --- fake snapshots: random registry graphs ----------------------------------------------------

REPOS = ["a", "b/c", "d"]


@st.composite
def registries(draw) -> dict:
    contents = {
        d: {
            "children": draw(st.lists(st.sampled_from(MANIFESTS), max_size=3, unique=True)),
            "subject": draw(st.none() | st.sampled_from(MANIFESTS)),
            "config": draw(st.none() | st.sampled_from(BLOBS)),
            "layers": draw(st.lists(st.sampled_from(BLOBS), max_size=3)),  # repeats allowed
        }
        for d in MANIFESTS
    }
    repos = draw(st.lists(st.sampled_from(REPOS), min_size=1, max_size=3, unique=True))
    holdings = {r: draw(st.lists(st.sampled_from(MANIFESTS), max_size=7, unique=True)) for r in repos}
    tagged = {r: draw(st.lists(st.sampled_from(MANIFESTS), max_size=3, unique=True)) for r in repos}  # may dangle
    roots = {r: draw(st.lists(st.sampled_from(MANIFESTS), max_size=1)) for r in repos}  # rare in most sources
    return build(contents, holdings, tagged, roots)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=registries())
def test_random_graphs_agree_with_the_python_fixed_point(tables: dict, tmp_path_factory) -> None:
    snapshot = write_snapshot(tmp_path_factory.mktemp("fake") / "s", tables)
    model = Model(tables)
    con = analysis.connect(snapshot)
    try:
        got = {(r, d): depth for r, d, depth in rows(con, "SELECT repository, digest, depth FROM reachable")}
        assert len(got) == len(rows(con, "SELECT 1 FROM reachable"))  # one row per manifest
        assert got == model.reachable()
        query = "SELECT repository, digest, exclusive_bytes FROM orphaned_manifests"
        orphans = {(r, d): x for r, d, x in rows(con, query)}
        assert set(orphans) == model.orphans()
        assert all(x == model.exclusive_bytes({p}) for p, x in orphans.items())
        assert set(d for (d,) in rows(con, "SELECT digest FROM unreferenced_blobs")) == model.unreferenced_blobs()
        sharing = {r[0]: tuple(r[1:]) for r in rows(
            con, "SELECT digest, size, manifests, repositories, savings_bytes FROM layer_sharing"
        )}
        assert sharing == model.layer_sharing()
        assert rows(con, "SELECT physical_bytes, logical_bytes, dedup_savings_bytes FROM dedup_summary") == [
            model.dedup_summary()
        ]
        usage = {r[0]: tuple(r[1:]) for r in rows(
            con,
            "SELECT repository, tags, manifests, orphaned_manifests, logical_bytes, exclusive_bytes,"
            " shared_bytes, orphaned_bytes FROM repository_usage",
        )}
        assert usage == model.repository_usage()
        media: dict[str, str] = {}  # the smallest config or layer media type naming each blob
        for d in tables["descriptors"]:
            if d["role"] in ("config", "layer"):
                media[d["digest"]] = min(media.get(d["digest"], d["media_type"]), d["media_type"])
        referenced = {r[0]: r[1] for r in rows(con, "SELECT digest, media_type FROM blob_references")}
        assert {d: m for d, m in referenced.items() if m is not None} == media
    finally:
        con.close()


def as_schema(snapshot: Snapshot, version: int) -> Snapshot:
    """`snapshot` as regstat wrote it at schema `version`: without the columns later versions
    added (ADDED_COLUMNS)."""
    for added, tables in ADDED_COLUMNS.items():
        for table, columns in tables.items() if added > version else ():
            for part in (snapshot.path / table).glob("*.parquet"):
                pq.write_table(pq.read_table(part).drop_columns(list(columns)), part)
    meta = json.loads((snapshot.path / "snapshot.json").read_text())
    (snapshot.path / "snapshot.json").write_text(json.dumps({**meta, "schema_version": version}))
    return Snapshot.open(snapshot.path)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(tables=registries())
def test_a_schema_2_snapshot_groups_every_descriptor_and_counts_the_same(tables: dict, tmp_path_factory) -> None:
    # Version 2 has no `repeated`: it reads as NULL, unknown, and every descriptor is grouped.
    # (Nor `root`, which this storage-layout snapshot reads as false: it has no roots.)
    tables = {**tables, "manifests": [{**m, "root": False} for m in tables["manifests"]]}
    base = tmp_path_factory.mktemp("v2")
    views = ("manifest_references", "repository_references", "blob_references", "layer_sharing", "repository_usage")
    results = []
    for snapshot in (write_snapshot(base / "v3", tables), as_schema(write_snapshot(base / "v2", tables), 2)):
        con = analysis.connect(snapshot)
        try:
            results.append({v: rows(con, f"SELECT * FROM {v} ORDER BY ALL") for v in views})
            results[-1]["nulls"] = rows(con, "SELECT count(*) FILTER (WHERE repeated IS NULL) FROM descriptors")
        finally:
            con.close()
    v3, v2 = results
    assert v2.pop("nulls") == [(len(tables["descriptors"]),)] and v3.pop("nulls") == [(0,)]
    assert v2 == v3


@pytest.mark.parametrize("kind, root", [("oci-layout", True), ("storage-layout", False), ("ecr", False)])
def test_before_schema_4_roots_are_what_the_source_implies(tmp_path: Path, kind: str, root: bool) -> None:
    # Schema 3 has no manifests.root. Only OCI layouts have roots, and which of a layout's
    # index.json entries were unnamed is unknown: each manifest counts as one (fail closed).
    tables = build({m: _content() for m in MANIFESTS}, {"a": MANIFESTS[:3]}, {"a": [MANIFESTS[0]]})
    snapshot = write_snapshot(tmp_path / "s", tables)
    meta = json.loads((snapshot.path / "snapshot.json").read_text())
    (snapshot.path / "snapshot.json").write_text(json.dumps({**meta, "source": {"kind": kind, "location": "/x"}}))
    con = analysis.connect(as_schema(Snapshot.open(snapshot.path), 3))
    try:
        assert rows(con, "SELECT DISTINCT root FROM manifests") == [(root,)]
        orphans = rows(con, "SELECT count(*) FROM orphaned_manifests")[0][0]
        assert orphans == (0 if root else 2)
    finally:
        con.close()


def test_snapshots_of_other_versions_are_refused(tmp_path: Path) -> None:
    snapshot = write_snapshot(tmp_path / "s", {})
    meta = json.loads((snapshot.path / "snapshot.json").read_text())
    for version in (1, SCHEMA_VERSION + 1):
        (snapshot.path / "snapshot.json").write_text(json.dumps({**meta, "schema_version": version}))
        unsupported = f"schema version {version} is not supported.*reads versions 2, 3, 4, 5\\)"
        with pytest.raises(SnapshotError, match=unsupported):
            Snapshot.open(snapshot.path)


def _content(children=(), subject=None) -> dict:
    return {"children": list(children), "subject": subject, "config": None, "layers": []}


def test_nested_indexes_referrers_of_referrers_and_cycles(tmp_path: Path) -> None:
    m = MANIFESTS
    contents = {d: _content() for d in MANIFESTS}
    contents[m[0]] = _content(children=[m[1]])  # tagged index -> nested index -> image
    contents[m[1]] = _content(children=[m[2]])
    contents[m[3]] = _content(subject=m[2])  # signature of the image
    contents[m[4]] = _content(subject=m[3])  # attestation of the signature
    contents[m[5]] = _content(children=[m[6]])  # untagged cycle: orphaned, and terminates
    contents[m[6]] = _content(children=[m[5]])
    tables = build(contents, {"a": list(MANIFESTS)}, {"a": [m[0]]})
    con = analysis.connect(write_snapshot(tmp_path / "s", tables))
    got = {d: (depth, via) for _, d, depth, via in rows(con, "SELECT repository, digest, depth, via FROM reachable")}
    assert got == {m[0]: (0, "tag"), m[1]: (1, "index"), m[2]: (2, "index"), m[3]: (3, "referrer"),
                   m[4]: (4, "referrer")}
    reasons = dict(rows(con, "SELECT digest, reason FROM orphaned_manifests"))
    assert reasons == {m[5]: "child of an orphaned index", m[6]: "child of an orphaned index"}


def test_depth_bound_is_an_error_never_a_truncation(tmp_path: Path) -> None:
    m = MANIFESTS
    contents = {d: _content(children=[m[i + 1]] if i + 1 < len(m) else []) for i, d in enumerate(m)}
    tables = build(contents, {"a": list(m)}, {"a": [m[0]]})
    db = DuckDB(analysis.connect(write_snapshot(tmp_path / "s", tables)))  # the chain is 6 steps deep
    assert reachability.materialise(db, max_depth=6) == 6
    with pytest.raises(ReachabilityError, match="after 5 steps"):
        reachability.materialise(db, max_depth=5)
