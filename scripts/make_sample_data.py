#!/usr/bin/env python3
"""Regenerate ``sample_data/`` (or, with ``--scenario``, ``tests/scenario_tree/``): a real
distribution storage tree and its description.

Runs Debian's ``docker-registry`` with filesystem storage in a temporary directory, pushes
into it (skopeo and the HTTP API), stops the registry and copies its tree, so that
``…/docker/registry/v2/…`` is exactly what the registry wrote. ``EXPECTED.json`` beside it
describes what the tree holds, table by table, in the snapshot's column names, so tests can
check a crawl of the committed tree without a registry.

- ``sample_data/``: the registry of ``scripts/sample_registry.py``, eight months of a team's
  pushes, for the README's first command. ``sample_data/AGES`` holds each file's age as the
  history gave it (seconds before now); ``scripts/restore_sample_ages.py`` applies them, since
  git keeps no modification times.
- ``tests/scenario_tree/``: the tests' standard scenario (``tests/support/scenario.py``), which tests
  reason about exactly; they set its file times themselves.

Content is deterministic (fixed layer bytes, configs and manifests, so fixed digests, and
fixed ages); only upload uuids and ``startedat`` change between runs. Empty directories
(e.g. the revision directory of a deleted manifest) are pruned, since git cannot keep them:
the local tree then equals a fresh checkout.

Usage: .venv/bin/python scripts/make_sample_data.py [--scenario] [--output DIR]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # the tests' helpers: the support package

import sample_registry  # noqa: E402
from restore_sample_ages import AGES, restore  # noqa: E402
from support import scenario  # noqa: E402
from support.components import Registry  # noqa: E402
from support.expected import Expected  # noqa: E402
from support.storage_check import FilesystemView, verify_storage, verify_tree  # noqa: E402


def build_tree(workdir: Path, sample: bool) -> tuple[Path, dict, dict[str, int] | None]:
    """Push into a registry on ``workdir/storage``; return the storage root, the Expected
    description as JSON and (for the sample) each file's age."""
    storage = workdir / "storage"
    ages = None
    with Registry(root=storage, workdir=workdir / "registry") as registry:
        if sample:
            expected, ages = sample_registry.populate(registry, storage)
        else:
            expected = scenario.populate(registry)
        verify_storage(registry, expected)
    return storage, expected.to_json(), ages


def prune_empty_dirs(root: Path) -> None:
    """Remove every empty directory below ``root`` (deepest first)."""
    directories = [p for p in root.rglob("*") if p.is_dir()]
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def install(storage: Path, expected: dict, ages: dict[str, int] | None, output: Path) -> None:
    """Replace ``output/docker``, ``output/EXPECTED.json`` and ``output/AGES`` with the new tree."""
    output.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output / "docker", ignore_errors=True)
    shutil.copytree(storage / "docker", output / "docker")
    prune_empty_dirs(output / "docker")
    (output / "EXPECTED.json").write_text(json.dumps(expected, indent=1) + "\n")
    if ages is not None:
        lines = [f"{age} {path}" for path, age in sorted(ages.items())]
        header = ("# seconds before now that the registry last wrote each file; "
                  "scripts/restore_sample_ages.py applies them\n")
        (output / AGES).write_text(header + "\n".join(lines) + "\n")
        restore(output)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--scenario", action="store_true", help="write the tests' scenario tree")
    parser.add_argument("--output", type=Path)
    args = parser.parse_args()
    output = args.output or REPO_ROOT / ("tests/scenario_tree" if args.scenario else "sample_data")
    with tempfile.TemporaryDirectory(prefix="regstat-sample-") as tmp:
        storage, expected, ages = build_tree(Path(tmp), sample=not args.scenario)
        install(storage, expected, ages, output)
    # The copy, not only the registry's original, must hold what EXPECTED.json says.
    verify_tree(FilesystemView(output), Expected.from_json(expected))
    files = [p for p in (output / "docker").rglob("*") if p.is_file()]
    size = sum(p.stat().st_size for p in files)
    print(f"wrote {output}: {len(files)} files, {size} bytes; {output / 'EXPECTED.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
