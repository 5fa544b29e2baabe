"""Skipping, or failing under CI, a test whose executables are missing (pytest only)."""

from __future__ import annotations

import os

import pytest

from .components import find_executable


def in_ci() -> bool:
    return os.environ.get("CI", "").lower() in ("true", "1", "yes")


def require_tools(*names: str) -> None:
    """Skip (or, under CI, fail) the calling test when an executable is missing."""
    missing = [name for name in names if find_executable(name) is None]
    if not missing:
        return
    message = f"not installed: {', '.join(missing)}"
    if in_ci():
        pytest.fail(f"{message} (CI=true: registry tests must run, not skip)", pytrace=False)
    pytest.skip(message)
