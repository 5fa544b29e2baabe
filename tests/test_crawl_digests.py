"""The crawl's set of manifest digests: in memory, and after moving to SQLite, it answers alike."""

from __future__ import annotations

from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from regstat.crawl.digest_set import DigestSet

# A few sha256 digests (stored as bytes once in SQLite) and a sha512 one (stored as text).
DIGESTS = [f"sha256:{c * 64}" for c in "0123abcd"] + ["sha512:" + "e" * 128]

operations = st.lists(
    st.tuples(st.sampled_from(["add_new", "mark_written", "unwritten"]),
              st.lists(st.sampled_from(DIGESTS), max_size=6)),
    max_size=25,
)


def expected(ops: list[tuple[str, list[str]]]) -> list[list[str]]:
    """What each call should return, from a plain dict: digest -> written."""
    state: dict[str, bool] = {}
    answers = []
    for op, digests in ops:
        out = []
        for d in digests:
            if op == "add_new" and d not in state:
                state[d] = False
                out.append(d)
            elif op == "mark_written" and not state.get(d):
                state[d] = True
                out.append(d)
            elif op == "unwritten" and not state.get(d) and d not in out:
                out.append(d)
        answers.append(out)
    return answers


@settings(max_examples=60, deadline=None)
@given(ops=operations, limit=st.sampled_from([0, 2, 5, 1000]))
def test_answers_match_a_plain_dict_before_and_after_moving_to_sqlite(tmp_path_factory, ops, limit: int) -> None:
    path: Path = tmp_path_factory.mktemp("digests") / "d.sqlite"
    digests = DigestSet(path, memory_digests=limit)
    answers = [getattr(digests, op)(list(ds)) for op, ds in ops]
    digests.close()
    assert answers == expected(ops)


def test_moves_to_sqlite_beyond_its_limit(tmp_path: Path) -> None:
    digests = DigestSet(tmp_path / "d.sqlite", memory_digests=3)
    assert digests.add_new(DIGESTS[:3]) == DIGESTS[:3]
    assert not (tmp_path / "d.sqlite").exists()
    assert digests.mark_written(DIGESTS[1:5]) == DIGESTS[1:5]  # 5 known: moved
    assert (tmp_path / "d.sqlite").exists()
    assert digests.unwritten(DIGESTS[:6]) == [DIGESTS[0], DIGESTS[5]]
    assert digests.add_new(DIGESTS[:7]) == DIGESTS[5:7]
    digests.close()
