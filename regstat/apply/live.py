"""The registry as it is now: regstat's own crawler run again into a temporary snapshot, and
the SQL (sql/apply_*_checks.sql) that decides which planned actions still hold there.

The tag and manifest phase reads a crawl of the plan's repositories; the blob and upload phase
a crawl of the whole source taken after the manifests went (a blob may have gained a reference
anywhere). What a fresh crawl could not read (errors in a repository, or anywhere for blobs)
decides nothing: those actions are skipped as crawl_incomplete.
"""

from __future__ import annotations

import shutil
import tempfile
from collections.abc import Collection, Iterable
from dataclasses import replace
from datetime import datetime
from pathlib import Path

import duckdb
import pyarrow as pa

from .. import analysis, queries
from ..crawl import CrawlOptions, crawl
from ..progress import Progress
from ..snapshot import Snapshot, SnapshotInfo
from .target import Action

# Crawl errors that leave nothing unread: a repository directory without manifests (what
# distribution leaves when a repository's last manifest is deleted, by apply-gc or through
# its API, and what an interrupted first push leaves) holds no manifest and references nothing.
_HARMLESS = frozenset({"no_manifests_dir"})

# The columns of the plan's actions the checks read.
_ACTIONS = pa.schema([("position", pa.int64()), ("action", pa.string()), ("repository", pa.string()),
                      ("tag", pa.string()), ("digest", pa.string()), ("uuid", pa.string())])


class Fresh:
    """A fresh crawl of the source: a temporary snapshot, removed on close."""

    def __init__(self, source: str, options: CrawlOptions, repositories: Collection[str] = ()) -> None:
        self._directory = Path(tempfile.mkdtemp(prefix="regstat-apply-"))
        try:
            result = crawl(source, str(self._directory / "snapshot"), replace(
                options, repositories=tuple(sorted(repositories)), force=False, resume=False,
                progress=Progress(enabled=False)))
            self.info: SnapshotInfo = result.info
            self.snapshot = Snapshot.open(result.path)
            self.con = analysis.connect(self.snapshot, reachable=False, ranks=False)
        except BaseException:
            shutil.rmtree(self._directory, ignore_errors=True)
            raise
        self._tags: dict[tuple[str, str], frozenset[str]] | None = None
        errors = [e for e in self.info.errors if e.kind not in _HARMLESS]
        # An error outside any repository may hide anything: no repository counts as read.
        self._whole = any(e.repository is None for e in errors)
        self._unread = frozenset(e.repository for e in errors if e.repository is not None)

    @property
    def complete(self) -> bool:
        """Everything read (a partial crawl of the plan's repositories counts as complete)."""
        return not self._whole and not self._unread

    def verdicts(self, check: str, actions: Iterable[Action], *, gone_manifests: Iterable[tuple[str, str]] = (),
                 grace_cutoff: datetime | None = None) -> dict[int, str]:
        """sql/apply_CHECK_checks.sql over `actions`: position -> verdict (ok, gone, or the
        reason to skip)."""
        self._bind(actions, gone_manifests, grace_cutoff)
        rows = self.con.execute(queries.load(f"apply_{check}_checks")).fetchall()
        return {int(position): str(verdict) for position, verdict, *_ in rows}

    def blockers(self, actions: Iterable[Action]) -> dict[int, set[int]]:
        """For each planned manifest deletion, the planned actions it waits on (sql/apply_manifest_blockers.sql)."""
        self._bind(actions, (), None)
        found: dict[int, set[int]] = {}
        for position, blocker in self.con.execute(queries.load("apply_manifest_blockers")).fetchall():
            found.setdefault(int(position), set()).add(int(blocker))
        return found

    def tags_naming(self, repository: str, digest: str) -> frozenset[str]:
        if self._tags is None:
            named: dict[tuple[str, str], set[str]] = {}
            for repo, tag, dig in self.con.execute("SELECT repository, tag, digest FROM tags").fetchall():
                named.setdefault((repo, dig), set()).add(tag)
            self._tags = {k: frozenset(v) for k, v in named.items()}
        return self._tags.get((repository, digest), frozenset())

    def _bind(self, actions: Iterable[Action], gone: Iterable[tuple[str, str]], cutoff: datetime | None) -> None:
        rows = [{"position": a.position, "action": a.kind, "repository": a.repository, "tag": a.tag,
                 "digest": a.digest, "uuid": a.uuid} for a in actions]
        _replace(self.con, "apply_actions", pa.Table.from_pylist(rows, schema=_ACTIONS))
        incomplete = sorted({r["repository"] for r in rows if r["repository"]} if self._whole else self._unread)
        _replace(self.con, "apply_incomplete", pa.table({"repository": pa.array(incomplete, pa.string())}))
        gone = list(gone)
        repositories, digests = zip(*gone, strict=True) if gone else ((), ())
        _replace(self.con, "apply_gone_manifests", pa.table({"repository": pa.array(repositories, pa.string()),
                                                             "digest": pa.array(digests, pa.string())}))
        _replace(self.con, "apply_settings", pa.table({"grace_cutoff": pa.array([cutoff], pa.timestamp("us", "UTC"))}))
        self.con.execute("CREATE OR REPLACE TABLE apply_live_edges AS " + queries.load("apply_live_edges"))

    def close(self) -> None:
        self.con.close()
        shutil.rmtree(self._directory, ignore_errors=True)


def _replace(con: duckdb.DuckDBPyConnection, name: str, table: pa.Table) -> None:
    con.register(f"{name}_arrow", table)
    con.execute(f"CREATE OR REPLACE TABLE {name} AS SELECT * FROM {name}_arrow")
    con.unregister(f"{name}_arrow")
