"""The SQL files in `sql/`, loaded by name (SQL is data: one query per file)."""

from __future__ import annotations

from functools import cache
from importlib import resources


@cache
def load(name: str) -> str:
    """The text of `sql/NAME.sql`."""
    return (resources.files("regstat.sql") / f"{name}.sql").read_text()


def names() -> list[str]:
    return sorted(p.name[:-4] for p in resources.files("regstat.sql").iterdir() if p.name.endswith(".sql"))
