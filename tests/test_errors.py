"""Every exception class regstat defines is drawn in the tree of regstat/errors.py, under
its real parent, and one outside errors.py names its module there (issue 16)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
import re

import regstat
from regstat import errors

_NODE = re.compile(r"[├└]── (\S+)")
_ROOT = re.compile(r"^ {4}([A-Z]\w+)$")  # a built-in class the tree below it hangs from


def drawn_parents() -> dict[str, tuple[str, str]]:
    """Class name -> (the name drawn as its parent, its line), read from the docstring's tree.
    A node that is not a class name (lower case: a group) passes its parent on."""
    parents: dict[str, tuple[str, str]] = {}
    stack: list[tuple[int, str]] = []  # (column, the class its children hang from)
    for line in (errors.__doc__ or "").splitlines():
        if root := _ROOT.match(line):
            stack = [(-1, root.group(1))]
            continue
        node = _NODE.search(line)
        if not node:
            continue
        column, name = node.start(1), node.group(1)
        while stack[-1][0] >= column:
            stack.pop()
        parent = stack[-1][1]
        if name[0].isupper():
            parents[name] = (parent, line)
            stack.append((column, name))
        else:
            stack.append((column, parent))
    return parents


def defined_exceptions() -> list[type[BaseException]]:
    found = []
    for info in pkgutil.walk_packages(regstat.__path__, "regstat."):
        if info.name.endswith("__main__"):
            continue
        module = importlib.import_module(info.name)
        for _, obj in inspect.getmembers(module, inspect.isclass):
            if issubclass(obj, BaseException) and obj.__module__ == info.name:
                found.append(obj)
    return found


def test_the_tree_parser_reads_nesting() -> None:
    parents = drawn_parents()
    assert parents["OutputRefusedError"][0] == "SnapshotError"
    assert parents["TargetFormError"][0] == "TargetError"
    assert parents["TransportError"][0] == "Exception"  # under the group of signals
    assert parents["Interrupted"][0] == "KeyboardInterrupt"


def test_every_exception_class_is_drawn_under_its_parent() -> None:
    parents = drawn_parents()
    classes = defined_exceptions()
    assert len(classes) >= 18, [c.__name__ for c in classes]
    missing = [f"{c.__module__}.{c.__name__}" for c in classes if c.__name__ not in parents]
    assert not missing, f"exception classes missing from the tree in regstat/errors.py: {missing}"
    for cls in classes:
        drawn, line = parents[cls.__name__]
        assert cls.__bases__[0].__name__ == drawn, (cls, drawn)
        if cls.__module__ != "regstat.errors":
            assert f"({cls.__module__.removeprefix('regstat.')})" in line, (cls, line)


def test_the_tree_draws_no_class_that_does_not_exist() -> None:
    names = {c.__name__ for c in defined_exceptions()}
    assert set(drawn_parents()) <= names
