"""Every file in sql/ runs; the views media_types, largest_layers and stale_uploads give exact
values on snapshots built by hand; `regstat sql` lists, writes Parquet and never writes into
the snapshot; `regstat export-db` writes a database that answers like `regstat sql`."""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from support.snapshots import rows, write_snapshot

from regstat import analysis, queries
from regstat.snapshot import digest_ids
from regstat.cli import main
from regstat.errors import EXIT_FAILURE, EXIT_OK, EXIT_SNAPSHOT, EXIT_USAGE
from regstat.render import rows_json
from regstat.snapshot import TABLES, Snapshot

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def invoke(*args: str, input: str | None = None):
    return CliRunner().invoke(main, list(args), input=input)


# --- every sql/ file against the sample registry ----------------------------------------------


@contextmanager
def recorded_loads() -> Iterator[set[str]]:
    """The names of the sql/ files loaded (and run) inside the block."""
    loaded: set[str] = set()
    original = queries.load

    def recording(name: str) -> str:
        loaded.add(name)
        return original(name)

    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(queries, "load", recording)
        yield loaded


@pytest.fixture(scope="module")
def crawled(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, set[str]]:
    """A crawl of scenario_tree, and the names of the sql/ files the crawl loaded (and ran)."""
    out = tmp_path_factory.mktemp("snap") / "s"
    with recorded_loads() as loaded:
        result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == EXIT_OK, result.stderr
    return out, loaded


@pytest.fixture(scope="module")
def sample(crawled) -> Path:
    return crawled[0]


@pytest.fixture(scope="module")
def loaded_by_plan_and_explain(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sql/ files `regstat plan-gc` and `regstat explain --plan` ran on the sample."""
    plan = tmp_path_factory.mktemp("plan") / "plan.json"
    orphan = json.loads((SAMPLE / "EXPECTED.json").read_text())["names"]["web_old"]
    with recorded_loads() as loaded:
        result = invoke("plan-gc", str(sample), "--untagged", "--grace", "0s", "-o", str(plan))
        assert result.exit_code == EXIT_OK, result.stderr
        child = rows_of_sample(sample, "SELECT digest FROM descriptors WHERE role = 'manifest' LIMIT 1")[0][0]
        repository, tag = rows_of_sample(sample, "SELECT repository, tag FROM tags LIMIT 1")[0]
        for reference in (orphan, child, f"{repository}:{tag}"):
            result = invoke("explain", str(sample), reference, "--plan", str(plan))
            assert result.exit_code == EXIT_OK, result.stderr
        # keep_tags' patterns are matched only where a rule has some (sql/plan_tag_names.sql).
        result = invoke("plan-gc", str(sample), "--older-than", "1d", "--keep-tags", "^v", "-o", str(plan) + ".kept")
        assert result.exit_code == EXIT_OK, result.stderr
    return loaded


@pytest.fixture(scope="module")
def loaded_by_incremental_crawl(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sql/ files a crawl of the sample with --previous (the sample's snapshot) ran."""
    out = tmp_path_factory.mktemp("incremental") / "s"
    with recorded_loads() as loaded:
        result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out), "--previous", str(sample)])
    assert result.exit_code == EXIT_OK, result.stderr
    return loaded


