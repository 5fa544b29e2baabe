"""The `regstat` command line: parse options, call one library function, render its result."""

from __future__ import annotations

import functools
import json
import os
import shutil
import sys
import threading
from typing import Any, Callable, NoReturn

import click

from . import __version__, interrupts
from .analysis import describe, interrupt_all, query, query_arrow, spill_directory
from .analysis.export import export_db, write_copy, write_parquet, write_stream, write_text
from .crawl import CrawlOptions, CrawlResult, crawl, kept_for_resume
from .errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK, RegstatError
from .plan.explain import explain, render_json as render_explain_json, render_text as render_explain_text
from .plan.planner import plan_gc
from .plan.policy_file import resolve as resolve_policy
from .plan.render import render_text as render_plan_text, write_json as write_plan_json
from .progress import Progress
from .render import human_bytes, rows_csv, rows_json, rows_table, safe_text
from .report import build_report, render_report
from .snapshot import Snapshot
from .snapshot.outputs import check_file_output


def _interruptible(command: Callable[..., Any]) -> Callable[..., Any]:
    """Run an analysis command in a worker thread, so that Ctrl-C stops it at once.

    Signals reach only the main thread, and only between Python bytecodes: while DuckDB runs
    a statement (minutes on a large snapshot) a plain Ctrl-C would wait for it. Here the main
    thread waits for the worker, and on SIGINT interrupts DuckDB's statements, then exits 130.
    Outputs are written atomically, so an interrupted command leaves none half written."""

    @functools.wraps(command)
    def run(*args: Any, **kwargs: Any) -> Any:
        outcome: dict[str, Any] = {}

        def target() -> None:
            try:
                outcome["value"] = command(*args, **kwargs)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                outcome["error"] = e

        worker = threading.Thread(target=target, name=f"regstat-{command.__name__}", daemon=True)
        worker.start()
        try:
            while worker.is_alive():
                worker.join(0.2)
        except KeyboardInterrupt:
            interrupt_all()
            worker.join(10)  # let it clean up (temporary files)
            shutil.rmtree(spill_directory(), ignore_errors=True)  # DuckDB's, which os._exit skips
            click.echo("regstat: interrupted", err=True)
            sys.stdout.flush()
            sys.stderr.flush()
            # Not sys.exit: tearing DuckDB down while an interrupted statement unwinds in its
            # threads aborts the process (SIGABRT) instead of exiting 130.
            os._exit(EXIT_INTERRUPTED)
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("value")

    return run


def _fail(error: RegstatError) -> NoReturn:
    # Messages may quote names from the registry: escape control characters (not line breaks).
    click.echo(f"regstat: error: {safe_text(error).replace(chr(92) + 'x0a', chr(10))}", err=True)
    sys.exit(error.exit_code)


def _count(n: int, noun: str) -> str:
    plural = noun[:-1] + "ies" if noun.endswith("y") else noun + "s"
    return f"{n:,} {noun if n == 1 else plural}"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="regstat")
def main() -> None:
    """Where a container registry's storage goes, and what can be deleted safely.

    regstat crawls a registry into a snapshot (Parquet tables and snapshot.json), then
    answers questions about the snapshot without touching the registry again.

    \b
    Exit codes:
      0    success (a crawl met no errors)
      1    unexpected failure
      2    usage error
      3    snapshot written, but errors were recorded (it is incomplete)
      4    SOURCE missing, unreachable or unreadable; nothing written
      5    not a snapshot; an output refused (it exists, --force may not replace it, or it
           lies inside a snapshot or a local SOURCE); or nothing --resume can continue
      130  interrupted (SIGINT or SIGTERM); no snapshot written (--resume may continue it)
    """


@main.command("crawl")
@click.argument("source")
@click.option("-o", "--output", required=True, metavar="DIR",
              help="Snapshot directory to create (must not exist; never inside a snapshot or a local SOURCE).")
