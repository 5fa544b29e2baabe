"""Write docs/cli.md: `regstat --help` and every command's `--help`, as regstat prints them.

    .venv/bin/python scripts/make_cli_docs.py            # rewrite docs/cli.md
    .venv/bin/python scripts/make_cli_docs.py --check    # exit 1 when docs/cli.md is stale

The help texts are the reference; the prose docs describe options briefly and link here, so
the exact list of options is written once, in the code. tests/test_cli_docs.py fails when
docs/cli.md is stale. The text is rendered at a fixed width (not the terminal's), so the file
is the same on every machine.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import click

from regstat.cli import main as regstat

REPO_ROOT = Path(__file__).resolve().parent.parent
CLI_DOCS = REPO_ROOT / "docs" / "cli.md"
REGENERATE = ".venv/bin/python scripts/make_cli_docs.py"
# What a wide terminal shows: click wraps at the group's max_content_width less 2 columns.
WIDTH = regstat.context_settings.get("max_content_width", 80) - 2

HEADER = f"""\
# Command-line reference

Generated from `regstat --help` and each command's `--help` by `{REGENERATE}`;
do not edit it by hand (tests/test_cli_docs.py fails when it is stale). What the commands do
and why is in the [README](../README.md) and the other pages of [docs/](.): [sources](sources.md),
[analysis](analysis.md), [plan-gc](plan-gc.md), [failures](failures.md),
[the snapshot](snapshot.md) and [the design](design.md).
"""


def sections(command: click.Command, parent: click.Context | None, name: str) -> list[tuple[str, str]]:
    """(command line, help text) for `command` and every command under it, in the order
    `--help` lists them; the help as `regstat ... --help` prints it, at WIDTH columns."""
    settings = {**command.context_settings, "terminal_width": WIDTH}
    context = click.Context(command, info_name=name, parent=parent, **settings)
    found = [(context.command_path, command.get_help(context))]
    if isinstance(command, click.Group):
        for sub in command.list_commands(context):
            found += sections(command.get_command(context, sub), context, sub)
    return found


def render() -> str:
    """The whole of docs/cli.md."""
    parts = [HEADER]
    found = sections(regstat, None, "regstat")
    parts.append("\n".join(f"- [`{line}`](#{anchor(line)})" for line, _ in found[1:]) + "\n")
    for line, text in found:
        parts.append(f"## `{line}`\n\n```text\n{text.rstrip()}\n```\n")
    return "\n".join(parts)


def anchor(line: str) -> str:
    """The anchor GitHub gives the heading "`line`"."""
    return re.sub(r"[^\w\- ]", "", line.lower()).replace(" ", "-")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true", help="exit 1 if docs/cli.md is stale; write nothing")
    args = parser.parse_args(argv)
    text = render()
    if args.check:
        if not CLI_DOCS.exists() or CLI_DOCS.read_text() != text:
            print(f"{CLI_DOCS.relative_to(REPO_ROOT)} is stale: run {REGENERATE}", file=sys.stderr)
            return 1
        return 0
    CLI_DOCS.write_text(text)
    print(f"wrote {CLI_DOCS.relative_to(REPO_ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
