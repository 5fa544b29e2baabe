"""`regstat explain`: why a plan keeps or deletes one tag or manifest."""

from __future__ import annotations

import contextlib
import json
from pathlib import Path

import click

from ..apply.history import render_text as history_text
from ..apply.history import what_happened
from ..plan.explain import ExplainError, explain
from ..plan.explain import render_json as render_explain_json
from ..plan.explain import render_text as render_explain_text
from ..plan.plan import Plan
from .edge import interruptible
from .emit import check_output, emit
from .options import command, format_options, memory_limit_option, open_snapshot, quiet_option, repository_option


@command("explain")
@click.argument("arguments", nargs=-1, required=True, metavar="[SNAPSHOT] REFERENCE")
@repository_option("Only the manifests and references of these repositories (repeatable; `*` matches `/` "
                   "too); the blob stays judged registry-wide.")
@click.option("--plan", "plan_file", metavar="PLAN", type=click.Path(exists=True, dir_okay=False),
              help="A plan (JSON from plan-gc -o) made from SNAPSHOT: say what it does with REFERENCE, and why.")
@click.option("--journal", "journal_file", metavar="FILE", type=click.Path(exists=True, dir_okay=False),
              help="With --plan: what apply-gc did with REFERENCE, from its journal (SNAPSHOT is then not needed).")
@format_options(["text", "json"])
@memory_limit_option
@quiet_option
@interruptible
def explain_command(arguments: tuple[str, ...], repositories: tuple[str, ...], plan_file: str | None,
                    journal_file: str | None, fmt: str, output: str | None, memory_limit: str | None,
                    quiet: bool) -> None:
    """Why a manifest or blob is kept, or deleted by a plan.

    \b
    REFERENCE is what regstat prints:
      sha256:4f2a1b3c5d6e...     a digest, whole or short: 12 or more hex digits, with or
                                 without sha256:; it must start only one digest of SNAPSHOT
      REPOSITORY:TAG             the manifest the tag points to (apps/web:v2)
      REPOSITORY@DIGEST          a manifest of that repository (apps/web@sha256:4f2a1b3c5d6e)
    The last two explain that repository only; --repository GLOB limits the manifests and
    references listed to the repositories it selects (the blob, and whether a plan deletes
    it, stay judged registry-wide, as the output says). A short digest that
    starts several digests is refused with a list of them, and an unknown digest or tag is
    refused (exit code 1); a digest shorter than 12 hex digits, or a REFERENCE of no form
    above, is a usage error (exit code 2).

    For a manifest: the chain from a tag that keeps it (tag -> index -> child, subject <-
    referrer), or why it is orphaned; with --plan, the action that deletes it and its reason
    and rule, or what keeps it under the plan's policy (a kept tag, or the protection: grace,
    lock, keep_tags, ...). For a blob: the (repository, manifest) pairs referencing it and
    whether they are kept; with --plan, whether its last reference goes.

    With --plan and --journal (apply-gc's, PLAN.journal by default): what apply-gc did with
    the plan's actions on REFERENCE (a digest, REPOSITORY:TAG, REPOSITORY@DIGEST): deleted,
    already gone, skipped and why, failed, or still to do; SNAPSHOT may be left out.

    \b
    Examples:
      regstat explain snap sha256:4f2a1b3c5d6e
      regstat explain snap apps/web:v2
      regstat explain snap 4f2a1b3c5d6e --repository apps/web
      regstat explain snap 4f2a1b3c5d6e -r 'apps/*' -f json
      regstat plan-gc snap --untagged -o plan.json && regstat explain snap apps/web@sha256:4f2a1b3c5d6e --plan plan.json
      regstat explain --plan plan.json --journal plan.json.journal sha256:4f2a1b3c5d6e
    """
    if journal_file:
        _journal(arguments, plan_file, journal_file, fmt, output)
        return
    if len(arguments) != 2:
        raise click.UsageError("explain takes SNAPSHOT and REFERENCE (REFERENCE alone only with --plan and --journal)")
    snapshot, reference = arguments
    opened = open_snapshot(snapshot)
    check_output(opened, output)
    with contextlib.ExitStack() as stack:
        plan = stack.enter_context(Plan.load(plan_file)) if plan_file else None
        result = explain(opened, reference, repositories=repositories, plan=plan, memory_limit=memory_limit)
    emit(opened, output, render_explain_json(result) if fmt == "json" else render_explain_text(result))


def _journal(arguments: tuple[str, ...], plan_file: str | None, journal_file: str, fmt: str,
             output: str | None) -> None:
    """explain --plan PLAN --journal FILE [SNAPSHOT] REFERENCE."""
    if not plan_file:
        raise click.UsageError("--journal needs --plan (the plan the journal applied)")
    if len(arguments) > 2:
        raise click.UsageError("explain takes [SNAPSHOT] REFERENCE")
    if output:
        raise click.UsageError("--journal prints on stdout: drop --output")
    with Plan.load(plan_file) as plan:
        if len(arguments) == 2 and open_snapshot(arguments[0]).info.id != plan.snapshot_id:
            raise ExplainError(f"the plan was made from snapshot {plan.snapshot_id}, not {arguments[0]}")
        result = what_happened(plan, Path(journal_file), arguments[-1])
    click.echo(json.dumps(result, indent=1) if fmt == "json" else history_text(result), nl=fmt == "json")
