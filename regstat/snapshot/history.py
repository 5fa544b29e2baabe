"""A snapshot history: one directory holding a snapshot per crawl (`crawl --into DIR`).

Each snapshot is named by the UTC second its crawl began (`20261207T031500Z`, then
`20261207T031500Z-1`, `-2` … when that name is taken, so re-runs never collide); `latest` is a
relative symbolic link to the snapshot published last, replaced atomically; `.regstat/` holds
the history's own files (the trend summaries, `regstat.report.trends`), never a snapshot's.
An interrupted crawl's hidden directory (`.NAME.regstat-partial-PID`) stays until `--resume`
continues it: listing, selectors and retention see only published snapshots.

`resolve` turns what a user gave as SNAPSHOT into a snapshot directory: a snapshot as it is,
a history as its latest snapshot, `DIR@-N` as the N-th before the latest, `DIR@YYYY-MM-DD` as
the last one taken on or before that day (UTC).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from .. import durations
from ..errors import RegstatError
from .outputs import is_regstat_directory, why_not_replaceable
from .schemas import PARTIAL_MARK

LATEST = "latest"
STATE = ".regstat"  # the history's own files: never inside a snapshot, which is immutable
SUMMARIES = "summaries"
TIME_FORMAT = "%Y%m%dT%H%M%SZ"
_NAME = re.compile(r"(\d{8}T\d{6}Z)(?:-(\d+))?")
_PARTIAL = re.compile(r"\.(\d{8}T\d{6}Z(?:-\d+)?)" + re.escape(PARTIAL_MARK) + r"\d+")
_DAY = re.compile(r"\d{4}-\d\d-\d\d")


class SelectorError(RegstatError):
    """A history, or a selector in it (`DIR@-1`, `DIR@2026-12-01`), that names no snapshot: a
    usage error, said in one line."""


@dataclass(frozen=True)
class Entry:
    """A published snapshot of a history: its directory, when its crawl began, and the
    suffix that kept its name unique (0: none)."""

    path: Path
    taken_at: datetime
    sequence: int = 0

    @property
    def name(self) -> str:
        return self.path.name


def parse_name(name: str) -> tuple[datetime, int] | None:
    """When a snapshot named `name` was taken and its suffix; None for other names."""
    match = _NAME.fullmatch(name)
    if not match:
        return None
    try:
        taken = datetime.strptime(match.group(1), TIME_FORMAT).replace(tzinfo=UTC)
    except ValueError:
        return None
    return taken, int(match.group(2) or 0)


def snapshots(history: Path) -> list[Entry]:
    """The published snapshots of `history`, oldest first (a directory named by a time, not a
    link, holding regstat's snapshot.json)."""
    entries = []
    try:
        children = list(os.scandir(history))
    except OSError:
        return []
    for child in children:
        parsed = parse_name(child.name)
        if parsed and child.is_dir(follow_symlinks=False) and is_regstat_directory(Path(child.path)):
            entries.append(Entry(Path(child.path), *parsed))
    return sorted(entries, key=lambda e: (e.taken_at, e.sequence))


def is_history(path: Path) -> bool:
    """Whether `path` is a snapshot history (not a snapshot: it has no snapshot.json)."""
    if not path.is_dir() or (path / "snapshot.json").exists():
        return False
    return os.path.lexists(path / LATEST) or (path / STATE).is_dir() or bool(snapshots(path))


def new_path(history: Path, now: datetime) -> Path:
    """The directory for a crawl beginning `now`: its UTC second, with a suffix when a
    snapshot or an unfinished crawl already has that name."""
    base = now.astimezone(UTC).strftime(TIME_FORMAT)
    taken = _names_in_use(history)
    name, n = base, 0
    while name in taken:
        n += 1
        name = f"{base}-{n}"
    return history / name


def _names_in_use(history: Path) -> set[str]:
    names = set()
    for child in history.iterdir() if history.is_dir() else ():
        partial = _PARTIAL.fullmatch(child.name)
        names.add(partial.group(1) if partial else child.name)
    return names


def interrupted_path(history: Path) -> Path | None:
    """The snapshot directory the most recently interrupted crawl into `history` was writing
    (its hidden directory is still there), for `--resume`; None when there is none."""
    partials = [child for child in history.iterdir() if _PARTIAL.fullmatch(child.name) and child.is_dir()] \
        if history.is_dir() else []
    if not partials:
        return None
    newest = max(partials, key=lambda p: p.stat().st_mtime)
    match = _PARTIAL.fullmatch(newest.name)
    assert match is not None
    return history / match.group(1)


def latest(history: Path) -> Path | None:
    """The snapshot `latest` points at, else the newest one; None in an empty history."""
    link = history / LATEST
    if link.is_symlink() and parse_name(os.readlink(link)) and is_regstat_directory(link):
        return history / os.readlink(link)
    entries = snapshots(history)
    return entries[-1].path if entries else None


def point_latest(history: Path, snapshot: Path) -> None:
    """Point `history/latest` at `snapshot` (a relative link, so the history can move),
    replacing the old link in one rename: a reader sees the old snapshot or the new one."""
    temporary = history / f".{LATEST}.regstat-tmp-{os.getpid()}"
    temporary.unlink(missing_ok=True)
    os.symlink(snapshot.name, temporary)
    os.replace(temporary, history / LATEST)


# --- retention ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Retention:
    """How many snapshots a history keeps (`count`), or for how long (`age`)."""

    count: int | None = None
    age: timedelta | None = None

    @classmethod
    def parse(cls, text: str) -> Retention:
        """'7' (the 7 newest snapshots) or a duration ('30d', '2w', '36h')."""
        if text.strip().isdigit():
            if int(text) < 1:
                raise ValueError("a count of snapshots to keep is 1 or more")
            return cls(count=int(text))
        return cls(age=durations.parse_duration(text))

    def expired(self, entries: list[Entry], now: datetime) -> list[Entry]:
        """The entries (oldest first) this retention removes."""
        if self.count is not None:
            return entries[: max(0, len(entries) - self.count)]
        assert self.age is not None
        return [e for e in entries if e.taken_at < now - self.age]


def retain(history: Path, retention: Retention, *, keep: Path, now: datetime) -> list[Path]:
    """Remove the snapshots of `history` that `retention` lets go, with their summaries, and
    return them. Never `keep` (the snapshot just written) nor the one `latest` points at, never
    an unfinished crawl's directory (`--resume` needs it), never a directory holding anything
    regstat did not write there (outputs.why_not_replaceable)."""
    spared = {keep.resolve()}
    current = latest(history)
    if current is not None:
        spared.add(current.resolve())
    removed = []
    for entry in retention.expired(snapshots(history), now):
        if entry.path.resolve() in spared or why_not_replaceable(entry.path) is not None:
            continue
        snapshot_id = snapshot_id_of(entry.path)
        # Renamed first: the snapshot disappears at once, never half removed under its name.
        doomed = history / f".{entry.name}.regstat-old-{os.getpid()}"
        os.rename(entry.path, doomed)
        shutil.rmtree(doomed, ignore_errors=True)
        if snapshot_id:
            remove_summaries(history, snapshot_id)
        removed.append(entry.path)
    return removed


def snapshot_id_of(snapshot: Path) -> str | None:
    """The `id` in a snapshot's snapshot.json (None if it cannot be read)."""
    try:
        value = json.loads((snapshot / "snapshot.json").read_text()).get("id")
    except (OSError, ValueError, AttributeError):
        return None
    return value if isinstance(value, str) else None


def summary_path(history: Path, snapshot_id: str, version: str) -> Path:
    """Where the trend summary of one snapshot, as one regstat version computed it, is kept."""
    return history / STATE / SUMMARIES / f"{snapshot_id}@{version}.json"


def remove_summaries(history: Path, snapshot_id: str) -> None:
    for path in (history / STATE / SUMMARIES).glob(f"{glob_escape(snapshot_id)}@*.json"):
        path.unlink(missing_ok=True)


def glob_escape(text: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", text)


# --- selectors ---------------------------------------------------------------------------


def resolve(text: str) -> Path:
    """The snapshot directory SNAPSHOT names: a snapshot directory as it is; a history as its
    latest snapshot; `DIR@-N` the N-th before the latest of history DIR; `DIR@YYYY-MM-DD` the
    last one taken on or before that day (UTC). Anything else is returned as it is, for the
    snapshot reader to refuse. Raises SelectorError when a history or selector names nothing."""
    path = Path(text)
    if is_history(path):
        return _latest(path, text)
    base, at, selector = text.rpartition("@")
    if not at or not base or path.exists() or not is_history(Path(base)):
        return path
    history = Path(base)
    entries = snapshots(history)
    if re.fullmatch(r"-?\d+", selector):
        back = abs(int(selector))
        current = _latest(history, base)
        index = next((i for i, e in enumerate(entries) if e.path == current), len(entries) - 1)
        if back > index:
            raise SelectorError(f"{text}: the history holds {index} snapshot{'s' * (index != 1)} before its latest "
                                f"({current.name}), not {back}")
        return entries[index - back].path
    if _DAY.fullmatch(selector):
        try:
            day = date.fromisoformat(selector)
        except ValueError:
            raise SelectorError(f"{text}: {selector} is not a date") from None
        taken = [e for e in entries if e.taken_at.date() <= day]
        if not taken:
            first = f" (the first was taken {entries[0].taken_at:%Y-%m-%d})" if entries else ""
            raise SelectorError(f"{text}: no snapshot of {base} was taken on or before {selector}{first}")
        return taken[-1].path
    raise SelectorError(f"{text}: {selector!r} is not a selector: use {base}@-N (the N-th before the latest) "
                        f"or {base}@YYYY-MM-DD (the last taken on or before that day, UTC)")


def _latest(history: Path, text: str) -> Path:
    current = latest(history)
    if current is None:
        raise SelectorError(f"{text}: a snapshot history holding no snapshot yet")
    return current
