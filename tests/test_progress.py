"""Progress goes to stderr only when it is a terminal."""

from __future__ import annotations

import io

from regstat.progress import Progress


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal() -> None:
    stream = Terminal()
    progress = Progress(stream)
    progress.set_phase("crawling")
    progress.add("manifests", 3)
    progress.set_phase("assembling")
    progress.close()
    assert "crawling" in stream.getvalue() and "3 manifests" in stream.getvalue()
    assert stream.getvalue().endswith("\r\x1b[K")


def test_progress_is_silent_elsewhere() -> None:
    stream = io.StringIO()
    progress = Progress(stream)
    progress.set_phase("crawling")
    progress.add("manifests", 3)
    progress.close()
    assert stream.getvalue() == ""


def test_rate_and_eta_from_the_work_known_so_far() -> None:
    progress = Progress(Terminal())
    progress.add("manifests", 300)
    progress.add("repositories", 7)
    progress.set_remaining("manifests", 600)
    # 300 manifests in 10 s: 30/s, and 600 known to be left: about 20 s.
    assert progress.describe(10.0) == "300 manifests (30/s), 7 repositories, 10s, ~20s left"
    progress.set_remaining("manifests", 0)
    assert progress.describe(10.0).endswith("10s, ~0s left")
    assert Progress(Terminal()).describe(0.0) == "0s"  # nothing counted yet


def test_a_known_total_shows_as_done_of_total() -> None:
    progress = Progress(Terminal())
    progress.set_total("actions", 151)
    progress.set_remaining("actions", 111)
    progress.add("actions", 40)
    progress.add("bytes freed", 2048)
    assert progress.describe(4.0) == "40/151 actions (10/s), 2,048 bytes freed, 4s, ~11s left"
