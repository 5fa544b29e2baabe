"""Publishing a crawl's snapshot: it is written into a hidden directory beside OUTPUT and
renamed into place only when finished, so a crawl that dies leaves nothing any regstat command
accepts; `--resume` finds the hidden directory an interrupted crawl left (docs/snapshot.md).
"""

from __future__ import annotations

import json
import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

from ..errors import OutputExistsError, OutputRefusedError, SnapshotError
from ..snapshot import PARTIAL_MARK, ROWS_PER_PART, STORED_SCHEMAS, STORED_TABLES, PartWriter, SnapshotInfo
from ..snapshot.outputs import why_not_replaceable


class PendingSnapshot:
    """A snapshot being written: a hidden directory beside OUTPUT, renamed on `publish`."""

    def __init__(self, output: str | os.PathLike[str], *, force: bool = False) -> None:
        self.output = _check_output(output, force)
        self.force = force
        _remove_stale_partials(self.output)
        self.path = partial_path(self.output, os.getpid())
        if self.path.exists():
            shutil.rmtree(self.path)
        self.path.mkdir()

    @classmethod
    def take_over(cls, output: str | os.PathLike[str], partial: Path, *, force: bool = False) -> PendingSnapshot:
        """Continue writing the hidden directory an interrupted crawl to OUTPUT left.

        It is renamed to this process's name, so other crawls see a live owner; the other
        leftovers of dead crawls to OUTPUT go, as a new crawl would remove them.
        """
        pending = cls.__new__(cls)
        pending.output = _check_output(output, force)
        pending.force = force
        pending.path = partial_path(pending.output, os.getpid())
        if partial != pending.path:
            if pending.path.exists():
                shutil.rmtree(pending.path)  # our own leftover from an earlier life of this pid
            try:
                os.rename(partial, pending.path)
            except FileNotFoundError:
                raise SnapshotError(f"{partial}: another crawl took it over meanwhile") from None
        _remove_stale_partials(pending.output, keep=pending.path)
        return pending

    def table(self, name: str, rows_per_part: int = ROWS_PER_PART) -> PartWriter:
        return PartWriter(self.path / name, STORED_SCHEMAS[name], rows_per_part)

    def clear_tables(self) -> None:
        """Remove snapshot tables an interrupted assembly left half written."""
        for name in STORED_TABLES:
            shutil.rmtree(self.path / name, ignore_errors=True)

    @staticmethod
    def finished_in(partial: Path) -> SnapshotInfo | None:
        """snapshot.json, when an interrupted crawl had written it and only the rename was left."""
        try:
            metadata = json.loads((partial / "snapshot.json").read_text())
            return SnapshotInfo.from_json(metadata) if isinstance(metadata, dict) else None
        except (OSError, ValueError, SnapshotError):
            return None

    def publish(self, info: SnapshotInfo) -> Path:
        """Write snapshot.json, drop the crawl's working files, move the directory into place.

        snapshot.json comes first: from then on the crawl is finished, and a resumed one only
        renames (the hidden name keeps every command away until then).
        """
        for name in STORED_TABLES:
            if not (self.path / name).is_dir():
                raise AssertionError(f"table {name} was not written")
        tmp = self.path / "snapshot.json.tmp"
        tmp.write_text(json.dumps(info.to_json(), indent=2, sort_keys=False) + "\n")
        os.replace(tmp, self.path / "snapshot.json")
        for entry in self.path.iterdir():
            if entry.name != "snapshot.json" and entry.name not in STORED_SCHEMAS:
                shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        if os.path.lexists(self.output):  # only with --force
            # Checked as the crawl began (_check_output); again here, where it is replaced.
            problem = why_not_replaceable(self.output)
            if problem:
                raise OutputRefusedError(f"{self.output}: {problem}")
            old = self.output.parent / f".{self.output.name}.regstat-old-{os.getpid()}"
            os.rename(self.output, old)
            os.rename(self.path, self.output)
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(self.path, self.output)
        return self.output

    def discard(self) -> None:
        shutil.rmtree(self.path, ignore_errors=True)


def _check_output(output: str | os.PathLike[str], force: bool) -> Path:
    path = Path(output).absolute()
    if os.path.lexists(path):
        if not force:
            raise OutputExistsError(f"{output}: already exists; choose a new --output or pass --force")
        problem = why_not_replaceable(path)
        if problem:
            raise OutputRefusedError(f"{output}: {problem}")
    path.parent.mkdir(parents=True, exist_ok=True)
    return path


def partial_path(output: Path, pid: int) -> Path:
    return output.parent / f".{output.name}{PARTIAL_MARK}{pid}"


def _partials(output: Path) -> Iterator[tuple[Path, int]]:
    """Hidden directories of crawls to OUTPUT, with the pid of the process that wrote each."""
    pattern = re.compile(re.escape(f".{output.name}{PARTIAL_MARK}") + r"(\d+)")
    for candidate in output.parent.glob(f".{output.name}{PARTIAL_MARK}*"):
        match = pattern.fullmatch(candidate.name)
        if match and candidate.is_dir():
            yield candidate, int(match.group(1))


def find_interrupted(output: str | os.PathLike[str]) -> Path:
    """The hidden directory of the latest interrupted crawl to OUTPUT (its process is gone).

    Raises SnapshotError, saying what to do, when there is none or its crawl still runs.
    """
    path = Path(output).absolute()
    dead = []
    for candidate, pid in _partials(path):
        if _process_alive(pid):
            raise SnapshotError(f"{output}: a crawl (pid {pid}) is still writing it; wait for it, or stop it first")
        dead.append(candidate)
    if not dead:
        finished = " (it exists: the crawl finished)" if path.exists() else ""
        raise SnapshotError(
            f"{output}: nothing to resume: no interrupted crawl to it is left{finished}; "
            "run the command without --resume to start a new crawl"
        )
    latest = max(dead, key=lambda p: p.stat().st_mtime)
    if hasattr(os, "getuid") and latest.stat().st_uid != os.getuid():
        raise SnapshotError(f"{latest}: written by another user; not resuming it")
    return latest


def _remove_stale_partials(output: Path, keep: Path | None = None) -> None:
    """Remove hidden directories left by earlier crawls to OUTPUT whose process is gone."""
    for candidate, pid in _partials(output):
        if candidate != keep and not _process_alive(pid):
            shutil.rmtree(candidate, ignore_errors=True)


def _process_alive(pid: int) -> bool:
    if pid == os.getpid():
        return False  # our own leftover from an earlier life of this pid
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True
