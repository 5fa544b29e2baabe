"""`regstat merge`: the shards of a crawl (`crawl --shard K/N`) into one snapshot."""

from __future__ import annotations

import sys
from typing import NoReturn

import click

from ..crawl.merge import MergeResult, merge
from ..snapshot.object_store import (
    check_upload_target,
    download_snapshot,
    is_object_url,
    local_staging,
    remove_staging,
    upload_snapshot,
)
from ..errors import EXIT_INCOMPLETE, EXIT_OK
from .edge import count, note
from .options import command, quiet_option


@command("merge")
@click.argument("shards", nargs=-1, required=True)
@click.option("-o", "--output", metavar="DIR", required=True,
              help="Snapshot directory to create (must not exist; never inside a shard or a local SOURCE), "
              "or s3://BUCKET/PREFIX: written locally, then uploaded with snapshot.json last.")
@click.option("--force", is_flag=True,
              help="Replace DIR if it is a regstat snapshot or an empty directory (nothing else).")
@quiet_option
def merge_command(shards: tuple[str, ...], output: str, force: bool, quiet: bool) -> None:
    """Join the shards of one crawl into the snapshot a single crawl would have written.

    SHARDS are the snapshots `regstat crawl SOURCE --shard K/N -o DIR` wrote for every K
    from 1 to N, in any order (directories or s3://BUCKET/PREFIX), or one directory holding
    them (its hidden directories, such as an unfinished crawl's, are left out). S3 is
    reached at AWS_ENDPOINT_URL, else AWS, with boto3's credentials. Each repository lives in one shard; a storage
    tree's blobs are listed by the shard of their blobs/ range. The merged snapshot has every
    shard's rows, each blob once, the digests numbered again, the earliest start and the
    latest finish, and every shard's errors. It is complete when no shard met errors and no
    --repository restricted the crawl.

    Refused with exit code 5, writing nothing: a snapshot that is not a shard, shards of
    different sources, of different N or crawled with different --repository, a shard
    missing or given twice, a shard of another schema version, and a repository found in two
    shards. Exit code 3 when the merged snapshot records errors.

    \b
    Examples:
      regstat crawl s3://my-bucket/registry -o shards/1 --shard 1/3   # on three machines,
      regstat crawl s3://my-bucket/registry -o shards/2 --shard 2/3   # or one after another
      regstat crawl s3://my-bucket/registry -o shards/3 --shard 3/3
      regstat merge shards/1 shards/2 shards/3 -o snap
      regstat merge shards -o snap --force                            # every shard in shards/
      regstat merge s3://snaps/shards/1 s3://snaps/shards/2 s3://snaps/shards/3 -o s3://snaps/today
    """
    inputs = [str(download_snapshot(s)) if is_object_url(s) else s for s in shards]
    remote = output if is_object_url(output) else None
    if remote:
        check_upload_target(remote, force=force)
    result = merge(inputs, str(local_staging(remote)) if remote else output, force=force or remote is not None)
    try:
        if remote:
            upload_snapshot(result.path, remote, force=force)
        _summarise(result, remote or str(result.path), quiet)
    finally:
        if remote:
            remove_staging(result.path)


def _summarise(result: MergeResult, where: str, quiet: bool) -> NoReturn:
    info = result.info
    state = "complete" if info.complete else ("partial" if not info.errors else "INCOMPLETE")
    summary = ", ".join(count(n, noun) for n, noun in (
        (info.counts["repositories"], "repository"), (info.counts["manifests"], "manifest"),
        (info.counts["blobs"], "blob"), (len(info.errors), "error")))
    if info.errors:
        click.echo(f"regstat: {state} snapshot {where} from {count(len(result.shards), 'shard')}: {summary}",
                   err=True)
    else:
        note(quiet, f"{state} snapshot {where} from {count(len(result.shards), 'shard')}: {summary}")
    sys.exit(EXIT_INCOMPLETE if info.errors else EXIT_OK)
