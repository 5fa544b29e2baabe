"""Reachability (docs/design.md "Definitions"), materialised as the table `reachable`.

Within a repository, the tagged manifests and the roots (manifests.root: an OCI layout's
unnamed index.json entries) reach their index children and their referrers (manifests whose
subject they are), repeated until nothing changes. The SQL stays portable
(no `WITH RECURSIVE`): `sql/reachable_seed.sql` gives depth 0, and `sql/reachable_step.sql`
gives the manifests one step beyond the deepest rows that are not reached yet; this driver
appends them and repeats until a step adds nothing.

    reachable (repository, digest, depth, via)
        depth  steps from the nearest tag or root (0: tagged, or a root)
        via    'tag', 'root', 'index' (child of a reachable index) or 'referrer' (subject reachable)

A chain deeper than `max_depth` raises ReachabilityError: the result is never truncated.
"""

from __future__ import annotations

from .. import queries
from ..errors import RegstatError
from . import engine

MAX_DEPTH = 64
TABLE = "reachable"


class ReachabilityError(RegstatError):
    """Reachability did not converge within the depth bound."""


def materialise(db: engine.Engine, *, max_depth: int = MAX_DEPTH, seed: str = "reachable_seed") -> int:
    """Create the table `reachable` in `db`, from the seed query `sql/SEED.sql` (the planner
    seeds it with what its policy keeps); return the greatest depth reached."""
    seed = _select(seed)
    db.materialise_view("manifest_edges")  # every step joins it
    step = _select("reachable_step")
    db.create_table(TABLE, seed, replace=True)
    depth = 0
    while True:
        if depth == max_depth:
            pending = db.rows(f"SELECT count(*) AS pending FROM ({step}) AS pending")[1][0][0]
            if pending:
                raise ReachabilityError(
                    f"reachability: manifests still being reached after {max_depth} steps "
                    "(index or referrer chains deeper than the bound)"
                )
            return depth
        added = db.insert(TABLE, step)
        if not added:
            return depth
        depth += 1


def create_empty(db: engine.Engine) -> None:
    """Create `reachable` with its columns and no rows, so views over it can be defined
    before (or without) computing it."""
    # Typed after `manifests`: digests are text, or ids in a keyed analysis (regstat.snapshot.digest_ids).
    db.create_table(
        TABLE,
        "SELECT repository, digest, CAST(0 AS INTEGER) AS depth, CAST(NULL AS VARCHAR) AS via "
        "FROM manifests WHERE FALSE",
        replace=True,
    )


def _select(name: str) -> str:
    """A query file's SELECT, without a trailing semicolon, ready to wrap."""
    return engine.bare(queries.load(name))
