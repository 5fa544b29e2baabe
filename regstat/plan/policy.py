"""Retention policies: which tags and manifests a plan may delete, from flags or a TOML file.

A policy is a list of rules in priority order, each for some repository patterns, and an
explicit default rule for the repositories no rule names; the first rule whose pattern
matches a repository governs it (as ECR lifecycle rules are tried by priority). A rule selects
tags by `older_than` and `delete_tags` (a tag must satisfy every one given; with neither, every
tag is selected); protections (`keep_tags`, `pulled_within`, locks, the grace period) win over
them. `keep = N` then spares, of the selected tags no protection keeps, the N most recently
updated in each repository, as acr purge, ECR's imageCountMoreThan, Harbor and zot count.
`untagged` deletes orphaned manifests; `keep_untagged = N` spares the N most recently updated
of each repository (with what they reach). `ago` is acr purge's `--ago`: it selects tags as
`older_than` does and spares every manifest updated more recently; `filters` are acr purge's
`--filter`s (regstat.plan.acr_purge): the repositories they name are the policy's scope, and
in each the tags their tag patterns match are selected.

Policies come from flags (from_flags), from a TOML file (regstat.plan.policy_file) or back
from a plan's JSON (from_json).
"""

from __future__ import annotations

import fnmatch
import re
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta
from typing import Any

from .. import durations
from ..durations import DEFAULT_GRACE, format_duration
from ..errors import RegstatError
from ..model import repository_selected
from . import acr_purge
from .acr_purge import Filter, format_ago



class PolicyError(RegstatError):
    """A policy that cannot be used: bad syntax, an unknown key, contradictory rules."""


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """'90s', '15m', '24h', '30d', '2w' or a sum such as '1d12h'."""
    try:
        return durations.parse_duration(text)
    except ValueError as e:
        raise PolicyError(f"{what}: {e}") from None


@dataclass(frozen=True)
class Rule:
    """What may be deleted in the repositories a rule governs."""

    name: str
    repositories: tuple[str, ...] = ()  # globs; empty for the default rule
    untagged: bool = False
    keep_untagged: int | None = None  # with untagged: orphans of each repository that stay
    older_than: timedelta | None = None
    keep: int | None = None
    delete_tags: str | None = None
    keep_tags: tuple[str, ...] = ()
    pulled_within: timedelta | None = None
    description: str | None = None
    ago: timedelta | None = None  # acr purge's --ago: older_than for tags, and spares younger manifests
    filter_tags: tuple[str, ...] = ()  # set by Policy.rule_for: the tag patterns of the --filters naming the repository

    @property
    def selects_tags(self) -> bool:
        return (self.tag_age is not None or self.keep is not None or self.delete_tags is not None
                or bool(self.filter_tags))

    @property
    def tag_age(self) -> timedelta | None:
        """The age past which a tag is selected: older_than, or ago (never both)."""
        return self.older_than if self.older_than is not None else self.ago

    def matches(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, glob) for glob in self.repositories)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.repositories:
            out["repositories"] = list(self.repositories)
        if self.description:
            out["description"] = self.description
        out["untagged"] = self.untagged
        out["keep_untagged"] = self.keep_untagged
        out["older_than"] = format_duration(self.older_than) if self.older_than is not None else None
        out["ago"] = format_ago(self.ago) if self.ago is not None else None
        out["keep"] = self.keep
        out["delete_tags"] = self.delete_tags
        out["keep_tags"] = list(self.keep_tags)
        out["pulled_within"] = format_duration(self.pulled_within) if self.pulled_within is not None else None
        return out


@dataclass(frozen=True)
class Policy:
    """Rules in priority order, the default rule, and the settings that apply everywhere."""

    default: Rule
    rules: tuple[Rule, ...] = ()
    grace: timedelta = DEFAULT_GRACE
    include_locked: bool = False
    scope: tuple[str, ...] = ()  # --repository globs: the repositories the rules apply to
    filters: tuple[Filter, ...] = ()  # acr purge's --filter: the scope, and the tags each rule selects there
    source: str = "command line"
    _cache: dict[str, Rule | None] = field(default_factory=dict, compare=False, repr=False)

    def rule_for(self, repository: str) -> Rule | None:
        """The rule governing `repository`, or None when it is outside the scope."""
        if repository not in self._cache:
            rule: Rule | None = None
            filter_tags = tuple(f.tag for f in self.filters if f.selects_repository(repository))
            if repository_selected(repository, self.scope) and (filter_tags or not self.filters):
                rule = next((r for r in self.rules if r.matches(repository)), self.default)
                if filter_tags:
                    rule = replace(rule, filter_tags=filter_tags)
            self._cache[repository] = rule
        return self._cache[repository]

    def grace_cutoff(self, taken_at: datetime) -> datetime | None:
        """Anything newer than this is young and kept; None when the grace is off (0s)."""
        return taken_at - self.grace if self.grace > timedelta(0) else None

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        return (*self.rules, self.default)

    def with_protections(self, keep_tags: tuple[str, ...], pulled_within: timedelta | None) -> Policy:
        """This policy with protections added to every rule (flags given beside --policy)."""

        def protect(rule: Rule) -> Rule:
            within = rule.pulled_within
            if pulled_within is not None:
                within = pulled_within if within is None else max(within, pulled_within)
            return replace(rule, keep_tags=(*rule.keep_tags, *keep_tags), pulled_within=within)

        return replace(self, default=protect(self.default), rules=tuple(protect(r) for r in self.rules), _cache={})

    def to_json(self) -> dict[str, Any]:
        return {
            "source": self.source,
            "grace": format_duration(self.grace),
            "include_locked": self.include_locked,
            "repositories": list(self.scope),
            "filters": [str(f) for f in self.filters],
            "rules": [r.to_json() for r in self.rules],
            "default": self.default.to_json(),
        }


