"""Stopping a crawl on SIGINT or SIGTERM at a point of the crawl's choosing.

A signal handler that raises can land anywhere in the main thread. Both of these were seen
with a crawl sent SIGTERM: an exception raised inside concurrent.futures' bookkeeping, after
which the process hung at exit waiting for its pool; and one raised inside a fork hook, where
Python ignores exceptions, so the signal was lost and the crawl finished as if never asked to
stop. So while `deferred` is in force the handler only records the signal, and the crawl
calls `check` where stopping is safe: between jobs, between assembly statements, before
publishing.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

SIGNALS = (signal.SIGINT, signal.SIGTERM)

_received: str | None = None


class Interrupted(KeyboardInterrupt):
    """A recorded SIGINT or SIGTERM, raised by `check`; its argument is the signal's name."""


def _record(signum: int, frame: Any) -> None:
    global _received
    _received = signal.Signals(signum).name


@contextmanager
def deferred() -> Iterator[None]:
    """Within: SIGINT and SIGTERM are recorded for `check` instead of raising at once.

    Only the main thread can set handlers; elsewhere this changes nothing."""
    global _received
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    _received = None
    previous = {number: signal.signal(number, _record) for number in SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)
        _received = None


def received() -> str | None:
    """The name of the signal recorded under `deferred`, if one arrived."""
    return _received


def check() -> None:
    """Raise `Interrupted` if a signal was recorded; a no-op otherwise."""
    if _received is not None:
        raise Interrupted(_received)


def worker_defaults() -> None:
    """In a crawl's worker process: Ctrl-C (sent to the whole process group) is the parent's
    to act on, and SIGTERM sent to the worker itself ends it as usual."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