@pytest.fixture(scope="module")
def loaded_by_report(sample: Path) -> set[str]:
    """The sql/ files `regstat report` ran on the sample."""
    with recorded_loads() as loaded:
        result = invoke("report", str(sample), "--format", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    return loaded


@pytest.fixture(scope="module")
def loaded_by_diff(sample: Path) -> set[str]:
    """The sql/ files `regstat diff` ran on the sample (against itself)."""
    with recorded_loads() as loaded:
        result = invoke("diff", str(sample), str(sample), "--format", "json")
    assert result.exit_code == EXIT_OK, result.stderr
    return loaded


@pytest.fixture(scope="module")
def loaded_by_apply(sample: Path, tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sql/ files `regstat apply-gc` ran verifying a plan of the sample (a dry run: it
    deletes nothing, and verifies every phase)."""
    plan = tmp_path_factory.mktemp("apply") / "plan.json"
    result = invoke("plan-gc", str(sample), "--untagged", "--grace", "0s", "-o", str(plan))
    assert result.exit_code == EXIT_OK, result.stderr
    with recorded_loads() as loaded:
        result = invoke("apply-gc", str(plan), "--quiet")
    assert result.exit_code == EXIT_OK, result.stderr
    return loaded


@pytest.fixture(scope="module")
def loaded_by_merge(tmp_path_factory: pytest.TempPathFactory) -> set[str]:
    """The sql/ files `regstat merge` ran joining two shards of the sample."""
    shards = tmp_path_factory.mktemp("shards")
    for k in (1, 2):
        result = invoke("crawl", str(SAMPLE), "-o", str(shards / str(k)), "--shard", f"{k}/2", "-q")
        assert result.exit_code == EXIT_OK, result.stderr
    with recorded_loads() as loaded:
        result = invoke("merge", str(shards), "-o", str(shards.parent / "merged"), "-q")
    assert result.exit_code == EXIT_OK, result.stderr
    return loaded


def rows_of_sample(sample: Path, sql: str) -> list[tuple]:
    con = analysis.connect(Snapshot.open(sample))
    try:
        return con.execute(sql).fetchall()
    finally:
        con.close()


@pytest.mark.parametrize("name", queries.names())
def test_every_sql_file_runs_on_the_sample(name: str, crawled, request: pytest.FixtureRequest) -> None:
    snapshot, loaded_by_crawl = crawled
    if name.startswith("snapshot_"):
        # These bind the crawl's staging tables (stage_*): the crawl above ran them.
        assert name in loaded_by_crawl
        return
    if name.startswith(("plan_", "explain_")):
        # These bind the planner's own tables (plan_*, explain_targets): plan-gc and explain ran them.
        assert name in request.getfixturevalue("loaded_by_plan_and_explain")
        return
    if name.startswith(("previous_", "reused_")):
        # These bind an earlier snapshot's tables (previous_*) and the reused digests: an
        # incremental crawl ran them.
        assert name in request.getfixturevalue("loaded_by_incremental_crawl")
        return
    if name.startswith("apply_"):
        # These bind a plan's actions beside a fresh crawl (apply_actions): apply-gc ran them.
        assert name in request.getfixturevalue("loaded_by_apply")
        return
    if name.startswith("merge_"):
        # These bind every shard's rows side by side (shard_*): merge ran them.
        assert name in request.getfixturevalue("loaded_by_merge")
        return
    if name.startswith("diff_"):
        # These bind two snapshots side by side (schemas old and new): the diff ran them.
        assert name in request.getfixturevalue("loaded_by_diff")
        return
    if name.startswith("reclaimable_") or name == "stale_upload_summary":
        # These bind the report's own tables (reclaim_*): the report ran them.
        assert name in request.getfixturevalue("loaded_by_report")
        return
    con = analysis.connect(Snapshot.open(snapshot))
    try:
        cursor = con.execute(queries.load(name))
        assert cursor.description, name
        cursor.fetchall()
    finally:
        con.close()


def test_new_views_on_the_sample(sample: Path) -> None:
    con = analysis.connect(Snapshot.open(sample))
    try:
        # 8 images, tools/cli's 2 indexes, apps/api's cosign signature.
        kinds = {r[0]: r[1:] for r in rows(con, "SELECT kind, manifests, digests FROM media_types")}
        assert kinds == {"image": (8, 8), "index": (2, 2), "signature": (1, 1)}
        assert rows(con, "SELECT sum(manifests) FROM media_types") == rows(con, "SELECT count(*) FROM manifests")
        assert rows(con, "SELECT digest, size, manifests FROM largest_layers") == rows(
            con, "SELECT digest, size, manifests FROM layer_sharing ORDER BY size DESC, digest"
        )
        (uuid, age, days), = rows(con, "SELECT uuid, age_seconds, age_days FROM stale_uploads")
        started, taken = rows(con, "SELECT u.started_at, i.taken_at FROM uploads u, snapshot_info i")[0]
        assert age == int((taken - started).total_seconds()) and days == age // 86400
    finally:
        con.close()


# --- media_types and largest_layers, by hand ---------------------------------------------------


def _registry() -> dict[str, list[dict]]:
    """Repository a: an image, an index of it, a cosign signature (artifactType), a notation
    signature, a tag-based cosign signature (simple-signing layer), an SPDX SBOM, a Helm chart,
    a schema 1 image sharing the image's layer, a manifest of unknown media type; repository
    b: the same image and a CycloneDX SBOM (config media type)."""
    sizes = {"b1": 1000, "b_chart": 500, "b_cdx": 80, "b_spdx": 70, "b_sig": 50, "b_notary": 30,
             "c_helm": 30, "c1": 10, "c_sig": 5, "b_empty": 2}
    tables: dict[str, list[dict]] = {"repositories": [], "manifests": [], "descriptors": [], "blobs": []}

    def manifest(repo, digest, size, media_type=OCI_MANIFEST, artifact_type=None, config=None, layers=(),
                 children=(), status="ok"):
        tables["manifests"].append(
            {"repository": repo, "digest": f"sha256:{digest}", "media_type": media_type,
             "artifact_type": artifact_type, "config_media_type": config[1] if config else None,
             "size": size, "status": status}
        )
        described = [("config", config)] if config else []
        described += [("layer", layer) for layer in layers] + [("manifest", (c, OCI_MANIFEST)) for c in children]
        for position, (role, (target, media)) in enumerate(described):
            tables["descriptors"].append(
                {"repository": repo, "manifest_digest": f"sha256:{digest}", "role": role, "position": position,
                 "digest": f"sha256:{target}", "media_type": media, "size": sizes.get(target, 100)}
            )

    for repo in ("a", "b"):
        tables["repositories"].append({"repository": repo, "complete": True, "error_count": 0})
        manifest(repo, "m_img", 100, config=("c1", OCI_CONFIG), layers=[("b1", LAYER)])
    manifest("a", "m_idx", 200, media_type=OCI_INDEX, children=["m_img"])
    manifest("a", "m_cosign", 300, artifact_type="application/vnd.dev.cosign.artifact.sig.v1+json",
             config=("b_empty", "application/vnd.oci.empty.v1+json"),
             layers=[("b_sig", "application/vnd.dev.cosign.simplesigning.v1+json")])
    manifest("a", "m_sbom", 400, artifact_type="application/spdx+json",
             config=("b_empty", "application/vnd.oci.empty.v1+json"), layers=[("b_spdx", "application/spdx+json")])
    manifest("a", "m_helm", 500, config=("c_helm", "application/vnd.cncf.helm.config.v1+json"),
             layers=[("b_chart", "application/vnd.cncf.helm.chart.content.v1.tar+gzip")])
    manifest("a", "m_unknown", 600, media_type="application/x-weird", status="unknown_media_type")
    manifest("a", "m_notation", 700, artifact_type="application/vnd.cncf.notary.signature",
             config=("b_empty", "application/vnd.oci.empty.v1+json"),
             layers=[("b_notary", "application/jose+json")])
    manifest("a", "m_oldsig", 800, config=("c_sig", OCI_CONFIG),
             layers=[("b_sig", "application/vnd.dev.cosign.simplesigning.v1+json")])
    manifest("a", "m_schema1", 900, media_type="application/vnd.docker.distribution.manifest.v1+prettyjws",
             layers=[("b1", None)])
    manifest("b", "m_cdx", 1000, config=("c_cdx", "application/vnd.cyclonedx+json"),
             layers=[("b_cdx", "application/vnd.cyclonedx+json")])
    sizes["c_cdx"] = 100
    for blob, size in sorted(sizes.items()):
        tables["blobs"].append({"digest": f"sha256:{blob}", "size": size, "stored": True})
    return tables


@pytest.fixture(scope="module")
def registry_con(tmp_path_factory: pytest.TempPathFactory):
    con = analysis.connect(write_snapshot(tmp_path_factory.mktemp("hand") / "s", _registry()))
    yield con
    con.close()


def test_media_types_by_kind(registry_con) -> None:
    got = {r[0]: r[1:] for r in rows(
        registry_con, "SELECT kind, manifests, digests, manifest_bytes, blob_bytes FROM media_types"
    )}
    assert got == {
        # a/m_img, b/m_img, a/m_schema1: two digests; c1 and b1 once each (b1 shared by both)
        "image": (3, 2, 100 + 900, 10 + 1000),
        "index": (1, 1, 200, 0),
        # cosign (artifactType), notation, tag-based cosign (layer): b_empty, b_sig, b_notary, c_sig
        "signature": (3, 3, 300 + 700 + 800, 2 + 50 + 30 + 5),
        # SPDX (artifactType) and CycloneDX (config media type); b_empty counts here too
        "sbom": (2, 2, 400 + 1000, 2 + 70 + 100 + 80),
        "artifact": (1, 1, 500, 30 + 500),
        "unknown": (1, 1, 600, 0),
    }


def test_largest_layers_in_order(registry_con) -> None:
    got = rows(registry_con, "SELECT digest, size, manifests, repositories, savings_bytes FROM largest_layers")
    assert got == [
        ("sha256:b1", 1000, 3, 2, 2000),  # a/m_img, b/m_img, a/m_schema1
        ("sha256:b_chart", 500, 1, 1, 0),
        ("sha256:c_cdx", 100, 1, 1, 0),
        ("sha256:b_cdx", 80, 1, 1, 0),
        ("sha256:b_spdx", 70, 1, 1, 0),
        ("sha256:b_sig", 50, 2, 1, 50),
        ("sha256:b_notary", 30, 1, 1, 0),  # a tie: by digest
        ("sha256:c_helm", 30, 1, 1, 0),
        ("sha256:c1", 10, 2, 2, 10),
        ("sha256:c_sig", 5, 1, 1, 0),
        ("sha256:b_empty", 2, 3, 1, 4),  # the empty config of three artifacts
    ]


# --- stale_uploads, by hand -------------------------------------------------------------------


def _utc(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=UTC)


def test_stale_uploads_ages_to_the_snapshot_end(tmp_path: Path) -> None:
    # write_snapshot's crawl finished at 2026-01-01T00:00:01Z.
    uploads = [
        {"repository": "a", "uuid": "u1", "started_at": _utc("2025-12-24T23:00:00"),
         "modified_at": _utc("2025-12-31T00:00:00"), "size": 10},
        {"repository": "a", "uuid": "u2", "started_at": None, "modified_at": _utc("2025-12-31T23:59:30.500000"),
         "size": None},
        {"repository": "b", "uuid": "u3", "started_at": _utc("2025-10-01T00:00:01"),
         "modified_at": _utc("2025-10-01T00:00:02"), "size": 0},
    ]
    con = analysis.connect(write_snapshot(tmp_path / "s", {"uploads": uploads}))
    try:
        assert rows(con, "SELECT id, taken_at, complete FROM snapshot_info") == [
            ("20260101T000000Z-00000000", _utc("2026-01-01T00:00:01"), True)
        ]
        got = rows(con, "SELECT repository, uuid, size, age_seconds, age_days FROM stale_uploads")
    finally:
        con.close()
    assert got == [
        ("b", "u3", 0, 92 * 86400, 92),  # October, November, December
        ("a", "u1", 10, 7 * 86400 + 3600 + 1, 7),
        ("a", "u2", None, 30, 0),  # no startedat: from its newest file; whole seconds
    ]


# --- regstat sql: listing, --output, read-only -------------------------------------------------


def test_listing_without_a_query(sample: Path) -> None:
    result = invoke("sql", str(sample), "-f", "json")
    assert result.exit_code == 0, result.stderr
    listing = json.loads(result.stdout)
    names = list(dict.fromkeys(r["name"] for r in listing))
    assert names == [digest_ids.TABLE, *TABLES, *analysis.EXTRA_TABLES, *analysis.VIEWS]
    kinds = {r["name"]: r["kind"] for r in listing}
    assert kinds["digests"] == kinds["tags"] == "snapshot table"
    assert kinds["reachable"] == "table" and kinds["media_types"] == "view"
    columns = [(r["column_name"], r["column_type"]) for r in listing if r["name"] == "media_types"]
    assert columns == [("kind", "VARCHAR"), ("manifests", "BIGINT"), ("digests", "BIGINT"),
                       ("manifest_bytes", "BIGINT"), ("blob_bytes", "BIGINT")]
    con = analysis.connect(Snapshot.open(sample))
    try:
        for name in names:
            described = [d[0] for d in con.execute(f"SELECT * FROM {name} LIMIT 0").description]
            assert described == [r["column_name"] for r in listing if r["name"] == name], name
    finally:
        con.close()
    table = invoke("sql", str(sample)).stdout
    assert table.splitlines()[0].split() == ["name", "kind", "column_name", "column_type"]
    assert f"({len(listing)} rows)" in table


def test_parquet_output_is_readable_by_pyarrow(sample: Path, tmp_path: Path) -> None:
    query = "SELECT digest, size, manifests, repositories, savings_bytes FROM layer_sharing ORDER BY digest"
    out = tmp_path / "sharing.parquet"
    result = invoke("sql", str(sample), query, "-f", "parquet", "-o", str(out))
    assert result.exit_code == 0, result.stderr
    assert result.stdout == ""
    as_json = json.loads(invoke("sql", str(sample), query, "-f", "json").stdout)
    assert pq.read_table(out).to_pylist() == as_json
    assert pq.read_schema(out).field("size").type == "int64"
    listing = tmp_path / "listing.parquet"
    assert invoke("sql", str(sample), "-f", "parquet", "--output", str(listing)).exit_code == 0
    assert pq.read_table(listing).column_names == ["name", "kind", "column_name", "column_type"]
    assert not list(tmp_path.glob(".*"))  # no temporary file left beside them


def test_parquet_needs_output_and_text_formats_can_write_it(sample: Path, tmp_path: Path) -> None:
    result = invoke("sql", str(sample), "SELECT 1 AS one", "-f", "parquet")
    assert result.exit_code == EXIT_USAGE and "--output" in result.stderr
    for fmt in ("table", "csv", "json"):
        out = tmp_path / f"out.{fmt}"
        written = invoke("sql", str(sample), "SELECT * FROM dedup_summary", "-f", fmt, "-o", str(out))
        printed = invoke("sql", str(sample), "SELECT * FROM dedup_summary", "-f", fmt)
        assert written.exit_code == 0 and written.stdout == ""
        assert out.read_text() == printed.stdout


def _fingerprint(directory: Path) -> dict[str, tuple[int, str]]:
    return {
        str(p.relative_to(directory)): (p.stat().st_mtime_ns, hashlib.sha256(p.read_bytes()).hexdigest())
        for p in sorted(directory.rglob("*"))
        if p.is_file()
    } | {str(p.relative_to(directory)) + "/": (0, "") for p in directory.rglob("*") if p.is_dir()}


@pytest.mark.parametrize(
    "statement",
    [
        "COPY (SELECT * FROM tags) TO '{snap}/tags/part-99999.parquet' (FORMAT parquet)",
        "COPY tags TO '{snap}/x.csv'",
        "EXPORT DATABASE '{snap}/export'",
        "CREATE TABLE t AS SELECT 1 AS x",
        "INSERT INTO reachable SELECT * FROM reachable",
        "ATTACH '{snap}/x.duckdb' AS x",
        "SET memory_limit = '1GB'",
        "SELECT 1; COPY tags TO '{snap}/x.csv'",
        "EXPLAIN ANALYZE COPY tags TO '{snap}/x.csv'",
        "/* hidden */ COPY tags TO '{snap}/x.csv'",
    ],
)
def test_sql_never_writes_into_the_snapshot(statement: str, sample: Path) -> None:
    before = _fingerprint(sample)
    result = invoke("sql", str(sample), statement.format(snap=sample))
    assert result.exit_code == EXIT_FAILURE
    assert "only reads" in result.stderr or "one SQL statement" in result.stderr
    assert _fingerprint(sample) == before


def test_reading_statements_are_allowed(sample: Path) -> None:
    for statement in ("EXPLAIN SELECT * FROM tags", "DESCRIBE manifests", "SUMMARIZE blobs", "FROM snapshot_info",
                      "WITH t AS (SELECT 1 AS x) SELECT x FROM t", "SELECT 1;"):
        result = invoke("sql", str(sample), statement)
        assert result.exit_code == 0, (statement, result.stderr)


def test_output_inside_the_snapshot_is_refused(sample: Path) -> None:
    before = _fingerprint(sample)
    for fmt in ("parquet", "csv"):
        result = invoke("sql", str(sample), "SELECT 1 AS x", "-f", fmt, "-o", str(sample / "tags" / "x.parquet"))
        assert result.exit_code == EXIT_SNAPSHOT and "inside the snapshot" in result.stderr
    assert _fingerprint(sample) == before


# --- regstat export-db ---------------------------------------------------------------------------


def test_export_db_answers_like_regstat_sql(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap.duckdb"
    result = invoke("export-db", str(sample), str(out))
    assert result.exit_code == 0, result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["snap.duckdb"]  # no temporary or WAL files
    con = duckdb.connect(str(out), read_only=True)
    try:
        relations = dict(con.execute("SELECT table_name, table_type FROM information_schema.tables").fetchall())
        # manifest_edges is a table: computing `reachable` made it one (every step reads it).
        assert relations == {name: "BASE TABLE" for name in (digest_ids.TABLE, *TABLES, *analysis.EXTRA_TABLES)} | {
            name: "VIEW" for name in analysis.VIEWS
        } | {"manifest_edges": "BASE TABLE"}
        for view in analysis.VIEWS:
            query = f"SELECT * FROM {view} ORDER BY ALL"
            cursor = con.execute(query)
            exported = rows_json([d[0] for d in cursor.description], cursor.fetchall())
            assert exported == invoke("sql", str(sample), query, "-f", "json").stdout.rstrip("\n"), view
    finally:
        con.close()


def test_export_db_refuses_to_overwrite_unless_forced(sample: Path, tmp_path: Path) -> None:
    out = tmp_path / "snap.duckdb"
    out.write_text("not a database")
    result = invoke("export-db", str(sample), str(out))
    assert result.exit_code == EXIT_SNAPSHOT and "--force" in result.stderr
    assert out.read_text() == "not a database"
    assert invoke("export-db", str(sample), str(out), "--force").exit_code == 0
    con = duckdb.connect(str(out), read_only=True)
    assert con.execute("SELECT count(*) FROM manifests").fetchone() == (11,)
    con.close()
    before = _fingerprint(sample)
    result = invoke("export-db", str(sample), str(sample / "x.duckdb"))
    assert result.exit_code == EXIT_SNAPSHOT and "inside the snapshot" in result.stderr
    assert _fingerprint(sample) == before


# --- docs/analysis.md's example queries ---------------------------------------------------------


def docs_queries() -> list[str]:
    """The queries of docs/analysis.md's `regstat sql snap "..."` examples."""
    text = (Path(__file__).resolve().parent.parent / "docs" / "analysis.md").read_text()
    return [q.replace('\\"', '"') for q in re.findall(r'^regstat sql snap "((?:[^"\\]|\\.)*)"', text, re.M)]


def test_docs_examples_run_and_cover_every_view(sample: Path) -> None:
    queries_ = docs_queries()
    for view in (*analysis.VIEWS, "reachable"):
        assert any(re.search(rf"\b{view}\b", q) for q in queries_), f"docs/analysis.md has no example query for {view}"
    digest = digest_ids.read(sample, "blobs").column("digest")[0].as_py()
    for query in queries_:
        result = invoke("sql", str(sample), query.replace("sha256:…", digest), "-f", "json")
        assert result.exit_code == 0, f"{query}\n{result.stderr}"