@click.option(
    "-r",
    "--repository",
    "repositories",
    multiple=True,
    metavar="GLOB",
    help="Crawl only repositories whose full name matches (repeatable; `*` matches `/` too). "
    "The snapshot is then marked partial.",
)
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(1, 512),
    help="Parallel listings and reads. Default: 4 on disk, 32 on S3.",
)
@click.option(
    "--verify-links",
    is_flag=True,
    help="Storage trees: read every revision and _layers link file, not only check its size "
    "(one more read per link; costly on S3).",
)
@click.option("--endpoint-url", metavar="URL", help="S3 or ECR endpoint (MinIO, Ceph, moto). Default: AWS_ENDPOINT_URL, else AWS.")
@click.option("--username", metavar="NAME", help="Registry API: user for basic or token auth.")
@click.option(
    "--password-stdin", is_flag=True, help="Registry API: read the password (or token) from standard input."
)
@click.option("--insecure", is_flag=True, help="Registry API: allow plain HTTP and skip TLS verification.")
@click.option("--ca-file", metavar="PEM", type=click.Path(exists=True, dir_okay=False), help="Registry API: trust these CA certificates.")
@click.option("--registry-id", metavar="ACCOUNT", help="ECR: the registry (account id) to crawl. Default: the caller's.")
@click.option("--name", metavar="REPOSITORY", help="OCI layout: the repository name. Default: the directory's name.")
@click.option("--force", is_flag=True, help="Replace DIR if it is a regstat snapshot or an empty directory (nothing else).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted crawl to DIR (same SOURCE and options), fetching only what it had not written.",
)
@click.option("--progress/--no-progress", default=None, help="Live progress on stderr. Default: when stderr is a terminal.")
@click.option("--json", "as_json", is_flag=True, help="Print a JSON summary on stdout when done.")
def crawl_command(
    source: str,
    output: str,
    repositories: tuple[str, ...],
    concurrency: int | None,
    verify_links: bool,
    endpoint_url: str | None,
    username: str | None,
    password_stdin: bool,
    insecure: bool,
    ca_file: str | None,
    registry_id: str | None,
    name: str | None,
    force: bool,
    resume: bool,
    progress: bool | None,
    as_json: bool,
) -> None:
    """Snapshot a registry into DIR.

    \b
    SOURCE is one of:
      /var/lib/registry, file://PATH  the distribution registry's storage root (the
                                      directory holding docker/registry/v2)
      s3://BUCKET[/PREFIX]            the same tree in S3 (PREFIX: the S3 driver's rootdirectory)
      https://HOST[:PORT]             any registry, through the OCI Distribution API
      ecr://REGION                    AWS ECR (the account of the credentials, or --registry-id)
      oci:PATH                        an OCI image layout directory
    Any other SOURCE (skopeo's docker://HOST/REPOSITORY:TAG, a bare host name, a path that
    does not exist) is refused with exit code 4, these forms and the likely one (for
    docker://registry.example.com/ns/app:v1: https://registry.example.com -r ns/app).

    AWS credentials come from the usual chain (environment, profile, instance role).
    Storage trees and ECR see untagged manifests; only storage trees and OCI layouts see
    blobs no manifest references (snapshot.json lists what each source could see).

    Problems met on the way (damaged links, missing or malformed manifests, a registry that
    keeps failing) do not stop the crawl: they are recorded in snapshot.json, their repository
    is marked incomplete, and the exit code is 3.

    A crawl that is killed, crashes or is interrupted (exit code 130) leaves only a hidden
    directory beside DIR, which no command reads as a snapshot. Repeat the command with
    --resume to continue it: the jobs it had finished are not run again, and snapshot.json
    lists when it was resumed (resumed_at). --resume refuses, with exit code 5, when no
    interrupted crawl to DIR is left, when its crawl is still running, or when SOURCE or an
    option that changes what is crawled (--repository, --verify-links, --username,
    --registry-id, --name) differs. Without --resume, a crawl removes what dead crawls to DIR
    left.

    A crawl never writes inside a snapshot or a local SOURCE (a storage root on disk, an OCI
    layout), nor replaces one: DIR equal to SOURCE, inside it or holding it is refused with
    exit code 5, changing nothing. --force replaces only a regstat snapshot (holding nothing
    regstat did not write there) or an empty directory; a file, a symbolic link or any other
    directory is refused in the same way.

    \b
    Examples:
      regstat crawl /var/lib/registry -o snap-$(date +%F)
      regstat crawl /var/lib/registry -o /srv/snaps/nightly --force   # replaces last night's
      regstat crawl s3://my-bucket/registry -o snap --concurrency 64
      regstat crawl sample_data -o /tmp/snap --repository 'apps/*'
      echo "$TOKEN" | regstat crawl https://registry.example.com -o snap --username ci --password-stdin
      regstat crawl s3://my-bucket/registry -o snap --resume   # after a crash or Ctrl-C
    """
    reporter = Progress(enabled=progress)
    password = sys.stdin.readline().rstrip("\r\n") if password_stdin else None
    options = CrawlOptions(
        username=username,
        password=password,
        insecure=insecure,
        ca_file=ca_file,
        registry_id=registry_id,
        name=name,
        concurrency=concurrency,
        verify_links=verify_links,
        repositories=repositories,
        endpoint_url=endpoint_url,
        force=force,
        resume=resume,
        progress=reporter,
    )
    # SIGINT and SIGTERM are recorded and acted on where the crawl can stop cleanly; a signal
    # after the snapshot is published changes nothing: the crawl is done.
    with interrupts.deferred():
        try:
            result = crawl(source, output, options)
        except RegstatError as e:
            reporter.close()
            _fail(e)
        except KeyboardInterrupt:
            reporter.close()
            hint = "; continue it with --resume" if kept_for_resume(output) else ""
            click.echo(f"regstat: interrupted; no snapshot written{hint}", err=True)
            sys.exit(EXIT_INTERRUPTED)
        _summarise(result, reporter, as_json)