def from_flags(
    *,
    untagged: bool = False,
    keep_untagged: int | None = None,
    older_than: str | None = None,
    keep: int | None = None,
    delete_tags: str | None = None,
    keep_tags: tuple[str, ...] = (),
    pulled_within: str | None = None,
    grace: str | None = None,
    include_locked: bool = False,
    repositories: tuple[str, ...] = (),
    filters: tuple[str, ...] = (),
    ago: str | None = None,
) -> Policy:
    """The policy that command-line flags describe: one default rule. `filters` and `ago` are
    acr purge's: --filter is --repository and --delete-tags in one, --ago is --older-than that
    also spares younger manifests, so each excludes those."""
    clashes = [(filters, repositories, "--filter", "--repository", "a filter's REPO_REGEX names the repositories"),
               (filters, delete_tags, "--filter", "--delete-tags", "a filter's TAG_REGEX selects the tags"),
               (ago, older_than, "--ago", "--older-than", "--ago selects tags by age as --older-than does")]
    for given, other, name, other_name, why in clashes:
        if given and other is not None and other != ():
            raise PolicyError(f"{name} and {other_name} cannot be combined: {why}; use one of them")
    if delete_tags is not None and delete_tags in keep_tags:
        raise PolicyError(f"--keep-tags {delete_tags!r} protects exactly the tags --delete-tags {delete_tags!r} "
                          "selects: the plan could delete no tag; drop one of them")
    if keep_untagged is not None and not untagged:
        raise PolicyError("--keep-untagged needs --untagged: without it no orphaned manifest is deleted, so "
                          "there is nothing to keep")
    rule = Rule(
        name="command line",
        untagged=untagged,
        keep_untagged=_keep(keep_untagged, "--keep-untagged"),
        older_than=parse_duration(older_than, "--older-than") if older_than is not None else None,
        keep=_keep(keep, "--keep"),
        delete_tags=checked_regex(delete_tags, "--delete-tags") if delete_tags is not None else None,
        keep_tags=tuple(checked_regex(p, "--keep-tags") for p in keep_tags),
        pulled_within=parse_duration(pulled_within, "--pulled-within") if pulled_within is not None else None,
        ago=parse_ago(ago, "--ago") if ago is not None else None,
    )
    return Policy(
        default=rule,
        grace=parse_duration(grace, "--grace") if grace is not None else DEFAULT_GRACE,
        include_locked=include_locked,
        scope=tuple(repositories),
        filters=tuple(parse_filter(f) for f in filters),
    )


def parse_ago(text: str, what: str = "ago") -> timedelta:
    """acr purge's duration ('30d', '2d3h6m', '0'): regstat.plan.acr_purge."""
    try:
        return acr_purge.parse_ago(text, what)
    except ValueError as e:
        raise PolicyError(str(e)) from None


def parse_filter(text: str) -> Filter:
    """acr purge's 'REPO_REGEX:TAG_REGEX': regstat.plan.acr_purge."""
    try:
        return Filter.parse(text)
    except ValueError as e:
        raise PolicyError(str(e)) from None


def checked_regex(pattern: str, what: str) -> str:
    try:
        re.compile(pattern)
    except re.error as e:
        raise PolicyError(f"{what}: {pattern!r} is not a regular expression: {e}") from None
    return pattern


def _keep(value: int | None, what: str) -> int | None:
    if value is not None and value < 0:
        raise PolicyError(f"{what} must be >= 0")
    return value


def from_json(doc: dict[str, Any]) -> Policy:
    """The policy a plan records (Policy.to_json), for `regstat explain --plan`."""

    def rule(r: dict[str, Any]) -> Rule:
        return Rule(
            name=r["name"],
            repositories=tuple(r.get("repositories") or ()),
            untagged=bool(r.get("untagged")),
            keep_untagged=r.get("keep_untagged"),
            older_than=parse_duration(r["older_than"]) if r.get("older_than") else None,
            keep=r.get("keep"),
            delete_tags=r.get("delete_tags"),
            keep_tags=tuple(r.get("keep_tags") or ()),
            pulled_within=parse_duration(r["pulled_within"]) if r.get("pulled_within") else None,
            description=r.get("description"),
            ago=parse_ago(r["ago"]) if r.get("ago") else None,
        )

    try:
        return Policy(
            default=rule(doc["default"]),
            rules=tuple(rule(r) for r in doc.get("rules") or ()),
            grace=parse_duration(doc["grace"]),
            include_locked=bool(doc.get("include_locked")),
            scope=tuple(doc.get("repositories") or ()),
            filters=tuple(parse_filter(f) for f in doc.get("filters") or ()),
            source=doc.get("source") or "plan",
        )
    except (KeyError, TypeError) as e:
        raise PolicyError(f"the plan's policy cannot be read back: {e}") from None
