"""What `regstat explain` is asked about, in the forms regstat itself prints.

- a digest, `sha256:<64 hex>` (or `sha512:<128 hex>`);
- a short digest: a prefix of 12 or more hex digits, with or without `sha256:` (reports and
  plans print `sha256:` and 12 digits); it must name one digest of the snapshot;
- `REPOSITORY:TAG`: the manifest the tag points to. Repository names may hold `/`, tags
  never hold `/` or `:`, so the tag follows the last `:` after the last `/`;
- `REPOSITORY@DIGEST` (as plans print a manifest), the digest short or whole.

The two repository forms name one repository's manifest, as `--repository` does.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import duckdb

from .. import queries
from ..errors import RegstatError
from ..model import TAG, is_registry_host

MIN_PREFIX = 12  # hex digits: what reports and plans print (render.short_digest)
HEX_DIGITS = {"sha256": 64, "sha512": 128}
_HEX = re.compile(r"[0-9a-fA-F]+")
_SHOWN = 10  # candidates listed for an ambiguous prefix
FORMS = ("a digest, a short digest (12 or more hex digits, with or without sha256:), REPOSITORY:TAG "
         "or REPOSITORY@DIGEST")


class TargetError(RegstatError):
    """Explain's argument names nothing in the snapshot, or more than one digest."""


class TargetFormError(TargetError):
    """Explain's argument has none of the forms it accepts."""


@dataclass(frozen=True)
class Target:
    """What an explain argument names: a digest, and the repository the argument named, if any."""

    digest: str
    repository: str | None


def resolve(con: duckdb.DuckDBPyConnection, text: str) -> Target:
    """The digest (and repository) `text` names in the snapshot open in `con`."""
    if "@" in text:
        repository, _, reference = text.rpartition("@")
        if not repository:
            raise TargetFormError(f"{text}: a repository goes before @ ({FORMS})")
        return Target(_digest(con, reference, text), repository)
    algorithm, _, rest = text.partition(":")
    if _HEX.fullmatch(text) or (algorithm in HEX_DIGITS and _HEX.fullmatch(rest)):
        return Target(_digest(con, text, text), None)
    repository, colon, tag = text.rpartition(":")
    if not colon or "/" in tag or not repository or not tag:
        raise TargetFormError(f"{text}: not {FORMS}")
    if not TAG.fullmatch(tag):
        raise TargetFormError(f"{text}: {tag!r} is not a tag ({FORMS})")
    return Target(_tagged(con, repository, tag), repository)


def _digest(con: duckdb.DuckDBPyConnection, reference: str, text: str) -> str:
    """The one digest of the snapshot that `reference`, a digest or a prefix of one, names."""
    algorithm, colon, hex_ = reference.partition(":")
    if not colon:
        algorithm, hex_ = ("sha256" if len(reference) <= HEX_DIGITS["sha256"] else "sha512"), reference
    if algorithm not in HEX_DIGITS or not _HEX.fullmatch(hex_) or len(hex_) > HEX_DIGITS[algorithm]:
        raise TargetFormError(f"{text}: not {FORMS}")
    if len(hex_) < MIN_PREFIX:
        raise TargetFormError(
            f"{text}: a short digest needs {MIN_PREFIX} or more hex digits, as reports and plans print "
            f"them ({algorithm}: and {MIN_PREFIX} digits); this one has {len(hex_)}"
        )
    prefix = f"{algorithm}:{hex_.lower()}"
    # Hex digits hold neither % nor _: the prefix is a LIKE pattern as it stands.
    rows = con.execute(queries.load("explain_candidates"), [prefix + "%"]).fetchall()
    candidates: dict[str, list[str]] = {}
    blobs: dict[str, bool | None] = {}
    for digest, repository, stored in rows:
        held = candidates.setdefault(digest, [])
        if repository is not None:
            held.append(repository)
        blobs[digest] = stored
    if not candidates:
        raise TargetError(f"{text}: no manifest, reference or blob with this digest in the snapshot")
    if len(candidates) > 1:
        lines = [f"  {d}  {_what(candidates[d], blobs[d])}" for d in sorted(candidates)[:_SHOWN]]
        if len(candidates) > _SHOWN:
            lines.append(f"  ... and {len(candidates) - _SHOWN} more")
        raise TargetError(
            f"{text}: ambiguous: {len(candidates)} digests of the snapshot start with {prefix}; "
            "give more digits, or the whole digest:\n" + "\n".join(lines)
        )
    return next(iter(candidates))


def _what(repositories: list[str], stored: bool | None) -> str:
    if repositories:
        return f"manifest in {', '.join(repositories)}"
    if stored is None:
        return "referenced (not in the blobs table)"
    return "blob" if stored else "blob (referenced, not seen stored)"


def _tagged(con: duckdb.DuckDBPyConnection, repository: str, tag: str) -> str:
    """The digest the tag REPOSITORY:TAG points to in the snapshot."""
    tags = _repository_tags(con, repository)
    if tags is not None and tag in tags:
        return tags[tag]
    problem = f"tag {repository}:{tag} is not in the snapshot"
    if tags is None:
        host, _, rest = repository.partition("/")
        if rest and is_registry_host(host) and _repository_tags(con, rest) is not None:
            raise TargetError(f"{problem}: repository names in a snapshot carry no registry host: try {rest}:{tag}")
        raise TargetError(f"{problem}: the snapshot has no repository {repository}")
    names = sorted(tags)
    listed = ", ".join(names[:_SHOWN]) + (f", ... ({len(names)} in all)" if len(names) > _SHOWN else "")
    raise TargetError(f"{problem}: {repository} has " + (f"the tags {listed}" if names else "no tags"))


def _repository_tags(con: duckdb.DuckDBPyConnection, repository: str) -> dict[str, str] | None:
    """The tags of a repository with their digests; None when the snapshot has no such repository."""
    rows = con.execute(queries.load("explain_repository_tags"), [repository]).fetchall()
    if not rows:
        return None
    return {tag: digest for tag, digest in rows if tag is not None}
