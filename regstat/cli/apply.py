"""`regstat apply-gc`: carry out a plan against the live registry, each action re-verified."""

from __future__ import annotations

import json
import sys
from datetime import UTC, datetime
from pathlib import Path

import click

from .. import interrupts
from ..apply import journal as journals
from ..apply.plan_check import Limits, check
from ..apply.runner import Settings, apply
from ..apply.summary import render_text, summarise
from ..crawl import CrawlOptions
from ..errors import EXIT_INCOMPLETE, EXIT_INTERRUPTED, EXIT_OK
from ..plan.plan import Plan
from ..plan.policy import parse_duration
from ..progress import Progress
from .edge import interrupted
from .options import command, quiet_option, read_password, source_options


@command("apply-gc")
@click.argument("plan_file", metavar="PLAN", type=click.Path(exists=True, dir_okay=False))
@click.option("--yes", is_flag=True,
              help="Delete. Without it: a dry run, which verifies every action and deletes nothing.")
@click.option("--max-deletes", type=click.IntRange(0), metavar="N",
              help="Refuse (exit 5) a plan holding more than N deletions.")
@click.option("--max-plan-age", default="24h", show_default=True, metavar="DURATION",
              help="Refuse (exit 5) a plan whose snapshot was taken longer ago than this.")
@click.option("--rate", type=click.FloatRange(min=0.01), metavar="PER_SECOND",
              help="At most this many deletions a second. Default: as fast as the registry answers.")
@click.option("-j", "--concurrency", type=click.IntRange(1, 64), default=1, show_default=True, metavar="N",
              help="Deletion requests in flight (each a batch of up to 1,000 actions).")
@click.option("--journal", "journal_file", metavar="FILE",
              help="The journal (JSON lines) to append to. Default: PLAN.journal beside the plan.")
@click.option("--resume", is_flag=True,
              help="Continue a run that stopped: what the journal says was deleted, was gone or was skipped is "
              "not done again; what was in flight is verified again.")
@source_options
@click.option("--json", "as_json", is_flag=True, help="Print the summary as JSON on stdout.")
@quiet_option
def apply_gc_command(plan_file: str, yes: bool, max_deletes: int | None, max_plan_age: str, rate: float | None,
                     concurrency: int, journal_file: str | None, resume: bool, endpoint_url: str | None,
                     username: str | None, password_stdin: bool, insecure: bool, ca_file: str | None,
                     azure_credential: str | None, azure_authority_host: str | None,
                     registry_id: str | None, as_json: bool, quiet: bool) -> None:
    """Carry out PLAN (JSON from plan-gc -o) against the registry its snapshot was crawled
    from; without --yes, only say what it would do now.

    Every action is verified against the registry as it is now, right before it: a fresh
    crawl of the plan's repositories before the tags and manifests, a fresh crawl of the whole
    source after them for the blobs and uploads, and the tag itself right before its deletion.
    What no longer holds is skipped with its reason (tag_moved: the tag names another digest;
    tagged: a tag the plan keeps names the manifest; referenced: an index or a referrer the
    plan keeps holds it; blob_referenced, blob_young: a blob in use again, or too new;
    crawl_incomplete: the fresh crawl could not read it); what is already gone counts as done.
    Applying the same plan twice deletes nothing more.

    The journal records every verification and deletion, fsynced before the run goes on; a
    run killed at any moment continues with --resume, repeating no deletion. Only one apply
    runs per journal (a lock beside it). Storage trees (on disk, S3): run the registry
    read-only while the blob phase runs (docs/apply.md, "The remaining race").

    \b
    Exit codes:
      0  done (skips are not errors; they are listed with their reasons)
      3  some deletions failed (403, 5xx after retries): listed; the rest went on
      4  the registry cannot be reached or read
      5  refused, nothing deleted: no or wrong checksum (edited, cut short), older than
         --max-plan-age, more than --max-deletes deletions, another registry than
         --endpoint-url or --registry-id name, another apply-gc holds the journal
      130 interrupted: continue with --resume

    \b
    Examples:
      regstat crawl /var/lib/registry -o snap && regstat plan-gc snap --untagged -o plan.json
      regstat apply-gc plan.json                          # dry run: what would go now
      regstat apply-gc plan.json --yes --max-deletes 5000
      regstat apply-gc plan.json --yes --rate 50 --json > applied.json
      regstat apply-gc plan.json --yes --resume          # after a crash or Ctrl-C
      regstat explain --plan plan.json --journal plan.json.journal sha256:4f2a1b3c5d6e
    """
    password = read_password(username, password_stdin)
    options = CrawlOptions(username=username, password=password, insecure=insecure, ca_file=ca_file,
                           registry_id=registry_id, endpoint_url=endpoint_url,
                           azure_credential=azure_credential, azure_authority_host=azure_authority_host)
    limits = Limits(max_plan_age=parse_duration(max_plan_age, "--max-plan-age"), max_deletes=max_deletes)
    settings = Settings(dry_run=not yes, rate=rate, concurrency=concurrency)
    journal_path = Path(journal_file) if journal_file else journals.default_path(plan_file)
    progress = Progress(enabled=False if quiet or as_json else None)
    try:
        with interrupts.deferred(), Plan.load(plan_file) as plan:
            source = check(plan, limits, options, datetime.now(UTC))
            checksum = plan.checksum()
            planned_bytes = plan.summary.get("bytes_reclaimed")
            if settings.dry_run:
                settled = journals.settled(journals.read(journal_path, checksum)) if resume else {}
                summary = summarise(apply(plan, source, options, settings, settled=settled, progress=progress),
                                    planned_bytes)
            else:
                with journals.Journal(journal_path) as journal:
                    state = journals.read(journal_path, checksum)  # refuses another plan's journal
                    settled = journals.settled(state) if resume else {}
                    journal.run(checksum, resumed=resume)
                    run = apply(plan, source, options, settings, journal=journal, settled=settled, progress=progress)
                    summary = summarise(run, planned_bytes)
                    journal.finished({"counts": summary["counts"], "bytes_freed": summary["bytes_freed"]})
    except KeyboardInterrupt:
        progress.close()
        interrupted("interrupted; continue with --resume" if yes else "interrupted", as_json)
        sys.exit(EXIT_INTERRUPTED)
    finally:
        progress.close()
    failed = summary["counts"]["failed"]
    if as_json:
        click.echo(json.dumps({**summary, "journal": None if settings.dry_run else str(journal_path)}, indent=1))
    elif not quiet or failed:
        click.echo(render_text(summary), nl=False)
    sys.exit(EXIT_INCOMPLETE if failed else EXIT_OK)
