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
        self.phase = ""
        self._started = time.monotonic()
        self._drawn = 0.0

    def add(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n
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
        items = ", ".join(f"{n:,} {name}" for name, n in self.counts.items())
        line = f"{self.phase}: {items} ({elapsed:.0f}s)"
        self.stream.write("\r\x1b[K" + line[:200])
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\r\x1b[K")
            self.stream.flush()

    @property
    def elapsed(self) -> float:
        return time.monotonic() - self._started
