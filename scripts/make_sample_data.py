#!/usr/bin/env python3
"""Regenerate ``sample_data/``: a small, real distribution storage tree and its description.

Runs Debian's ``docker-registry`` with filesystem storage in a temporary directory, pushes
the standard test scenario into it (``tests/scenario.py``: skopeo and the HTTP API), stops
the registry and copies its tree, so that ``sample_data/docker/registry/v2/…`` is exactly
what the registry wrote. ``sample_data/EXPECTED.json`` describes what the tree holds,
table by table, in the snapshot's column names, so tests can check a crawl of the committed
sample without a registry.

Content is deterministic (fixed layer bytes, configs and manifests, so fixed digests); only
the in-progress upload's uuid and ``startedat`` and the file times change between runs.
Empty directories (e.g. the revision directory of the deleted manifest) are pruned, since
git cannot keep them: the local tree then equals a fresh checkout.

Usage: .venv/bin/python scripts/make_sample_data.py [--output sample_data]
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO_ROOT / "tests"))  # tests/ is not a package: import its modules

from components import Registry  # noqa: E402
from expected import Expected  # noqa: E402
from scenario import populate  # noqa: E402
from storage_check import FilesystemView, verify_storage, verify_tree  # noqa: E402


def build_tree(workdir: Path) -> tuple[Path, dict]:
    """Push the scenario into a registry on ``workdir/storage``; return the storage root and
    the Expected description as JSON."""
    storage = workdir / "storage"
    with Registry(root=storage, workdir=workdir / "registry") as registry:
        expected = populate(registry)
        verify_storage(registry, expected)
    return storage, expected.to_json()


def prune_empty_dirs(root: Path) -> None:
    """Remove every empty directory below ``root`` (deepest first)."""
    directories = [p for p in root.rglob("*") if p.is_dir()]
    for directory in sorted(directories, key=lambda p: len(p.parts), reverse=True):
        if not any(directory.iterdir()):
            directory.rmdir()


def install(storage: Path, expected: dict, output: Path) -> None:
    """Replace ``output/docker`` and ``output/EXPECTED.json`` with the new tree."""
    output.mkdir(parents=True, exist_ok=True)
    shutil.rmtree(output / "docker", ignore_errors=True)
    shutil.copytree(storage / "docker", output / "docker")
    prune_empty_dirs(output / "docker")
    (output / "EXPECTED.json").write_text(json.dumps(expected, indent=1) + "\n")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--output", type=Path, default=REPO_ROOT / "sample_data")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="regstat-sample-") as tmp:
        storage, expected = build_tree(Path(tmp))
        install(storage, expected, args.output)
    # The copy, not only the registry's original, must hold what EXPECTED.json says.
    verify_tree(FilesystemView(args.output), Expected.from_json(expected))
    files = sum(1 for p in (args.output / "docker").rglob("*") if p.is_file())
    size = sum(p.stat().st_size for p in (args.output / "docker").rglob("*") if p.is_file())
    print(f"wrote {args.output}: {files} files, {size} bytes; {args.output / 'EXPECTED.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
