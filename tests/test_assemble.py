"""Assembly in ranges: the snapshot's tables do not depend on how many ranges build them."""

from __future__ import annotations

from pathlib import Path

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from regstat import assemble
from regstat.cli import main
from regstat.snapshot import STORED_TABLES

SAMPLE = Path(__file__).resolve().parent.parent / "sample_data"


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
        holding = [(low, high) for low, high in ranges if (low is None or value >= low) and (high is None or value < high)]
        assert len(holding) == 1, value
