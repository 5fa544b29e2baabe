"""The docs stand alone: every relative link in a tracked Markdown file resolves to a file inside
this repository (and to a heading, when it names one), and no tracked file points outside the
repository, where a user's clone has nothing."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")
SCHEME = re.compile(r"^[a-zA-Z][a-zA-Z0-9+.-]*:")
CLIMBING_PATH = re.compile(r"`(\.\./[^`]*)`")  # a path in backticks that leaves the directory
OUTSIDE = "../" + "shared"  # spelt apart, so that this file does not name it


def tracked(pattern: str) -> list[Path]:
    names = subprocess.run(["git", "ls-files", "-z", "--", pattern], cwd=REPO_ROOT, check=True,
                           capture_output=True, text=True).stdout.split("\0")
    return [REPO_ROOT / name for name in names if name]


def anchors(markdown: Path) -> set[str]:
    """The anchors a renderer gives the headings of `markdown` (GitHub's rule)."""
    headings = re.findall(r"^#+\s+(.*?)\s*$", markdown.read_text(), re.M)
    return {re.sub(r"[^\w\- ]", "", h.lower()).replace(" ", "-") for h in headings}


MARKDOWN = tracked("*.md")


def test_there_is_markdown_to_check() -> None:
    names = {p.relative_to(REPO_ROOT).as_posix() for p in MARKDOWN}
    assert {"README.md", "docs/design.md", "docs/snapshot.md"} <= names


@pytest.mark.parametrize("markdown", MARKDOWN, ids=lambda p: p.relative_to(REPO_ROOT).as_posix())
def test_relative_links_resolve_inside_the_repository(markdown: Path) -> None:
    text = markdown.read_text()
    for target in LINK.findall(text):
        if SCHEME.match(target) or target.startswith("#"):
            continue
        path, _, anchor = target.partition("#")
        resolved = (markdown.parent / path).resolve()
        assert resolved.is_relative_to(REPO_ROOT), f"{target} leaves the repository"
        assert resolved.exists(), f"{target} does not exist"
        if anchor and resolved.suffix == ".md":
            assert anchor in anchors(resolved), f"{target}: no such heading"
    assert CLIMBING_PATH.findall(text) == []


def test_no_tracked_file_names_the_notes_outside_the_repository() -> None:
    offenders = []
    for path in tracked("*"):
        if path.is_file() and path.suffix in {".md", ".py", ".sql", ".toml", ".txt", ""}:
            if OUTSIDE in path.read_text(errors="replace"):
                offenders.append(path.relative_to(REPO_ROOT).as_posix())
    assert offenders == []