def _summarise(result: CrawlResult, reporter: Progress, as_json: bool) -> NoReturn:
    """Print a finished crawl's one-line summary (and --json) and exit with its status."""
    meta = result.metadata
    counts = meta["counts"]
    state = "complete" if meta["complete"] else ("partial" if not meta["errors"] else "INCOMPLETE")
    summary = ", ".join(
        _count(n, noun)
        for n, noun in (
            (counts["repositories"], "repository"),
            (counts["manifests"], "manifest"),
            (counts["blobs"], "blob"),
            (len(meta["errors"]), "error"),
        )
    )
    stored = Snapshot.open(result.path).stored_bytes()
    summary += f", {human_bytes(stored)} stored" if stored else ""
    resumed = f" (resumed: {result.stats.get('jobs_reused', 0):,} jobs kept)" if result.stats.get("resumed") else ""
    click.echo(f"regstat: {state} snapshot {result.path}: {summary} in {reporter.elapsed:.1f}s{resumed}", err=True)
    if meta["errors"]:
        for error in meta["errors"][:5]:
            # Names come from the registry: escape control characters before a terminal sees them.
            click.echo("  " + safe_text(f"{error['kind']}: {error['repository'] or '-'}: {error['path']}: "
                                        f"{error['message']}"), err=True)
        if len(meta["errors"]) > 5:
            click.echo(f"  ... and {len(meta['errors']) - 5:,} more in {result.path}/snapshot.json", err=True)
    if as_json:
        summary = {k: meta[k] for k in ("id", "complete", "partial", "counts", "incomplete_repositories")}
        summary["path"] = str(result.path)
        summary["errors"] = len(meta["errors"])
        summary["resumed_at"] = meta.get("resumed_at", [])
        summary["work"] = result.stats  # jobs run in this process, jobs a resume kept, items read
        click.echo(json.dumps(summary, indent=1))
    sys.exit(EXIT_INCOMPLETE if meta["errors"] else EXIT_OK)


@main.command("sql")
@click.argument("snapshot")
@click.argument("sql", required=False)
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["table", "csv", "json", "parquet"]),
    default="table",
    show_default=True,
    help="parquet needs --output.",
)
@click.option("-o", "--output", metavar="FILE",
              help="Write the result to FILE (atomically; never inside a snapshot or its local SOURCE).")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@_interruptible
