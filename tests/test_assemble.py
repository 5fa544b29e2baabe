"""Assembly in ranges: the snapshot's tables do not depend on how many ranges build them."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from regstat.crawl import assemble
from regstat.cli import main
from regstat.crawl.publish import PendingSnapshot
from regstat.snapshot import STORED_TABLES

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"


def crawl(out: Path) -> None:
    result = CliRunner().invoke(main, ["crawl", str(SAMPLE), "--output", str(out)])
    assert result.exit_code == 0, result.output


def test_tables_are_the_same_in_one_range_and_in_many(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    crawl(tmp_path / "one")
    ranges: dict[str, int] = {}

    def counted(name: str, split):  # type: ignore[no-untyped-def]
        def wrapper(*args):  # type: ignore[no-untyped-def]
            found = split(*args)
            ranges[name] = len(found)
            return found

        return wrapper

    # a range per repository, a range per 1/256 of the digests
    monkeypatch.setattr(assemble, "RANGE_REVISIONS", 1)
    monkeypatch.setattr(assemble, "RANGE_BLOBS", 1)
    monkeypatch.setattr(assemble, "_repository_ranges", counted("repository", assemble._repository_ranges))
    monkeypatch.setattr(assemble, "_digest_ranges", counted("digest", assemble._digest_ranges))
    # and digests turned into ids a few at a time (_bind_ids: one file per range and pass)
    monkeypatch.setattr(assemble, "RANGE_DIGESTS", 2)
    copies: list[Path] = []
    copy = assemble._copy
    monkeypatch.setattr(assemble, "_copy", lambda con, query, path: (copies.append(path), copy(con, query, path)))
    crawl(tmp_path / "many")
    assert ranges["repository"] > 3 and ranges["digest"] > 3, ranges
    assert sum(p.name.startswith("part-") for p in copies) > 8 * 10, len(copies)
    for table in STORED_TABLES:  # `digests` too: numbered once, for every range
        one, many = (pq.read_table(tmp_path / d / table) for d in ("one", "many"))
        assert one.num_rows > 0, table
        assert many.equals(one), table  # the same rows in the same order


def test_ranges_cover_every_string_once() -> None:
    ranges = assemble._split(["b", "d"])
    assert ranges == [(None, "b"), ("b", "d"), ("d", None)]
    for value in ("", "a", "b", "c", "d", "zz"):
        holding = [(low, high) for low, high in ranges
                   if (low is None or value >= low) and (high is None or value < high)]
        assert len(holding) == 1, value


def _digest(text: str) -> str:
    return "sha256:" + hashlib.sha256(text.encode()).hexdigest()


def test_assembles_many_descriptors_under_a_tight_memory_limit(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Many staged descriptors under a small DuckDB limit: the joins must keep a range, or a few
    digests, as their hash tables, never every staged descriptor (what DuckDB chose unprompted,
    without row estimates: out of memory at 45,612 manifests under 128MB). Scaled down here:
    220,000 descriptors in one range under 56MB (fails at 48MB; the unprompted plan fails at
    56MB), with digests turned into ids 5,000 at a time."""
    monkeypatch.setattr(assemble, "RANGE_DIGESTS", 5_000)
    rows: dict[str, list[dict]] = {name: [] for name in assemble.STAGING_SCHEMAS}
    manifests = 20_000
    for m in range(manifests):
        digest = _digest(f"manifest {m}")
        rows["revisions"].append({"repository": f"team-{m % 97}/app", "digest": digest})
        rows["manifest_info"].append({"digest": digest, "media_type": "application/vnd.oci.image.manifest.v1+json",
                                      "size": 500, "status": "ok"})
        rows["manifest_descriptors"].append({"manifest_digest": digest, "role": "config", "position": 0,
                                             "digest": _digest(f"config {m}"), "size": 100,
                                             "media_type": "application/vnd.oci.image.config.v1+json"})
        for position in range(10):
            rows["manifest_descriptors"].append({"manifest_digest": digest, "role": "layer", "position": position,
                                                 "digest": _digest(f"layer {(m * 7 + position) % (2 * manifests)}"),
                                                 "size": 1000 + position,
                                                 "media_type": "application/vnd.oci.image.layer.v1.tar+gzip"})
    stage = tmp_path / "stage"
    for name, schema in assemble.STAGING_SCHEMAS.items():
        (stage / name).mkdir(parents=True)
        pq.write_table(pa.Table.from_pylist(rows[name], schema=schema), stage / name / "part-00000.parquet")
    pending = PendingSnapshot(tmp_path / "snapshot")
    counts, problems = assemble.assemble(stage, pending, lambda repository, digest: digest, memory_limit="56MB")
    assert problems == []
    assert counts["manifests"] == manifests
    assert counts["descriptors"] == len(rows["manifest_descriptors"])
    assert counts["digests"] == manifests + manifests + 2 * manifests  # manifests, configs, layers
