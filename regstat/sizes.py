"""Sizes as people write them ('500MB', '2GiB', '1.5 TB', '1048576'): decimal units are
powers of 1000 and binary ones (KiB, MiB, ...) powers of 1024, as human_bytes prints them
(regstat.render). `regstat diff --fail-on-growth` reads its threshold with parse_size."""

from __future__ import annotations

import re
from decimal import Decimal

_UNITS = {
    "": 1, "b": 1,
    "k": 1000, "kb": 1000, "m": 1000**2, "mb": 1000**2, "g": 1000**3, "gb": 1000**3,
    "t": 1000**4, "tb": 1000**4, "p": 1000**5, "pb": 1000**5,
    "kib": 1024, "mib": 1024**2, "gib": 1024**3, "tib": 1024**4, "pib": 1024**5,
}
_SIZE = re.compile(r"\s*([0-9]+(?:\.[0-9]+)?)\s*([a-zA-Z]*)\s*")


def parse_size(text: str) -> int:
    """Bytes in `text`: a number, optionally with a unit (B, kB/KB, MB, GB, TB, PB decimal;
    KiB, MiB, GiB, TiB, PiB binary; case ignored). Raises ValueError, saying what is
    accepted, on anything else (a negative number, an unknown unit)."""
    match = _SIZE.fullmatch(text)
    unit = match.group(2).lower() if match else None
    if match is None or unit not in _UNITS:
        raise ValueError(f"{text!r} is not a size: give bytes, or a number with a unit such as 500MB or 2GiB")
    return int(Decimal(match.group(1)) * _UNITS[unit])
