"""`regstat sql -r GLOB`: a result's rows kept where its `repository` column matches."""

from __future__ import annotations

from collections.abc import Sequence

import pyarrow as pa
import pyarrow.compute as pc

from ..errors import RegstatError
from ..model import repository_selected

COLUMN = "repository"


class QueryScopeError(RegstatError):
    """-r/--repository with a query whose result has no `repository` column (a usage error)."""


def check_scoped(columns: Sequence[str], repositories: Sequence[str]) -> None:
    if repositories and COLUMN not in columns:
        raise QueryScopeError(
            f"--repository filters the result on its {COLUMN} column, and this query has none "
            f"(its columns: {', '.join(columns) or 'none'}): select a {COLUMN} column, or drop --repository"
        )


def scoped_rows(columns: Sequence[str], rows: list[tuple], repositories: Sequence[str]) -> list[tuple]:
    """The rows whose repository the globs select (a NULL repository is no repository's)."""
    check_scoped(columns, repositories)
    if not repositories:
        return rows
    at = list(columns).index(COLUMN)
    return [row for row in rows if row[at] is not None and repository_selected(str(row[at]), tuple(repositories))]


def scoped_table(table: pa.Table, repositories: Sequence[str]) -> pa.Table:
    check_scoped(table.column_names, repositories)
    if not repositories:
        return table
    values = table.column(COLUMN)
    names = [n for n in pc.unique(values).to_pylist() if n is not None]
    chosen = pa.array([n for n in names if repository_selected(str(n), tuple(repositories))], type=values.type)
    return table.filter(pc.is_in(values, value_set=chosen))
