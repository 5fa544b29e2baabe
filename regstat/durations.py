"""Durations as regstat writes them ('90s', '15m', '24h', '30d', '2w'), and the default grace
period: plan-gc's policy and the report's "reclaimable now" both use them (regstat.plan.policy
parses durations)."""

from __future__ import annotations

import re
from datetime import timedelta

DEFAULT_GRACE = timedelta(hours=24)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
LONGEST = timedelta(days=36500)  # ages are measured back from a snapshot: a century is plenty
_DURATION = re.compile(r"(\d+)([smhdw])")


def parse_duration(text: str) -> timedelta:
    """'90s', '15m', '24h', '30d', '2w' or a sum such as '1d12h'; ValueError says what is wrong."""
    compact = str(text).replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise ValueError(f"{text!r} is not a duration: a whole number and a unit (s, m, h, d, w), "
                         "or a sum of them (e.g. 90s, 15m, 24h, 30d, 2w, 1d12h)")
    seconds = sum(int(n) * UNITS[u] for n, u in parts)
    if seconds > LONGEST.total_seconds():
        raise ValueError(f"{text!r} is longer than {LONGEST.days}d (100 years)")
    return timedelta(seconds=seconds)


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
