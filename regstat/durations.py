"""Durations as regstat writes them ('90s', '15m', '24h', '30d', '2w'), and the default grace
period: plan-gc's policy and the report's "reclaimable now" both use them (regstat.plan.policy
parses durations)."""

from __future__ import annotations

from datetime import timedelta

DEFAULT_GRACE = timedelta(hours=24)
UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % UNITS[unit] == 0:
            return f"{seconds // UNITS[unit]}{unit}"
    return f"{seconds}s"
