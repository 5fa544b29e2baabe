"""regstat's exceptions, one tree.

    RegstatError                 anything regstat reports to the user
    ├── SourceError              the SOURCE cannot be read at all (missing, unreachable, denied)
    ├── SnapshotError            a directory is not a finished snapshot, or is damaged
    │   ├── OutputExistsError    refusing to overwrite an existing --output
    │   └── OutputRefusedError   refusing an output path: not regstat's to replace, or inside
    │                            a snapshot or a local SOURCE (DESIGN safety rule 8)
    └── ManifestError            a manifest body that cannot be parsed (recorded, never fatal)

Problems inside a reachable source (a bad link file, a missing blob) are not exceptions that
stop a crawl: they become `CrawlError` records in the snapshot and mark their repository
incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes: cron jobs branch on these, so they are part of the interface (README lists them).
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected failure
EXIT_USAGE = 2  # click's own code for usage errors
EXIT_INCOMPLETE = 3  # snapshot written, but with errors or partial
EXIT_SOURCE = 4  # SOURCE missing, unreachable or unreadable; no snapshot written
EXIT_SNAPSHOT = 5  # not a snapshot, or an --output regstat refuses (it exists, or is not its to write)
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM; no snapshot written


class RegstatError(Exception):
    """Base of everything regstat reports to the user."""

    exit_code = EXIT_FAILURE


class SourceError(RegstatError):
    """The SOURCE cannot be read at all."""

    exit_code = EXIT_SOURCE


class SnapshotError(RegstatError):
    """A directory is not a finished regstat snapshot."""

    exit_code = EXIT_SNAPSHOT


class OutputExistsError(SnapshotError):
    """The crawl's --output already exists."""


class OutputRefusedError(SnapshotError):
    """An output path regstat never writes, --force or not: replacing it would destroy what
    regstat did not write, or it lies inside a snapshot or a local SOURCE."""


class ManifestError(RegstatError):
    """A manifest body that cannot be parsed; `status` says how it failed."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass(frozen=True)
class CrawlError:
    """A problem met while crawling, recorded in snapshot.json.

    `repository` is None for problems outside any repository; those make the whole
    snapshot incomplete.
    """

    repository: str | None
    path: str
    kind: str
    message: str

    def to_json(self) -> dict[str, str | None]:
        return {
            "repository": self.repository,
            "path": self.path,
            "kind": self.kind,
            "message": self.message,
        }
