"""regstat's exceptions, one tree.

    Exception
    ├── RegstatError             anything regstat reports to the user; regstat.cli.edge maps
    │   │                        each class to its exit code and its JSON `kind`
    │   ├── SourceError          the SOURCE cannot be read at all (missing, unreachable, denied)
    │   ├── SelectorError        (snapshot.history) a history or HISTORY@selector naming no
    │   │                        snapshot: a usage error
    │   ├── SnapshotError        a directory is not a finished snapshot, or is damaged
    │   │   ├── OutputExistsError    refusing to overwrite an existing --output
    │   │   ├── OutputRefusedError   refusing an output path: not regstat's to replace, or
    │   │   │                        inside a snapshot or a local SOURCE (DESIGN safety rule 8)
    │   │   ├── DiffSourceError      (report.diff) diff's OLD and NEW are of different sources
    │   │   └── PreviousUnusable     (snapshot.previous) a --previous snapshot not trusted: the
    │   │                            crawl warns and reads every manifest
    │   ├── ManifestError        a manifest body that cannot be parsed (recorded, never fatal)
    │   ├── QueryError           (analysis.connection) a query DuckDB rejects, or one that writes
    │   ├── EngineUnavailable    (analysis.engine) --engine spark without the spark extra, or a
    │   │                        snapshot URL only Spark reads without --engine spark: a usage error
    │   ├── SparkFailure         (analysis.spark_failure) a Spark session or job failed: its
    │   │                        error in one line, with a hint where one is known
    │   ├── OutOfMemory          (analysis.duckdb_failure) DuckDB ran out of memory or spill
    │   │                        room: its first line, and what to do
    │   ├── QueryScopeError      (analysis.scope) sql -r with a query that has no repository
    │   │                        column: a usage error
    │   ├── ExportError          (analysis.export) a database file that cannot be written
    │   ├── ReachabilityError    (analysis.reachability) reachability did not converge
    │   ├── PolicyError          (plan.policy) a policy that cannot be used: a usage error
    │   ├── PlanError            (plan.planner) a plan that cannot be made safely
    │   ├── PlanFileError        (plan.plan) a file given as a plan that is not one regstat
    │   │                        wrote, or is damaged: a usage error
    │   ├── ExplainError         (plan.explain) nothing to explain, or a plan of another snapshot
    │   ├── HistoryError         (apply.history) explain --journal: the plan has no action on it
    │   ├── ApplyRefused         apply-gc will not run a plan (tampered, stale, over --max-deletes,
    │   │   │                    another registry): exit 5, nothing deleted
    │   │   ├── ApplyLocked      (apply.journal) another apply-gc of the plan holds its lock
    │   │   └── JournalError     (apply.journal) a journal that cannot be read or written, or
    │   │                        that another plan wrote
    │   └── TargetError          (plan.explain_target) explain's argument names nothing, or
    │       │                    several digests
    │       └── TargetFormError  (plan.explain_target) explain's argument has none of its
    │                            forms: a usage error
    └── signals inside a stage, never shown as they are: the stage records them as a
        │                        CrawlError, retries, or raises a RegstatError in their place
        ├── TransportError       (registry API) no usable answer: connection failed, retries ran out
        ├── ApiProblem           (registry API) a request failed in a way the crawl records
        ├── AuthError            (registry API) the registry or its token service refused us
        ├── BadAnswer            (S3) an answer that arrived whole but cannot be right
        ├── LiveCheckError       (apply.target) apply-gc's live check got no usable answer:
        │                        the action is recorded as failed
        └── NotResumable         (crawl) a job the journal cannot record: no --resume later

    KeyboardInterrupt
    └── Interrupted              (interrupts) a recorded SIGINT or SIGTERM: exit code 130

The RegstatError subclasses named with a module live there, beside what raises them; every
other class is here. tests/test_errors.py fails on an exception class of regstat missing from
this tree.

Problems inside a reachable source (a bad link file, a missing blob) are not exceptions that
stop a crawl: they become `CrawlError` records in the snapshot and mark their repository
incomplete.
"""

from __future__ import annotations

from dataclasses import dataclass

# Exit codes: cron jobs branch on these, so they are part of the interface (docs/failures.md lists them).
# Which error exits with which: regstat.cli.edge, the one place.
EXIT_OK = 0
EXIT_FAILURE = 1  # unexpected failure
EXIT_USAGE = 2  # click's own code for usage errors
EXIT_INCOMPLETE = 3  # snapshot written, but with errors or partial
EXIT_SOURCE = 4  # SOURCE missing, unreachable or unreadable; no snapshot written
EXIT_SNAPSHOT = 5  # not a snapshot, or an --output regstat refuses (it exists, or is not its to write)
EXIT_REFUSED = 5  # apply-gc refuses a plan (tampered, stale, too many deletions, locked); nothing deleted
EXIT_GROWTH = 6  # regstat diff --fail-on-growth: physical bytes grew more than allowed (the diff is written)
EXIT_INTERRUPTED = 130  # SIGINT / SIGTERM; no snapshot written


class RegstatError(Exception):
    """Base of everything regstat reports to the user."""


class SourceError(RegstatError):
    """The SOURCE cannot be read at all."""


class SnapshotError(RegstatError):
    """A directory is not a finished regstat snapshot."""


class OutputExistsError(SnapshotError):
    """The crawl's --output already exists."""


class OutputRefusedError(SnapshotError):
    """An output path regstat never writes, --force or not: replacing it would destroy what
    regstat did not write, or it lies inside a snapshot or a local SOURCE."""


class ApplyRefused(RegstatError):
    """apply-gc will not run this plan: exit 5, nothing deleted."""


class ManifestError(RegstatError):
    """A manifest body that cannot be parsed; `status` says how it failed."""

    def __init__(self, status: str, message: str) -> None:
        super().__init__(message)
        self.status = status


class TransportError(Exception):
    """No usable answer: the connection failed or the retries ran out. Safe to show."""

    def __init__(self, message: str, *, refused: bool = False) -> None:
        super().__init__(message)
        self.refused = refused


class ApiProblem(Exception):
    """A request that failed in a way the crawl records (`kind`, as in snapshot.json errors)."""

    def __init__(self, path: str, kind: str, message: str, status: int | None = None, code: str = "") -> None:
        super().__init__(message)
        self.path = path
        self.kind = kind
        self.message = message
        self.status = status
        self.code = code  # the registry's error code (NAME_UNKNOWN, …), if it gave one


class AuthError(Exception):
    """The registry or its token service refused us, or we refused to send credentials."""


class BadAnswer(Exception):
    """An S3 response that arrived whole but cannot be right (a listing page that does not add
    up, a body shorter than its range says)."""


class NotResumable(Exception):
    """A job the journal cannot record: the crawl goes on, but cannot be resumed."""


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
