"""`regstat crawl`: a source into a snapshot."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import NoReturn

import click

from .. import interrupts
from ..crawl import CrawlOptions, CrawlResult, crawl, kept_for_resume
from ..crawl.into import crawl_into
from ..crawl.into import target as into_target
from ..errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK
from ..progress import Progress
from ..render import human_bytes, safe_text
from ..snapshot import Snapshot
from ..snapshot.history import Retention
from ..snapshot.object_store import (
    check_upload_target,
    is_object_url,
    local_staging,
    remove_staging,
    upload_snapshot,
)
from .edge import count, interrupted, note
from ..shards import Shard
from .options import SHARD, command, quiet_option, read_password, repository_option, source_options


@command("crawl")
@click.argument("source")
@click.option("-o", "--output", metavar="DIR",
              help="Snapshot directory to create (must not exist; never inside a snapshot or a local SOURCE), "
              "or s3://BUCKET/PREFIX: written locally, then uploaded with snapshot.json last.")
@click.option("--into", metavar="HISTORY",
              help="Instead of --output: write the snapshot into the history HISTORY as HISTORY/<UTC time>/ "
              "and point HISTORY/latest at it.")
@click.option("--retain", metavar="N|AGE",
              help="With --into: then remove the history's snapshots beyond the N newest, or older than AGE "
              "(e.g. 30d), never the new one.")
@repository_option("Crawl only repositories whose full name matches (repeatable; `*` matches `/` too). "
                   "The snapshot is then marked partial.")
@click.option("--shard", type=SHARD, metavar="K/N",
              help="Crawl only shard K of N (1 <= K <= N): the repositories whose name hashes to it and, on a "
              "storage tree, its range of blobs/. Crawl every K on N machines, then join the shards with "
              "regstat merge. The shard alone is partial.")
@click.option(
    "-j",
    "--concurrency",
    type=click.IntRange(1, 512),
    help="Parallel listings and reads. Default: 4 on disk, 32 on S3, 16 for registry APIs and ACR, 8 for ECR.",
)
@click.option(
    "--verify-links",
    is_flag=True,
    help="Storage trees: read every revision and _layers link file, not only check its size "
    "(one more read per link; costly on S3).",
)
@source_options
@click.option("--name", metavar="REPOSITORY", help="OCI layout: the repository name. Default: the directory's name.")
@click.option("--force", is_flag=True,
              help="Replace DIR if it is a regstat snapshot or an empty directory (nothing else).")
@click.option(
    "--resume",
    is_flag=True,
    help="Continue the interrupted crawl to DIR (same SOURCE and options), fetching only what it had not written.",
)
@click.option(
    "--previous",
    metavar="SNAP",
    type=click.Path(file_okay=False),
    help="An earlier snapshot of the same SOURCE: manifests it parsed are not read again (storage trees, "
    "registry API). Ignored with a warning when it cannot be trusted. Default with --into: the history's latest.",
)
@click.option("--progress/--no-progress", default=None,
              help="Live progress on stderr. Default: when stderr is a terminal (never with --quiet).")
@click.option("--json", "as_json", is_flag=True,
              help="Print a JSON summary on stdout when done (on a fatal error: error, kind, exit_code).")
@quiet_option
def crawl_command(
    source: str,
    output: str | None,
    into: str | None,
    retain: str | None,
    repositories: tuple[str, ...],
    shard: Shard | None,
    concurrency: int | None,
    verify_links: bool,
    endpoint_url: str | None,
    username: str | None,
    password_stdin: bool,
    insecure: bool,
    ca_file: str | None,
    azure_credential: str | None,
    azure_authority_host: str | None,
    registry_id: str | None,
    name: str | None,
    force: bool,
    resume: bool,
    previous: str | None,
    progress: bool | None,
    as_json: bool,
    quiet: bool,
) -> None:
    """Snapshot a registry into DIR.

    \b
    SOURCE is one of:
      /var/lib/registry, file://PATH  the distribution registry's storage root (the
                                      directory holding docker/registry/v2)
      s3://BUCKET[/PREFIX]            the same tree in S3 (PREFIX: the S3 driver's rootdirectory)
      https://HOST[:PORT]             any registry, through the OCI Distribution API
      acr://NAME.azurecr.io           Azure Container Registry, through its own API: untagged
                                      manifests, times and locks (also acr://HOST[:PORT])
      ecr://REGION                    AWS ECR (the account of the credentials, or --registry-id)
      oci:PATH                        an OCI image layout directory
    Any other SOURCE (skopeo's docker://HOST/REPOSITORY:TAG, a bare host name, a path that
    does not exist) is refused with exit code 4, these forms and the likely one (for
    docker://registry.example.com/ns/app:v1: https://registry.example.com -r ns/app).

    AWS credentials come from the usual chain (environment, profile, instance role).
    ACR takes --username/--password-stdin (admin user, service principal, repository-scoped
    token, or user 00000000-0000-0000-0000-000000000000 with a refresh token from
    az acr login --expose-token), --azure-credential (Entra ID), or what az acr login stored.
    Storage trees, ECR and ACR see untagged manifests; only storage trees and OCI layouts see
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
    --azure-credential, --registry-id, --name, --previous) differs. Without --resume, a crawl removes
    what dead crawls to DIR left.

    With --into HISTORY instead of --output, the crawl writes HISTORY/<UTC time it began>/
    (e.g. 20261207T031500Z; -1, -2 … appended when a re-run in the same second would collide)
    and, once the snapshot is published (with errors or without), points the relative link
    HISTORY/latest at it. --retain N then keeps the N newest snapshots, --retain AGE those
    taken within AGE (30d, 2w); neither removes the new snapshot, an interrupted crawl's
    hidden directory (--resume needs it) or a directory holding anything regstat did not
    write. --resume with --into continues the latest interrupted crawl into HISTORY. Every
    command taking SNAPSHOT accepts HISTORY (its latest snapshot), HISTORY@-1 (the one
    before) and HISTORY@2026-12-01 (the last taken on or before that day, UTC).

    A crawl never writes inside a snapshot or a local SOURCE (a storage root on disk, an OCI
    layout), nor replaces one: DIR equal to SOURCE, inside it or holding it is refused with
    exit code 5, changing nothing. --force replaces only a regstat snapshot (holding nothing
    regstat did not write there) or an empty directory; a file, a symbolic link or any other
    directory is refused in the same way.

    An incremental crawl, --previous SNAP, reads every listing again (tags, revisions, blobs,
    links, catalogs) but not the manifests SNAP parsed: a manifest's digest names its body for
    good, so SNAP's rows for it are copied. A reused manifest is still checked against this
    crawl: on a storage tree its blob must be listed now at the size SNAP recorded, on a
    registry API a HEAD of it must answer with its digest and that size, on ECR and ACR this
    crawl's listing of the repository's manifests must name it, in an OCI layout its blob file
    must have that size; otherwise it is read (a vanished one is recorded as a fresh read
    records it). Manifests SNAP recorded as missing, invalid or unreadable are read. SNAP must
    be a finished snapshot of this SOURCE in this schema version; any other (damaged, another
    source, another version) is ignored with a warning and every manifest is read. The --json
    summary counts manifests_read and manifests_reused. With --resume, give the same
    --previous as the interrupted crawl.

    With --shard K/N the crawl reads shard K of N only: the repositories whose name hashes to
    K (SHA-256 of the name, so the same on every machine) and, on a storage tree, the K-th
    range of the blobs/ prefix directories. Run K = 1 to N on N machines and join the shards
    with regstat merge: the merged snapshot equals one crawl's. A shard alone is partial,
    and says it cannot see unreferenced blobs (it lists blobs other shards' repositories
    may reference). --shard does not combine with --into.

    -o s3://BUCKET/PREFIX writes the snapshot on local disk (in the temporary directory),
    then uploads it with snapshot.json last, and removes the local copy: a prefix without
    snapshot.json (an upload under way, or one that died) is no snapshot to any reader. An
    existing prefix is refused unless --force. The upload uses --endpoint-url when given,
    else AWS_ENDPOINT_URL, and boto3's credentials. Every command taking SNAPSHOT reads
    s3://BUCKET/PREFIX too (downloading it). --resume finds an interrupted crawl to the same
    URL on the same machine.

    \b
    Examples:
      regstat crawl /var/lib/registry -o snap-$(date +%F)
      regstat crawl /var/lib/registry -o snap-today --previous snap-yesterday
      regstat crawl /var/lib/registry -o /srv/snaps/nightly --force   # replaces last night's
      regstat crawl s3://my-bucket/registry -o snap --concurrency 64
      regstat crawl sample_data -o /tmp/snap --repository 'apps/*'
      echo "$TOKEN" | regstat crawl https://registry.example.com -o snap --username ci --password-stdin
      regstat crawl acr://myregistry.azurecr.io -o snap --azure-credential cli
      regstat crawl s3://my-bucket/registry -o snap --resume   # after a crash or Ctrl-C
      regstat crawl /var/lib/registry --into /srv/regstat/history --retain 30d --quiet
      regstat crawl /var/lib/registry --into /srv/regstat/history --resume
      regstat crawl s3://my-bucket/registry -o shard-2 --shard 2/3   # on the 2nd of 3 machines
      regstat crawl /var/lib/registry -o s3://snapshots/registry/$(date +%F)
    """
    retention = _check_destination(output, into, retain, force)
    remote = output if output and is_object_url(output) else None
    if remote:
        check_upload_target(remote, endpoint_url=endpoint_url, force=force)
        output = str(local_staging(remote))  # the same for the same URL: --resume finds it
    if shard and into:
        raise click.UsageError("--shard writes one shard to --output DIR; a history holds whole snapshots "
                               "(regstat merge the shards, then keep the merged snapshot)")
    password = read_password(username, password_stdin)
    reporter = Progress(enabled=False if quiet else progress)
    options = CrawlOptions(
        username=username,
        password=password,
        insecure=insecure,
        ca_file=ca_file,
        azure_credential=azure_credential,
        azure_authority_host=azure_authority_host,
        registry_id=registry_id,
        name=name,
        concurrency=concurrency,
        verify_links=verify_links,
        repositories=repositories,
        shard=shard,
        endpoint_url=endpoint_url,
        force=force or remote is not None,  # the local copy is regstat's own
        resume=resume,
        previous=previous,
        progress=reporter,
    )
    # SIGINT and SIGTERM are recorded and acted on where the crawl can stop cleanly; a signal
    # after the snapshot is published changes nothing: the crawl is done.
    with interrupts.deferred():
        target = str(into_target(into, resume)) if into else output
        assert target is not None
        removed: tuple[Path, ...] = ()
        try:
            if into:
                written = crawl_into(source, Path(target), options, retention)
                result, removed = written.crawl, written.removed
            else:
                result = crawl(source, target, options)
        except KeyboardInterrupt:
            reporter.close()
            hint = "; continue it with --resume" if kept_for_resume(target) else ""
            interrupted(f"interrupted; no snapshot written{hint}", as_json)
            sys.exit(EXIT_INTERRUPTED)
        finally:
            reporter.close()
        if removed:
            note(quiet, f"--retain {retain}: removed {count(len(removed), 'older snapshot')} "
                 f"({', '.join(p.name for p in removed)})")
        try:
            if remote:
                upload_snapshot(result.path, remote, endpoint_url=endpoint_url, force=force)
            _summarise(result, reporter, as_json, quiet, shown=remote)
        finally:
            if remote:
                remove_staging(result.path)


def _check_destination(output: str | None, into: str | None, retain: str | None,
                       force: bool) -> Retention | None:
    """Exactly one of --output and --into; --retain (parsed) only with --into."""
    if output and into:
        raise click.UsageError("--into and --output are mutually exclusive: a crawl writes one snapshot")
    if not output and not into:
        raise click.UsageError("give --output DIR (a snapshot) or --into HISTORY (a directory of snapshots)")
    if into and force:
        raise click.UsageError("--force is for --output: --into always writes a new directory")
    if retain is None:
        return None
    if not into:
        raise click.UsageError("--retain needs --into: it removes older snapshots of a history")
    try:
        return Retention.parse(retain)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--retain") from None


def _summarise(result: CrawlResult, reporter: Progress, as_json: bool, quiet: bool,
               shown: str | None = None) -> NoReturn:
    """Print a finished crawl's one-line summary (and --json) and exit with its status;
    `shown`: where the snapshot went, when not result.path (an upload)."""
    info = result.info
    where = shown or str(result.path)
    counts = info.counts
    state = "complete" if info.complete else ("partial" if not info.errors else "INCOMPLETE")
    summary = ", ".join(
        count(n, noun)
        for n, noun in (
            (counts["repositories"], "repository"),
            (counts["manifests"], "manifest"),
            (counts["blobs"], "blob"),
            (len(info.errors), "error"),
        )
    )
    stored = Snapshot.open(result.path).stored_bytes()
    summary += f", {human_bytes(stored)} stored" if stored else ""
    resumed = f" (resumed: {result.stats.get('jobs_reused', 0):,} jobs kept)" if result.stats.get("resumed") else ""
    if not quiet or info.errors:  # a snapshot with errors is something that went wrong
        click.echo(f"regstat: {state} snapshot {where}: {summary} in {reporter.elapsed:.1f}s{resumed}", err=True)
    if info.errors:
        for error in info.errors[:5]:
            # Names come from the registry: escape control characters before a terminal sees them.
            click.echo("  " + safe_text(f"{error.kind}: {error.repository or '-'}: {error.path}: "
                                        f"{error.message}"), err=True)
        if len(info.errors) > 5:
            click.echo(f"  ... and {len(info.errors) - 5:,} more in {where}/snapshot.json", err=True)
    if as_json:
        doc = info.to_json()
        json_summary = {k: doc[k] for k in ("id", "complete", "partial", "counts", "incomplete_repositories")}
        json_summary["path"] = where
        json_summary["errors"] = len(info.errors)
        json_summary["resumed_at"] = doc["resumed_at"]
        # Read, and taken from --previous instead, by this process (a resumed crawl: since the resume).
        json_summary["manifests_read"] = result.manifests.get("manifests_read", 0)
        json_summary["manifests_reused"] = result.manifests.get("manifests_reused", 0)
        json_summary["work"] = result.stats  # jobs run in this process, jobs a resume kept, items read
        click.echo(json.dumps(json_summary, indent=1))
    sys.exit(EXIT_INCOMPLETE if info.errors else EXIT_OK)
