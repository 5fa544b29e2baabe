"""The tests' own layout: what test modules share lives in tests/support/, never in a test
module, and every loopback HTTP server of tests and benchmarks stands on one base.

A test module importing another (`from test_analysis import write_snapshot`) runs the other's
module-level code and collects its fixtures and tests a second time, and ties the two
together so that neither can be changed alone; scripts and benchmarks importing a test
module do the same. Every module under tests/, benchmarks/ and scripts/ is parsed with `ast`,
imports inside functions included.
"""

from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

from support.acr_standin import AcrStandinServer
from support.api_components import FaultProxy, TokenServer
from support.ecr_proxy import EcrProxy
from support.proxy import LoopbackServer, Proxy
from support.s3_fault_proxy import S3FaultProxy

REPO_ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("tests", "benchmarks", "scripts")


def imported_modules(path: Path) -> list[tuple[int, str]]:
    """(line, module) of every absolute import in the file; `from x import y` gives x."""
    tree = ast.parse(path.read_text(), str(path))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and not node.level and node.module:
            found.append((node.lineno, node.module))
            # `from tests import test_x` names the test module in the alias
            found += [(node.lineno, f"{node.module}.{alias.name}") for alias in node.names]
    return found


def problems(root: Path = REPO_ROOT) -> list[str]:
    out = []
    for directory in SCANNED:
        for path in sorted((root / directory).rglob("*.py")):
            where = path.relative_to(root)
            for line, module in imported_modules(path):
                last = module.rpartition(".")[2]
                if last.startswith("test_") or last == "conftest":
                    out.append(f"{where}:{line}: imports the test module {module}: "
                               "move what it needs to tests/support/")
    for path in sorted((root / "tests").glob("*.py")):
        if not path.name.startswith("test_") and path.name != "conftest.py":
            out.append(f"tests/{path.name}: a helper outside tests/support/")
    return out


def test_no_test_module_is_imported_and_helpers_live_in_support() -> None:
    assert problems() == []
    assert (REPO_ROOT / "tests" / "support" / "__init__.py").is_file()


def test_the_check_catches_each_breach(tmp_path: Path) -> None:
    for directory in SCANNED:
        (tmp_path / directory).mkdir()
    (tmp_path / "tests" / "test_a.py").write_text("import pytest\n\n\ndef f():\n    from test_b import x\n")
    (tmp_path / "tests" / "test_b.py").write_text("from support.snapshots import rows\nx = 1\n")
    (tmp_path / "tests" / "helpers.py").write_text("")
    (tmp_path / "benchmarks" / "bench.py").write_text("import conftest\n")
    (tmp_path / "scripts" / "make.py").write_text("from tests import test_b\n")
    assert problems(tmp_path) == [
        "tests/test_a.py:5: imports the test module test_b: move what it needs to tests/support/",
        "benchmarks/bench.py:1: imports the test module conftest: move what it needs to tests/support/",
        "scripts/make.py:1: imports the test module tests.test_b: move what it needs to tests/support/",
        "tests/helpers.py: a helper outside tests/support/",
    ]


def test_one_proxy_base_serves_the_tests_and_the_benchmarks() -> None:
    spec = importlib.util.spec_from_file_location("latency_proxy", REPO_ROOT / "benchmarks" / "latency_proxy.py")
    assert spec is not None and spec.loader is not None
    latency_proxy = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(latency_proxy)
    for proxy in (S3FaultProxy, EcrProxy, FaultProxy, AcrStandinServer, latency_proxy.LatencyProxy):
        assert issubclass(proxy, Proxy), proxy
    assert issubclass(TokenServer, LoopbackServer)
    # No other module starts an HTTP server of its own.
    starts_a_server = re.compile(
        r"from (http\.server|socketserver) import .*Server|(http\.server|socketserver)\.\w*Server")
    servers = [
        str(path.relative_to(REPO_ROOT))
        for directory in SCANNED for path in sorted((REPO_ROOT / directory).rglob("*.py"))
        if starts_a_server.search(path.read_text())
    ]
    assert servers == ["tests/support/proxy.py"]
