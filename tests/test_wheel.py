"""The built wheel holds the whole package (issue 16): pyproject.toml finds the packages
instead of listing them, so a new sub-package imports under `pip install -e` and ships in the
wheel too.

The wheel is built from a copy of the sources (the checkout is left as it is), installed with
--no-deps into a fresh virtualenv that sees this environment's dependencies (duckdb, pyarrow,
click, boto3: nothing is downloaded), and run from outside the repository, so only the
installed package can answer: every module under regstat/ imports from the virtualenv,
`regstat --help` runs, and every sql/ file is inside as regstat.sql.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
IGNORE = shutil.ignore_patterns("__pycache__", "*.pyc")

CHECK = """
import importlib, json, sys
from importlib import resources
names, prefix = json.loads(sys.argv[1]), sys.argv[2]
outside = {}
for name in names:
    module = importlib.import_module(name)
    if not module.__file__.startswith(prefix):
        outside[name] = module.__file__
sql = sorted(p.name for p in resources.files("regstat.sql").iterdir() if p.name.endswith(".sql"))
print(json.dumps({"outside": outside, "sql": sql}))
"""


def run(*command: str | Path, cwd: Path) -> str:
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    done = subprocess.run([str(c) for c in command], cwd=cwd, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"{command}: exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done.stdout


def module_names() -> list[str]:
    names = []
    for path in sorted((REPO / "regstat").rglob("*.py")):
        parts = path.relative_to(REPO).with_suffix("").parts
        names.append(".".join(parts[:-1] if parts[-1] == "__init__" else parts))
    return names


def test_the_wheel_installs_every_module_the_cli_and_the_sql(tmp_path: Path) -> None:
    source = tmp_path / "source"
    source.mkdir()
    for name in ("pyproject.toml", "setup.py", "README.md"):
        shutil.copy2(REPO / name, source / name)
    shutil.copytree(REPO / "regstat", source / "regstat", ignore=IGNORE)
    shutil.copytree(REPO / "sql", source / "sql", ignore=IGNORE)
    dist = tmp_path / "dist"
    run(sys.executable, "-m", "pip", "wheel", source, "-w", dist, "--no-deps", "--no-build-isolation", "-q",
        cwd=tmp_path)
    (wheel,) = dist.glob("regstat-*.whl")

    venv = tmp_path / "venv"
    run(sys.executable, "-m", "venv", "--without-pip", venv, cwd=tmp_path)
    python = venv / "bin" / "python"
    site = Path(run(python, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])", cwd=tmp_path).strip())
    # This environment's site-packages as a plain path entry: its dependencies import, but its
    # .pth files (the editable install of regstat among them) are not run.
    here = dict.fromkeys(sysconfig.get_paths()[key] for key in ("purelib", "platlib"))
    (site / "dependencies.pth").write_text("".join(f"{path}\n" for path in here))
    run(sys.executable, "-m", "pip", "--python", python, "install", "--no-deps", "--no-index", "-q", wheel,
        cwd=tmp_path)

    names = module_names()
    assert {"regstat.cli", "regstat.plan.planner", "regstat.sources.storage_tree.s3"} <= set(names)
    found = json.loads(run(python, "-I", "-c", CHECK, json.dumps(names), str(site), cwd=tmp_path))
    assert found["outside"] == {}, "imported from outside the virtualenv"
    assert found["sql"] == sorted(p.name for p in (REPO / "sql").glob("*.sql"))
    assert len(found["sql"]) > 40

    help_text = run(venv / "bin" / "regstat", "--help", cwd=tmp_path)
    for command in ("crawl", "sql", "export-db", "report", "plan-gc", "explain"):
        assert f"\n  {command} " in help_text, help_text
