"""apply-gc's journal: what each run verified and deleted, one JSON object a line, appended and
fsynced before the run goes on, so that a run killed at any moment leaves a true record.

Records (`event`):
- `run`: a run started (`plan` checksum, `at`, `resumed`);
- `deleting`: the positions about to be deleted, written before the deletion is asked for;
- `outcome`: what became of one position (`status`, `reason`, `detail`, `bytes_freed`);
- `finished`: the run ended (its summary counts).

A position whose last outcome is deleted, gone or skipped is settled: `--resume` leaves it
alone. One `deleting` without an outcome after it was in flight when the run died: `--resume`
re-verifies it like any other (already deleted, it is then `gone`). Failed ones are tried again.

Only one apply runs per journal: `lock` holds an exclusive flock on JOURNAL.lock for the run;
the kernel releases it when the process dies, however it dies.
"""

from __future__ import annotations

import fcntl
import json
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from ..errors import ApplyRefused
from .target import DELETED, GONE, SKIPPED, Outcome

# Outcomes `--resume` does not repeat.
SETTLED = (DELETED, GONE, SKIPPED)


class JournalError(ApplyRefused):
    """A journal that cannot be read or written, or that another plan wrote."""


class ApplyLocked(ApplyRefused):
    """Another apply-gc holds the journal's lock: a refusal."""


def default_path(plan: str | os.PathLike[str]) -> Path:
    """PLAN.journal, beside the plan."""
    return Path(f"{os.fspath(plan)}.journal")


@dataclass(frozen=True)
class Recorded:
    """What a journal says of one position: its last outcome, and whether a deletion of it was
    asked for after that outcome (in flight when the run stopped)."""

    outcome: Outcome | None
    in_flight: bool


def read(path: Path, checksum: str | None = None) -> dict[int, Recorded]:
    """The journal's last word on each position; {} when there is no journal. A journal of a
    plan with another checksum is refused (its positions mean other actions). A last line cut
    short (the run died writing it) is ignored: its fsync never returned, so nothing acted on it."""
    if not path.exists():
        return {}
    state: dict[int, Recorded] = {}
    for record in _records(path):
        event = record.get("event")
        if event == "run" and checksum is not None and record.get("plan") != checksum:
            raise JournalError(f"{path}: the journal of another plan (checksum {record.get('plan')})")
        if event == "deleting":
            for position in record["positions"]:
                previous = state.get(position)
                state[position] = Recorded(previous.outcome if previous else None, True)
        elif event == "outcome":
            outcome = Outcome(record["status"], record.get("reason", ""), record.get("detail", ""),
                              int(record.get("bytes_freed", 0)))
            state[record["position"]] = Recorded(outcome, False)
    return state


def settled(state: dict[int, Recorded]) -> dict[int, Outcome]:
    """The positions `--resume` leaves alone, with their outcome."""
    return {p: r.outcome for p, r in state.items()
            if r.outcome is not None and r.outcome.status in SETTLED and not r.in_flight}


def history(path: Path, position: int) -> list[dict[str, Any]]:
    """Every record naming `position`, in order, each with the number of its run (from 1) and
    whether that run was a resumed one (for explain)."""
    found, run, resumed = [], 0, False
    for record in _records(path):
        if record.get("event") == "run":
            run, resumed = run + 1, bool(record.get("resumed"))
        elif record.get("position") == position or position in record.get("positions", ()):
            found.append({**record, "run": run, "resumed": resumed})
    return found


def _records(path: Path) -> Iterator[dict[str, Any]]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise JournalError(f"{path}: cannot read the journal: {e}") from None
    for number, line in enumerate(lines, 1):
        try:
            record = json.loads(line)
        except ValueError:
            if number == len(lines):
                return  # cut short by a kill: never acted on
            raise JournalError(f"{path}:{number}: not a journal line") from None
        if not isinstance(record, dict):
            raise JournalError(f"{path}:{number}: not a journal line")
        yield record


class Journal:
    """A journal open for appending, and its lock held."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = lock(path)
        try:
            _drop_cut_line(path)
            self._file: TextIO = open(path, "a", encoding="utf-8")
        except OSError as e:
            os.close(self._lock)
            raise JournalError(f"{path}: cannot write the journal: {e}") from None

    def run(self, checksum: str, resumed: bool) -> None:
        self._write([{"event": "run", "plan": checksum, "at": _now(), "resumed": resumed}])

    def deleting(self, positions: Iterable[int]) -> None:
        self._write([{"event": "deleting", "positions": list(positions), "at": _now()}])

    def outcomes(self, outcomes: Iterable[tuple[int, Outcome]]) -> None:
        self._write([{"event": "outcome", "position": p, "status": o.status, "reason": o.reason,
                      "detail": o.detail, "bytes_freed": o.bytes_freed} for p, o in outcomes])

    def finished(self, counts: dict[str, Any]) -> None:
        self._write([{"event": "finished", "at": _now(), **counts}])

    def _write(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        self._file.write("".join(json.dumps(r, separators=(",", ":")) + "\n" for r in records))
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self) -> None:
        self._file.close()
        os.close(self._lock)

    def __enter__(self) -> Journal:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()


def _drop_cut_line(path: Path) -> None:
    """Remove a last line a kill cut short (no newline after it), so that what this run
    appends starts on a line of its own; its write never returned, so nothing acted on it."""
    try:
        with open(path, "rb+") as f:
            data = f.read()
            if data and not data.endswith(b"\n"):
                f.truncate(data.rfind(b"\n") + 1)
    except FileNotFoundError:
        pass


def lock(path: Path) -> int:
    """An exclusive lock on JOURNAL.lock (a file descriptor; closing it releases the lock)."""
    lock_path = Path(f"{path}.lock")
    try:
        fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise JournalError(f"{lock_path}: cannot create the lock file: {e}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ApplyLocked(f"another apply-gc of this plan is running (it holds {lock_path})") from None
    return fd


def _now() -> str:
    return datetime.now(UTC).isoformat().replace("+00:00", "Z")

