"""`regstat explain`: why a plan keeps or deletes one tag or manifest."""

from __future__ import annotations

import contextlib

import click

from ..plan.explain import explain
from ..plan.explain import render_json as render_explain_json
from ..plan.explain import render_text as render_explain_text
from ..plan.plan import Plan
from .edge import interruptible
from .emit import check_output, emit
from .options import command, format_options, memory_limit_option, open_snapshot, quiet_option, repository_option


@command("explain")
@click.argument("snapshot")
@click.argument("reference")
@repository_option("Only the manifests and references of these repositories (repeatable; `*` matches `/` "
                   "too); the blob stays judged registry-wide.")
@click.option("--plan", "plan_file", metavar="PLAN", type=click.Path(exists=True, dir_okay=False),
              help="A plan (JSON from plan-gc -o) made from SNAPSHOT: say what it does with REFERENCE, and why.")
@format_options(["text", "json"])
@memory_limit_option
@quiet_option
@interruptible
def explain_command(snapshot: str, reference: str, repositories: tuple[str, ...], plan_file: str | None, fmt: str,
                    output: str | None, memory_limit: str | None, quiet: bool) -> None:
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

    \b
    Examples:
      regstat explain snap sha256:4f2a1b3c5d6e
      regstat explain snap apps/web:v2
      regstat explain snap 4f2a1b3c5d6e --repository apps/web
      regstat explain snap 4f2a1b3c5d6e -r 'apps/*' -f json
      regstat plan-gc snap --untagged -o plan.json && regstat explain snap apps/web@sha256:4f2a1b3c5d6e --plan plan.json
    """
    opened = open_snapshot(snapshot)
    check_output(opened, output)
    with contextlib.ExitStack() as stack:
        plan = stack.enter_context(Plan.load(plan_file)) if plan_file else None
        result = explain(opened, reference, repositories=repositories, plan=plan, memory_limit=memory_limit)
    emit(opened, output, render_explain_json(result) if fmt == "json" else render_explain_text(result))