def sql_command(snapshot: str, sql: str | None, fmt: str, output: str | None, memory_limit: str | None) -> None:
    """Run a read-only DuckDB SQL query over SNAPSHOT; without SQL, list the tables and views.

    Every snapshot table is a view by its name: repositories, tags, manifests, descriptors,
    blobs, repository_blobs, uploads; `errors` holds the crawl's recorded errors and
    `snapshot_info` (one row) its id, source and times (taken_at: when it finished). The
    table `reachable` holds the manifests tags (and an OCI layout's unnamed index.json
    entries) reach (computed only when a query reads it),
    and the analysis views are manifest_edges, manifest_references, repository_references,
    blob_references, manifest_exclusive_bytes, orphaned_manifests, unreferenced_blobs, layer_sharing, dedup_summary,
    repository_usage, media_types, largest_layers and stale_uploads. SQL `-` reads the query from standard
    input. Only one SELECT (or EXPLAIN of one) runs: COPY, CREATE, ATTACH and the like are
    refused, so the snapshot is never changed. --format json prints one JSON array of
    objects; --format parquet writes --output FILE.

    \b
    Examples:
      regstat sql snap
      regstat sql snap "SELECT repository, count(*) FROM tags GROUP BY 1"
      regstat sql snap "SELECT * FROM manifests WHERE subject_digest IS NOT NULL" -f json
      echo "SELECT sum(size) FROM blobs WHERE stored" | regstat sql snap -
      regstat sql snap "SELECT * FROM media_types"
      regstat sql snap "SELECT * FROM layer_sharing" -f parquet -o sharing.parquet
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    if sql == "-":
        sql = sys.stdin.read()
    try:
        opened = Snapshot.open(snapshot)
        if output:
            check_file_output(opened, output)  # before the query, which may take minutes
        if fmt == "parquet":
            table = describe(opened) if sql is None else query_arrow(opened, sql, memory_limit=memory_limit)
            write_parquet(opened, output, table)
            return
        if sql is None:
            listing = describe(opened)
            columns, rows = listing.column_names, [tuple(r.values()) for r in listing.to_pylist()]
        else:
            columns, rows = query(opened, sql, memory_limit=memory_limit)
        text = {"table": rows_table, "csv": rows_csv, "json": rows_json}[fmt](columns, rows)
        if output:
            write_text(opened, output, text + "\n" if fmt == "json" else text)
        else:
            click.echo(text, nl=fmt == "json")
    except RegstatError as e:
        _fail(e)


@main.command("export-db")
@click.argument("snapshot")
@click.argument("file")
@click.option("--force", is_flag=True, help="Replace FILE if it exists.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@_interruptible
def export_db_command(snapshot: str, file: str, force: bool, memory_limit: str | None) -> None:
    """Write SNAPSHOT as a DuckDB database FILE, for DBeaver, the duckdb CLI or notebooks.

    FILE holds copies of the snapshot's tables, errors, snapshot_info and reachable, and the
    analysis views (the same as `regstat sql`); it no longer needs SNAPSHOT. It is written
    under a temporary name and renamed when whole; an existing FILE is replaced only with
    --force, and never a directory. FILE may not lie inside a snapshot or the local SOURCE the
    snapshot was crawled from (exit code 5).

    \b
    Examples:
      regstat export-db snap snap.duckdb
      duckdb -readonly snap.duckdb "SELECT * FROM repository_usage"
      regstat export-db snap /srv/exports/latest.duckdb --force
    """
    try:
        path = export_db(Snapshot.open(snapshot), file, force=force, memory_limit=memory_limit)
    except RegstatError as e:
        _fail(e)
    click.echo(f"regstat: wrote {path}", err=True)


@main.command("report")
@click.argument("snapshot")
@click.option(
    "-f",
    "--format",
    "fmt",
    type=click.Choice(["text", "json", "markdown", "html"]),
    default="text",
    show_default=True,
)
@click.option("-o", "--output", metavar="FILE",
              help="Write the report to FILE (atomically, replacing it) instead of stdout; never inside a "
              "snapshot or its local SOURCE.")
@click.option("--top", type=click.IntRange(1, 10_000), default=10, show_default=True, help="Rows in each top list.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@_interruptible
def report_command(snapshot: str, fmt: str, output: str | None, top: int, memory_limit: str | None) -> None:
    """Summarise SNAPSHOT: where the storage goes, what sharing saves, what can go.

    First the headline, reclaimable now: what `plan-gc --untagged` with the default grace
    (24h) would free (orphaned manifests' blobs, unreferenced blobs, stale uploads), by the
    planner's rules, marked as an estimate where plan-gc's is. Then physical, logical and
    dedup-saved bytes; orphaned manifests and the bytes deleting all of them would free;
    unreferenced blobs; stale uploads; per-repository usage; the largest and most shared
    layers and orphaned space by repository. What the source could not see (the registry
    API sees no untagged manifests, API and ECR no stored blobs) is shown as unknown or as
    an estimate, never as zero; an incomplete or partial snapshot says so once, at the top.
    --format html writes one self-contained page with charts.

    \b
    Examples:
      regstat report snap
      regstat report snap --format json | jq .reclaimable_now_bytes
      regstat report snap --format markdown --top 5
      regstat report snap --format html --output report.html
    """
    try:
        opened = Snapshot.open(snapshot)
        if output:
            check_file_output(opened, output)  # before the analysis, which may take minutes
        text = render_report(build_report(opened, top=top, memory_limit=memory_limit), fmt)
        if output:
            write_text(opened, output, text)
        else:
            click.echo(text, nl=False)
    except RegstatError as e:
        _fail(e)


@main.command("plan-gc")
@click.argument("snapshot")
@click.option("--policy", "policy_file", metavar="FILE", type=click.Path(dir_okay=False),
              help="Retention policy (TOML): rules per repository pattern, in priority order, and a [default].")
@click.option("--untagged", is_flag=True, help="Delete orphaned manifests (no tag reaches them), with their referrers.")
@click.option("--keep-untagged", type=click.IntRange(0), metavar="N",
              help="With --untagged: the N most recently pushed orphans of each repository stay, with what they reach.")
@click.option("--older-than", metavar="DURATION", help="Select tags last updated longer ago than this (e.g. 30d).")
@click.option("--keep", type=click.IntRange(0), metavar="N",
              help="Of the tags the other rules select in a repository, the N most recently updated stay.")
@click.option("--delete-tags", metavar="REGEX", help="Select tags matching this regular expression.")
@click.option("--keep-tags", metavar="REGEX", multiple=True, help="Never delete tags matching this (repeatable; wins over every rule).")
@click.option("--pulled-within", metavar="DURATION", help="Never delete what was pulled this recently (sources with pull times).")
@click.option("--repository", "repositories", metavar="GLOB", multiple=True, help="Apply the rules only to these repositories (repeatable).")
@click.option("--grace", metavar="DURATION", help="Delete nothing younger than this; 0s turns it off. [default: 24h]")
@click.option("--include-locked", is_flag=True, help="Allow deleting locked manifests and tags.")
@click.option("-f", "--format", "fmt", type=click.Choice(["json", "text", "parquet"]),
              help="Default: json with --output, else text. parquet (the actions) needs --output.")
@click.option("-o", "--output", metavar="FILE",
              help="Write the plan to FILE (atomically, replacing it) instead of stdout; never inside a "
              "snapshot or its local SOURCE.")
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@_interruptible
def plan_gc_command(
    snapshot: str, policy_file: str | None, untagged: bool, keep_untagged: int | None, older_than: str | None,
    keep: int | None,
    delete_tags: str | None, keep_tags: tuple[str, ...], pulled_within: str | None, repositories: tuple[str, ...],
    grace: str | None, include_locked: bool, fmt: str | None, output: str | None, memory_limit: str | None,
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
    --keep-untagged N spares the N most recently pushed orphans of each repository (counting
    those no other orphan reaches; what a spared one reaches stays with it). Nothing a kept
    manifest reaches (index children, referrers) is ever deleted; in an OCI layout, nor is
    any manifest index.json lists, named or not. Blobs no manifest references (in a layout,
    manifest blobs index.json does not reach too) and stale uploads are always planned where
    the source shows them (storage and OCI layouts) and the snapshot is complete. Exit code 3: the snapshot is incomplete, and
    the plan restricted itself (see its notes).

    \b
    Examples:
      regstat plan-gc snap --untagged
      regstat plan-gc snap --untagged --grace 0s -o plan.json
      regstat plan-gc snap --older-than 30d --keep 5 --keep-tags '^v[0-9]' --repository 'ci/*'
      regstat plan-gc snap --delete-tags '^v1-' --older-than 30m --keep 1
      regstat plan-gc snap --untagged --keep-untagged 3
      regstat plan-gc snap --policy retention.toml -f parquet -o actions.parquet
    """
    if fmt == "parquet" and not output:
        raise click.UsageError("--format parquet writes a file: add --output FILE")
    try:
        policy = resolve_policy(
            policy_file, untagged=untagged, keep_untagged=keep_untagged, older_than=older_than, keep=keep,
            delete_tags=delete_tags, keep_tags=keep_tags, pulled_within=pulled_within, grace=grace,
            include_locked=include_locked, repositories=repositories,
        )
        opened = Snapshot.open(snapshot)
        if output:
            check_file_output(opened, output)  # before planning, which may take minutes
        with plan_gc(opened, policy, memory_limit=memory_limit) as plan:
            fmt = fmt or ("json" if output else "text")
            if fmt == "parquet":
                write_copy(opened, output, plan.actions_file)
            elif fmt == "json":
                if output:
                    write_stream(opened, output, lambda f: write_plan_json(plan, f))
                else:
                    write_plan_json(plan, sys.stdout)
            elif output:
                write_text(opened, output, render_plan_text(plan))
            else:
                click.echo(render_plan_text(plan), nl=False)
    except RegstatError as e:
        _fail(e)
    s = plan.summary
    if output:
        click.echo(f"regstat: plan: {_count(s['tags'], 'tag')}, {_count(s['manifests'], 'manifest')}, "
                   f"{_count(s['blobs'], 'blob')}, {_count(s['uploads'], 'upload')}, {s['bytes_reclaimed']:,} bytes"
                   f"{' (estimate)' if s['bytes_estimated'] else ''}; wrote {output}", err=True)
    if not plan.snapshot["complete"]:
        sys.exit(EXIT_INCOMPLETE)



@main.command("explain")
@click.argument("snapshot")
@click.argument("reference")
@click.option("--repository", metavar="NAME", help="Only this repository.")
@click.option("--plan", "plan_file", metavar="PLAN", type=click.Path(exists=True, dir_okay=False),
              help="A plan (JSON from plan-gc -o) made from SNAPSHOT: say what it does with REFERENCE, and why.")
@click.option("-f", "--format", "fmt", type=click.Choice(["text", "json"]), default="text", show_default=True)
@click.option("--memory-limit", metavar="SIZE", help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")
@_interruptible
def explain_command(snapshot: str, reference: str, repository: str | None, plan_file: str | None, fmt: str,
                    memory_limit: str | None) -> None:
    """Why a manifest or blob is kept, or deleted by a plan.

    \b
    REFERENCE is what regstat prints:
      sha256:4f2a1b3c5d6e...     a digest, whole or short: 12 or more hex digits, with or
                                 without sha256:; it must start only one digest of SNAPSHOT
      REPOSITORY:TAG             the manifest the tag points to (apps/web:v2)
      REPOSITORY@DIGEST          a manifest of that repository (apps/web@sha256:4f2a1b3c5d6e)
    The last two explain that repository only, as --repository does. A short digest that
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
      regstat plan-gc snap --untagged -o plan.json && regstat explain snap apps/web@sha256:4f2a1b3c5d6e --plan plan.json
    """
    try:
        plan = None
        if plan_file:
            try:
                with open(plan_file, encoding="utf-8") as f:
                    plan = json.load(f)
            except (OSError, ValueError) as e:
                raise click.UsageError(f"{plan_file}: not a plan: {e}")
            if not isinstance(plan, dict) or plan.get("format") != "regstat.plan/1":
                raise click.UsageError(f"{plan_file}: not a regstat plan (format regstat.plan/1)")
        result = explain(Snapshot.open(snapshot), reference, repository=repository, plan=plan, memory_limit=memory_limit)
        click.echo(render_explain_json(result) if fmt == "json" else render_explain_text(result), nl=False)
    except RegstatError as e:
        _fail(e)
