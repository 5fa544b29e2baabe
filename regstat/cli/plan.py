"""`regstat plan-gc`: a deletion plan from a snapshot and a retention policy."""

from __future__ import annotations

import sys

import click

from ..errors import EXIT_INCOMPLETE
from ..plan.planner import plan_gc
from ..plan.policy_file import resolve as resolve_policy
from ..plan.render import render_text as render_plan_text
from ..plan.render import write_json as write_plan_json
from .edge import count, interruptible, note
from .emit import check_output, emit
from ..analysis.engine import SparkOptions
from .options import (
    command,
    engine_options,
    format_options,
    memory_limit_option,
    open_snapshot,
    quiet_option,
    repository_option,
)


@command("plan-gc")
@click.argument("snapshot")
@click.option("--policy", "policy_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Retention policy (TOML): rules per repository pattern, in priority order, and a [default].")
@click.option("--untagged", is_flag=True, help="Delete orphaned manifests (no tag reaches them), with their referrers.")
@click.option("--keep-untagged", type=click.IntRange(0), metavar="N",
              help="With --untagged: the N most recently updated orphans of each repository stay, with what they "
              "reach.")
@click.option("--older-than", metavar="DURATION", help="Select tags last updated longer ago than this (e.g. 30d).")
@click.option("--keep", type=click.IntRange(0), metavar="N",
              help="Of the tags the other rules select in a repository, the N most recently updated stay.")
@click.option("--delete-tags", metavar="REGEX", help="Select tags matching this regular expression.")
@click.option("--filter", "filters", metavar="REPO_REGEX:TAG_REGEX", multiple=True,
              help="As acr purge --filter (repeatable): plan only in the repositories whose whole name REPO_REGEX "
              "matches, selecting there the tags TAG_REGEX matches anywhere. Not with --repository or --delete-tags.")
@click.option("--ago", metavar="DURATION",
              help="As acr purge --ago (e.g. 30d, 2d3h6m, 0): select tags last updated longer ago, and keep every "
              "manifest updated more recently. Not with --older-than.")
@click.option("--keep-tags", metavar="REGEX", multiple=True,
              help="Never delete tags matching this (repeatable; wins over every rule).")
@click.option("--pulled-within", metavar="DURATION",
              help="Never delete what was pulled this recently (sources with pull times).")
@repository_option("Apply the rules only to these repositories (repeatable; `*` matches `/` too); blobs "
                   "stay judged registry-wide.")
@click.option("--grace", metavar="DURATION", help="Delete nothing younger than this; 0s turns it off. [default: 24h]")
@click.option("--include-locked", is_flag=True,
              help="Allow deleting locked manifests and tags (refused for ACR snapshots: unlock with az, crawl again).")
@format_options(["json", "text", "parquet"], default=None,
                help="Default: json with --output, else text. parquet (the actions) needs --output.",
                output_help="Write the plan to FILE (atomically, replacing it) instead of stdout; never inside a "
                "snapshot or its local SOURCE.")
@memory_limit_option
@engine_options
@quiet_option
@interruptible
def plan_gc_command(
    snapshot: str, policy_file: str | None, untagged: bool, keep_untagged: int | None, older_than: str | None,
    keep: int | None,
    delete_tags: str | None, filters: tuple[str, ...], ago: str | None, keep_tags: tuple[str, ...],
    pulled_within: str | None, repositories: tuple[str, ...],
    grace: str | None, include_locked: bool, fmt: str | None, output: str | None, memory_limit: str | None,
    engine: str, spark: SparkOptions | None, quiet: bool,
) -> None:
    """Plan what to delete from the registry SNAPSHOT came from; delete nothing.

    --older-than and --delete-tags select a tag only when both (if given) select it; with
    neither, --keep selects every tag. Protections (--keep-tags, --pulled-within, locks,
    --grace) win: a protected tag is never selected. --keep N then counts as acr purge and ECR
    lifecycle rules do: of the selected tags of each repository, the N most recently updated
    stay (equal times: the name first in code-point order stays; no time: counts as newest).
    With tags v1-a (15 min old), v1-b (1 day), v1-c (2 days) and v2 (3 days),
    `--delete-tags '^v1-' --older-than 30m --keep 1` deletes v1-c alone.

    A manifest goes when the policy deletes all its tags or, with --untagged, when no tag
    reaches it, together with its referrers (signatures, SBOMs) and the blobs only it held;
    --keep-untagged N spares the N most recently updated (else pushed) orphans of each
    repository (counting those no other orphan reaches; what a spared one reaches stays with it). Nothing a kept
    manifest reaches (index children, referrers) is ever deleted; in an OCI layout, nor is
    any manifest index.json lists, named or not. Blobs no manifest references (in a layout,
    manifest blobs index.json does not reach too) and stale uploads are always planned where
    the source shows them (storage and OCI layouts) and the snapshot is complete. Exit code 3:
    the snapshot is incomplete, and the plan restricted itself (see its notes).

    From acr purge: --filter 'REPO:TAG' is --repository and --delete-tags in one (the repository
    expression matches whole names, the tag expression anywhere); --ago D selects tags as
    --older-than D and keeps manifests updated less than D ago; acr purge --untagged --keep N
    is --untagged --keep N --keep-untagged N. Locks are never touched: --include-locked is
    refused on ACR snapshots.

    \b
    Examples:
      regstat plan-gc snap --untagged
      regstat plan-gc snap --untagged --grace 0s -o plan.json
      regstat plan-gc snap --older-than 30d --keep 5 --keep-tags '^v[0-9]' --repository 'ci/*'
      regstat plan-gc snap --delete-tags '^v1-' --older-than 30m --keep 1
      regstat plan-gc snap --untagged --keep-untagged 3
      regstat plan-gc snap --policy retention.toml -f parquet -o actions.parquet
      regstat plan-gc snap --filter 'hello-world:.*' --ago 1d --untagged
      regstat plan-gc snap --filter 'hello-world:^hello' --ago 7d --keep 2 --untagged --keep-untagged 2
      regstat plan-gc snap --untagged --engine spark --spark-master spark://head:7077 -o plan.json
      regstat plan-gc hdfs://nn:8020/snaps/latest --untagged --engine spark -o plan.json
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    policy = resolve_policy(
        policy_file, untagged=untagged, keep_untagged=keep_untagged, older_than=older_than, keep=keep,
        delete_tags=delete_tags, keep_tags=keep_tags, pulled_within=pulled_within, grace=grace,
        include_locked=include_locked, repositories=repositories, filters=filters, ago=ago,
    )
    opened = open_snapshot(snapshot, spark)
    check_output(opened, output)
    with plan_gc(opened, policy, memory_limit=memory_limit, engine_name=engine, spark=spark) as plan:
        fmt = fmt or ("json" if output else "text")
        if fmt == "parquet":
            emit(opened, output, plan.actions_file)
        elif fmt == "json":
            emit(opened, output, lambda f: write_plan_json(plan, f))
        else:
            emit(opened, output, render_plan_text(plan))
    s = plan.summary
    if output:
        note(quiet, f"plan: {count(s['tags'], 'tag')}, {count(s['manifests'], 'manifest')}, "
                    f"{count(s['blobs'], 'blob')}, {count(s['uploads'], 'upload')}, {s['bytes_reclaimed']:,} bytes"
                    f"{' (estimate)' if s['bytes_estimated'] else ''}; wrote {output}")
    if not plan.snapshot["complete"]:
        sys.exit(EXIT_INCOMPLETE)
