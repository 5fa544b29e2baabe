"""The shape of regstat/ (issue 16): packages by stage, imports one way, small modules.

Every module under regstat/ is parsed with `ast`; its imports, at module level or inside
functions, absolute or relative, make a graph. The test asserts:
- no import circle;
- no import from a later stage (STAGES); plan and report, the same stage, do not import each other;
- no private name (`_name`) imported from another module, nor read off an imported module;
- no module over MAX_LINES lines, and no directory of modules without an __init__.py.

Stages, in order. The snapshot is the contract the crawl writes and every reader reads, so it
comes before the sources and the crawl, which only write it; the base modules import nothing
of the others.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

import pytest

PACKAGE = Path(__file__).resolve().parent.parent / "regstat"
MAX_LINES = 520

# (stage, module prefixes): a module belongs to the stage of the longest prefix naming it.
STAGES: list[tuple[str, tuple[str, ...]]] = [
    ("base", ("regstat", "regstat.errors", "regstat.interrupts", "regstat.progress", "regstat.atomic",
              "regstat.render", "regstat.model", "regstat.queries", "regstat.durations", "regstat.shards")),
    ("snapshot", ("regstat.snapshot",)),
    ("sources", ("regstat.sources",)),
    ("crawl", ("regstat.crawl",)),
    ("analysis", ("regstat.analysis",)),
    ("plan", ("regstat.plan",)),
    ("report", ("regstat.report",)),
    ("apply", ("regstat.apply",)),
    ("cli", ("regstat.cli", "regstat.__main__")),
]
# Stages of the same rank may not import each other either.
RANK = {"base": 0, "snapshot": 1, "sources": 2, "crawl": 3, "analysis": 4, "plan": 5, "report": 5, "apply": 6,
        "cli": 7}


@dataclass(frozen=True)
class Import:
    source: str  # the importing module
    target: str  # the module imported (a name imported from a module counts as the module)
    line: int
    private: str | None = None  # a private name taken from `target`


def module_name(path: Path, root: Path) -> str:
    parts = path.relative_to(root.parent).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def modules(root: Path = PACKAGE) -> dict[str, Path]:
    return {module_name(path, root): path for path in sorted(root.rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> list[Import]:
    """The regstat modules `name` imports, and private names it takes from them."""
    tree = ast.parse(path.read_text(), str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    aliases: dict[str, str] = {}  # local name -> the regstat module it is bound to
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.split(".")[0] == "regstat":
                    found.append(Import(name, alias.name, node.lineno))
                    if alias.asname:
                        aliases[alias.asname] = alias.name
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[: len(base) - (node.level - 1)]
                origin = ".".join([*base, *([node.module] if node.module else [])])
            else:
                origin = node.module or ""
            if origin.split(".")[0] != "regstat":
                continue
            for alias in node.names:
                submodule = f"{origin}.{alias.name}"
                if submodule in known:  # `from regstat.snapshot import digest_ids`: a module
                    found.append(Import(name, submodule, node.lineno))
                    aliases[alias.asname or alias.name] = submodule
                else:
                    private = alias.name if alias.name.startswith("_") and not alias.name.startswith("__") else None
                    found.append(Import(name, origin, node.lineno, private))
    for node in ast.walk(tree):  # module._private, on a module imported by name
        if (isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name) and node.value.id in aliases
                and node.attr.startswith("_") and not node.attr.startswith("__")):
            found.append(Import(name, aliases[node.value.id], node.lineno, node.attr))
    return found


def stage(module: str) -> str:
    best, length = "", -1
    for name, prefixes in STAGES:
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > length:
                best, length = name, len(prefix)
    return best


def graph(root: Path = PACKAGE) -> tuple[dict[str, Path], list[Import]]:
    found = modules(root)
    known = set(found)
    edges = [i for name, path in found.items() for i in imports(name, path, known)]
    return found, edges


def cycles(edges: list[Import]) -> list[list[str]]:
    """The import circles: strongly connected components of more than one module, or a
    module importing itself (Tarjan's algorithm)."""
    successors: dict[str, set[str]] = {}
    for edge in edges:
        successors.setdefault(edge.source, set()).add(edge.target)
        successors.setdefault(edge.target, set())
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(node: str) -> None:
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for nxt in sorted(successors[node]):
            if nxt not in index:
                visit(nxt)
                low[node] = min(low[node], low[nxt])
            elif nxt in on_stack:
                low[node] = min(low[node], index[nxt])
        if low[node] == index[node]:
            component = []
            while True:
                member = stack.pop()
                on_stack.discard(member)
                component.append(member)
                if member == node:
                    break
            if len(component) > 1 or node in successors[node]:
                found.append(sorted(component))

    for node in sorted(successors):
        if node not in index:
            visit(node)
    return found


def problems(root: Path = PACKAGE) -> list[str]:
    found, edges = graph(root)
    out = [f"import circle: {' <-> '.join(c)}" for c in cycles([e for e in edges if e.source != e.target])]
    for e in edges:
        if e.source == e.target:
            continue
        a, b = stage(e.source), stage(e.target)
        if not a or not b:
            out.append(f"{e.source}:{e.line}: {e.source if not a else e.target} is in no stage of STAGES")
        elif RANK[b] > RANK[a] or (RANK[a] == RANK[b] and a != b):
            out.append(f"{e.source}:{e.line}: imports {e.target} ({b}), a later stage than {a}")
        if e.private and e.target != e.source:
            out.append(f"{e.source}:{e.line}: uses {e.private}, private to {e.target}")
    for directory in sorted({path.parent for path in found.values()}):
        if not (directory / "__init__.py").is_file():
            out.append(f"{directory.relative_to(root.parent)}: no __init__.py "
                       "(a namespace package: the wheel leaves it out)")
    for name, path in found.items():
        lines = len(path.read_text().splitlines())
        if lines > MAX_LINES:
            out.append(f"{name}: {lines} lines, more than {MAX_LINES}: split it")
    return out


def test_every_module_is_in_a_stage_and_the_graph_is_not_empty() -> None:
    found, edges = graph()
    assert len(found) > 40 and len(edges) > 100
    assert [name for name in found if not stage(name)] == []
    # Imports inside functions count: open_source imports each source where it needs it.
    assert any(e.source == "regstat.sources" and e.target == "regstat.sources.registry_api.source" for e in edges)


def test_imports_go_one_way_with_no_circles_no_private_names_and_small_modules() -> None:
    assert problems() == []


@pytest.mark.parametrize(
    ("module", "line", "problem"),
    [
        ("snapshot/reader.py", "    from ..cli import main\n", "a later stage than snapshot"),
        ("report/common.py", "from ..plan import planner\n", "a later stage than report"),
        ("sources/storage_tree/storage.py", "    from .s3 import S3Storage\n", "import circle"),
        ("plan/render.py", "from .planner import _tag_verdict\n", "private to regstat.plan.planner"),
        ("crawl/driver.py", "\n" * MAX_LINES, "lines, more than"),
    ],
)
def test_each_rule_catches_its_breach(tmp_path: Path, module: str, line: str, problem: str) -> None:
    # A copy of the package with one line added: the rule it breaks is reported.
    copy = tmp_path / "regstat"
    for path in PACKAGE.rglob("*.py"):
        target = copy / path.relative_to(PACKAGE)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_text(path.read_text())
    target = copy / module
    text = target.read_text()
    if line.startswith("    "):  # inside a function: the last one of the module
        text += f"\n\ndef _added() -> None:\n{line}"
    else:
        text += "\n" + line
    target.write_text(text)
    found = problems(copy)
    assert any(problem in p for p in found), found
