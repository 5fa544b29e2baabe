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
