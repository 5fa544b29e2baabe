"""Progress on stderr: a live line when stderr is a terminal, nothing otherwise."""

from __future__ import annotations

import sys
import time
from typing import TextIO


class Progress:
    """Counts named items and redraws one status line at most a few times a second."""

    def __init__(self, stream: TextIO | None = None, enabled: bool | None = None) -> None:
        self.stream = stream or sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.counts: dict[str, int] = {}
        self.remaining: dict[str, int] = {}  # known work left, per counter: gives an ETA
        self.totals: dict[str, int] = {}  # the whole of a counter's work, where known from the start
        self.phase = ""
        self._started = time.monotonic()
        self._drawn = 0.0

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
        self._maybe_draw()

    def set_remaining(self, name: str, n: int) -> None:
        """The `name` items known to be still to do (a crawl discovers its work as it goes, so
        the ETA covers what is known so far)."""
        self.remaining[name] = n
        self._maybe_draw()

    def set_total(self, name: str, n: int) -> None:
        """All the `name` items there are to do (apply-gc knows its plan): shown as done/total."""
        self.totals[name] = n
        self._maybe_draw()

    def set_phase(self, phase: str) -> None:
        self.phase = phase
        self._maybe_draw(force=True)

    def _maybe_draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._drawn < 0.2:
            return
        self._drawn = now
        elapsed = now - self._started
        line = f"{self.phase}: {self.describe(elapsed)}"
        self.stream.write("\r\x1b[K" + line[:200])
        self.stream.flush()

    def describe(self, elapsed: float) -> str:
        """'1,234 manifests (56/s), 78 repositories, 12s, ~40s left' (the ETA from the counter
        with the most known work left, at its rate so far)."""
        parts = []
        for name, n in self.counts.items():
            rate = n / elapsed if elapsed > 0 else 0.0
            done = f"{n:,}/{self.totals[name]:,}" if name in self.totals else f"{n:,}"
            parts.append(f"{done} {name}" + (f" ({rate:,.0f}/s)" if name in self.remaining and rate else ""))
        eta = [left / (self.counts[name] / elapsed) for name, left in self.remaining.items()
               if self.counts.get(name) and elapsed > 0]
        parts.append(f"{elapsed:.0f}s")
        if eta:
            parts.append(f"~{_duration(max(eta))} left")
        return ", ".join(parts)

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started


def _duration(seconds: float) -> str:
    seconds = int(seconds + 0.5)
    if seconds < 90:
        return f"{seconds}s"
    if seconds < 5400:
        return f"{seconds // 60}m{seconds % 60:02d}s"
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"
