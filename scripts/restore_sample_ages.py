#!/usr/bin/env python3
"""Give the files of ``sample_data/`` the ages the registry gave them.

Git keeps no modification times: in a fresh clone every file of the sample is minutes old,
and regstat's grace period (24 hours unless ``--grace``) would keep all of it out of a plan.
``sample_data/AGES`` records, for each file, how long before "now" the registry last wrote it,
in seconds (ages, not dates, so that the sample looks the same whenever it is restored). This
sets each file's modification time to now minus its age and writes that time into each
upload's ``startedat`` too, as the registry did when the upload began. Only the standard
library: it runs before regstat is installed.

Usage: python3 scripts/restore_sample_ages.py [TREE]     (TREE defaults to sample_data/)
"""

from __future__ import annotations

import os
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

AGES = "AGES"


def read_ages(tree: Path) -> dict[str, int]:
    """``tree/AGES``: one ``SECONDS PATH`` line per file (PATH relative to ``tree``)."""
    ages = {}
    for line in (tree / AGES).read_text().splitlines():
        if line and not line.startswith("#"):
            seconds, path = line.split(" ", 1)
            ages[path] = int(seconds)
    return ages


def restore(tree: Path, now: float | None = None) -> dict[str, int]:
    """Apply ``tree/AGES`` to the files under ``tree``; return the ages applied."""
    now = time.time() if now is None else now
    ages = read_ages(tree)
    for path, age in ages.items():
        when = now - age
        target = tree / path
        if target.name == "startedat":
            # RFC 3339 in UTC, as the registry writes it.
            target.write_text(datetime.fromtimestamp(when, UTC).strftime("%Y-%m-%dT%H:%M:%SZ"))
        os.utime(target, (when, when))
    return ages


def main() -> int:
    tree = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).resolve().parent.parent / "sample_data"
    ages = restore(tree)
    print(f"{tree}: {len(ages)} files dated as {tree / AGES} says, the oldest {max(ages.values()) // 86400} days old",
          file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
