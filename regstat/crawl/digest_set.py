"""The manifest digests a crawl has asked for and written, in memory or, past a limit, in SQLite."""

from __future__ import annotations

import sqlite3
from pathlib import Path


DIGESTS = "_digests.sqlite"


_SHA256 = "sha256:"


class DigestSet:
    """The manifest digests a crawl has asked for, and which of them it has written.

    Up to MEMORY_DIGESTS digests live in a dict (a few microseconds less per digest than a
    database, on the crawl's busiest thread); beyond that they move to an SQLite file in the
    staging directory with a small page cache, so a crawl of millions of manifests does not
    hold hundreds of megabytes of digests. It is derived state: a resumed crawl rebuilds it
    from the journal. In SQLite, sha256 digests are stored as their 32 bytes, others as text
    (a BLOB never equals a TEXT in SQLite).
    """

    BATCH = 500  # values per statement (SQLite allows 32766 variables)
    MEMORY_DIGESTS = 100_000  # ~16 MB of str keys, about SQLite's page cache below

    def __init__(self, path: Path, cache_kib: int = 16384, memory_digests: int = MEMORY_DIGESTS) -> None:
        if path.exists():
            path.unlink()
        self._path, self._cache_kib, self._limit = path, cache_kib, memory_digests
        self._memory: dict[str, bool] | None = {}  # digest -> written; None once in SQLite
        self._con: sqlite3.Connection | None = None

    def _spill(self) -> None:
        """Move the digests from memory to the SQLite file."""
        assert self._memory is not None
        self._con = sqlite3.connect(self._path, isolation_level=None)
        for pragma in ("journal_mode=OFF", "synchronous=OFF", f"cache_size=-{self._cache_kib}", "temp_store=FILE"):
            self._con.execute(f"PRAGMA {pragma}")
        self._con.execute("CREATE TABLE digests (key PRIMARY KEY, written INTEGER NOT NULL) WITHOUT ROWID")
        self._con.executemany(
            "INSERT INTO digests VALUES (?, ?)", ((self._key(d), int(w)) for d, w in self._memory.items())
        )
        self._memory = None

    @staticmethod
    def _key(digest: str) -> bytes | str:
        if digest.startswith(_SHA256) and len(digest) == 71:
            try:
                return bytes.fromhex(digest[7:])
            except ValueError:
                pass
        return digest

    def _returning(self, sql: str, written: int, digests: list[str]) -> list[str]:
        """Run an INSERT ... RETURNING key over `digests`; those it returned, in their order, once."""
        assert self._con is not None
        returned: set[bytes | str] = set()
        keys = [self._key(d) for d in digests]
        for i in range(0, len(keys), self.BATCH):
            chunk = keys[i : i + self.BATCH]
            values = ",".join([f"(?,{written})"] * len(chunk))
            returned.update(row[0] for row in self._con.execute(sql.format(values=values), chunk))
        out = []
        for digest, key in zip(digests, keys, strict=True):
            if key in returned:
                returned.discard(key)
                out.append(digest)
        return out

    def add_new(self, digests: list[str]) -> list[str]:
        """Record `digests` as asked for; those not known before, in their order."""
        memory = self._memory
        if memory is None:
            return self._returning("INSERT OR IGNORE INTO digests VALUES {values} RETURNING key", 0, digests)
        out = []
        for digest in digests:
            if digest not in memory:
                memory[digest] = False
                out.append(digest)
        if len(memory) > self._limit:
            self._spill()
        return out

    def mark_written(self, digests: list[str]) -> list[str]:
        """Record `digests` as written; those not written before, in their order."""
        memory = self._memory
        if memory is None:
            return self._returning(
                "INSERT INTO digests VALUES {values} ON CONFLICT (key) DO UPDATE SET written = 1 "
                "WHERE written = 0 RETURNING key",
                1,
                digests,
            )
        out = []
        for digest in digests:
            if not memory.get(digest):
                memory[digest] = True
                out.append(digest)
        if len(memory) > self._limit:
            self._spill()
        return out

    def unwritten(self, digests: list[str]) -> list[str]:
        """Those of `digests` not written, in their order, once."""
        if self._memory is not None:
            memory = self._memory
            return [d for d in dict.fromkeys(digests) if not memory.get(d)]
        assert self._con is not None
        keys = [self._key(d) for d in digests]
        written: set[bytes | str] = set()
        for i in range(0, len(keys), self.BATCH):
            chunk = keys[i : i + self.BATCH]
            marks = ",".join("?" * len(chunk))
            written.update(
                row[0]
                for row in self._con.execute(f"SELECT key FROM digests WHERE written = 1 AND key IN ({marks})", chunk)
            )
        out, seen = [], set()
        for digest, key in zip(digests, keys, strict=True):
            if key not in written and key not in seen:
                seen.add(key)
                out.append(digest)
        return out

    def close(self) -> None:
        if self._con is not None:
            self._con.close()
        self._memory = None
