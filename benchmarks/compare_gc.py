"""What the registry's own GC deletes, next to what `regstat plan-gc` plans, on a real registry.

```sh
.venv/bin/python benchmarks/compare_gc.py [--json]
```

Starts Debian's `docker-registry` (distribution 2.8.2) on 127.0.0.1 with a temporary
filesystem storage, fills it with the hazardous shapes of tests/support/gc_hazards.py (a
tagged multi-arch index with untagged children, an untagged signature of a tagged image, a tag
overwritten with the old image's own signature left behind, digest-only pushes, layers shared
by cross-repository mounts, an unreferenced blob, a stale upload), then:

1. `regstat crawl ROOT` and `regstat plan-gc --untagged --grace 0s`;
2. `docker-registry garbage-collect --dry-run --delete-untagged` on a copy of the tree;
3. the same GC for real on that copy, and `skopeo copy --all` of every kept tag (and of the
   live signature, by digest) from a registry serving the result.

It prints counts and bytes for each (a Markdown table for docs/plan-gc.md) and what the GC broke. The
assertions behind these numbers are in tests/test_plan_registry.py; this script only measures.
Needs `docker-registry` and `skopeo` on the PATH. Takes a few seconds.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from pathlib import Path

TESTS = Path(__file__).resolve().parent.parent / "tests"
sys.path.insert(0, str(TESTS))

from support.components import Registry  # noqa: E402  (the tests' helpers)
from support.gc_hazards import compare, fill, format_numbers, gc_damage  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true", help="Print the numbers as JSON.")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regstat-compare-gc-") as tmp:
        work = Path(tmp)
        with Registry(root=work / "storage", workdir=work / "registry") as registry:
            hazards = fill(registry)
            comparison = compare(registry, hazards, work / "compare")
        numbers = comparison.numbers()
        numbers["registry_gc_for_real"] = gc_damage(comparison, work / "compare")
    if args.json:
        print(json.dumps(numbers, indent=2))
        return 0
    print(format_numbers(numbers))
    damage = numbers["registry_gc_for_real"]
    print(f"\nRun for real, the registry's GC removed {damage['blobs_removed']} blobs, "
          f"{damage['bytes_removed']:,} bytes; afterwards `skopeo copy --all` fails for:")
    for reference, error in sorted(damage["broken"].items()):
        print(f"- {reference}: {error.split('msg=', 1)[-1].strip(chr(34))}")
    return 0


if __name__ == "__main__":
    os.chdir(Path(__file__).resolve().parent.parent)
    sys.exit(main())
