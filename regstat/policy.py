"""Retention policies: which tags and manifests a plan may delete, from flags or a TOML file.

A policy is a list of rules in priority order, each for some repository patterns, and an
explicit default rule for the repositories no rule names; the first rule whose pattern
matches a repository governs it (as ECR lifecycle rules are tried by priority). A rule selects
tags by `older_than`, `keep` and `delete_tags`; a tag is selected only when every selector the
rule gives selects it. Protections (`keep_tags`, `pulled_within`, locks, the grace period)
win over every selector. `untagged` deletes orphaned manifests.

    grace = "24h"                  # nothing younger is deleted; "0s" turns it off
    include_locked = false
    repositories = ["apps/*"]      # the repositories the rules apply to (default: all)

    [default]                      # required: the repositories no rule names
    untagged = true

    [[rules]]
    repositories = ["ci/*", "pr-*"]
    older_than = "14d"
    keep = 3
    delete_tags = "^pr-"
    keep_tags = ["^release-"]
    pulled_within = "7d"

Errors name the line of the offending key (PolicyError, exit code 2).
"""

from __future__ import annotations

import fnmatch
import re
import tomllib
from dataclasses import dataclass, field, replace
from datetime import timedelta
from typing import Any

from .errors import EXIT_USAGE, RegstatError

DEFAULT_GRACE = timedelta(hours=24)
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"(\d+)([smhdw])")

_DEFAULT = -1  # the index _Reader gives [default]; [[rules]] count from 0
_TOP_KEYS = {"grace", "include_locked", "repositories", "default", "rules"}
_RULE_KEYS = {"repositories", "description", "untagged", "older_than", "keep", "delete_tags", "keep_tags", "pulled_within"}


class PolicyError(RegstatError):
    """A policy that cannot be used: bad syntax, an unknown key, contradictory rules."""

    exit_code = EXIT_USAGE


def parse_duration(text: str, what: str = "duration") -> timedelta:
    """'90s', '15m', '24h', '30d', '2w' or a sum such as '1d12h'."""
    compact = str(text).replace(" ", "").lower()
    parts = _DURATION.findall(compact)
    if not compact or "".join(n + u for n, u in parts) != compact:
        raise PolicyError(f"{what}: {text!r} is not a duration (e.g. 90s, 15m, 24h, 30d, 2w, 1d12h)")
    return timedelta(seconds=sum(int(n) * _UNITS[u] for n, u in parts))


def format_duration(value: timedelta) -> str:
    seconds = int(value.total_seconds())
    for unit in ("w", "d", "h", "m"):
        if seconds and seconds % _UNITS[unit] == 0:
            return f"{seconds // _UNITS[unit]}{unit}"
    return f"{seconds}s"


@dataclass(frozen=True)
class Rule:
    """What may be deleted in the repositories a rule governs."""

    name: str
    repositories: tuple[str, ...] = ()  # globs; empty for the default rule
    untagged: bool = False
    older_than: timedelta | None = None
    keep: int | None = None
    delete_tags: str | None = None
    keep_tags: tuple[str, ...] = ()
    pulled_within: timedelta | None = None
    description: str | None = None

    @property
    def selects_tags(self) -> bool:
        return self.older_than is not None or self.keep is not None or self.delete_tags is not None

    def matches(self, repository: str) -> bool:
        return any(fnmatch.fnmatchcase(repository, glob) for glob in self.repositories)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name}
        if self.repositories:
            out["repositories"] = list(self.repositories)
        if self.description:
            out["description"] = self.description
        out["untagged"] = self.untagged
        out["older_than"] = format_duration(self.older_than) if self.older_than is not None else None
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
    source: str = "command line"
    _cache: dict[str, Rule | None] = field(default_factory=dict, compare=False, repr=False)

    def rule_for(self, repository: str) -> Rule | None:
        """The rule governing `repository`, or None when it is outside the scope."""
        if repository not in self._cache:
            rule: Rule | None = None
            if not self.scope or any(fnmatch.fnmatchcase(repository, g) for g in self.scope):
                rule = next((r for r in self.rules if r.matches(repository)), self.default)
            self._cache[repository] = rule
        return self._cache[repository]

    @property
    def all_rules(self) -> tuple[Rule, ...]:
        return (*self.rules, self.default)

    def with_protections(self, keep_tags: tuple[str, ...], pulled_within: timedelta | None) -> "Policy":
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
            "rules": [r.to_json() for r in self.rules],
            "default": self.default.to_json(),
        }


def from_flags(
    *,
    untagged: bool = False,
    older_than: str | None = None,
    keep: int | None = None,
    delete_tags: str | None = None,
    keep_tags: tuple[str, ...] = (),
    pulled_within: str | None = None,
    grace: str | None = None,
    include_locked: bool = False,
    repositories: tuple[str, ...] = (),
) -> Policy:
    """The policy that command-line flags describe: one default rule."""
    rule = Rule(
        name="command line",
        untagged=untagged,
        older_than=parse_duration(older_than, "--older-than") if older_than is not None else None,
        keep=_keep(keep, "--keep"),
        delete_tags=_regex(delete_tags, "--delete-tags") if delete_tags is not None else None,
        keep_tags=tuple(_regex(p, "--keep-tags") for p in keep_tags),
        pulled_within=parse_duration(pulled_within, "--pulled-within") if pulled_within is not None else None,
    )
    return Policy(
        default=rule,
        grace=parse_duration(grace, "--grace") if grace is not None else DEFAULT_GRACE,
        include_locked=include_locked,
        scope=tuple(repositories),
    )


def resolve(
    policy_file: str | None,
    *,
    untagged: bool = False,
    older_than: str | None = None,
    keep: int | None = None,
    delete_tags: str | None = None,
    keep_tags: tuple[str, ...] = (),
    pulled_within: str | None = None,
    grace: str | None = None,
    include_locked: bool = False,
    repositories: tuple[str, ...] = (),
) -> Policy:
    """The policy `regstat plan-gc` runs: from its flags, or from a policy file with the
    protections and settings flags add on top (tag rules then belong in the file)."""
    if policy_file is None:
        return from_flags(untagged=untagged, older_than=older_than, keep=keep, delete_tags=delete_tags,
                          keep_tags=keep_tags, pulled_within=pulled_within, grace=grace,
                          include_locked=include_locked, repositories=repositories)
    rule_flags = {"--untagged": untagged, "--older-than": older_than, "--keep": keep, "--delete-tags": delete_tags}
    given = [name for name, value in rule_flags.items() if value not in (None, False)]
    if given:
        raise PolicyError(f"{', '.join(given)}: with --policy, tag rules belong in the policy file")
    policy = load(policy_file).with_protections(
        tuple(_regex(p, "--keep-tags") for p in keep_tags),
        parse_duration(pulled_within, "--pulled-within") if pulled_within is not None else None,
    )
    changes: dict[str, Any] = {}
    if grace is not None:
        changes["grace"] = parse_duration(grace, "--grace")
    if include_locked:
        changes["include_locked"] = True
    if repositories:
        changes["scope"] = tuple(repositories)
    return replace(policy, **changes, _cache={}) if changes else policy


def load(path: str) -> Policy:
    """Read a policy file; PolicyError names the file and line of any problem."""
    try:
        with open(path, "rb") as f:
            raw = f.read()
    except OSError as e:
        raise PolicyError(f"{path}: cannot read the policy: {e.strerror or e}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        raise PolicyError(f"{path}: not valid TOML: {e}") from None
    return _Reader(path, text).policy(doc)


class _Reader:
    """Turns a parsed policy document into a Policy, naming lines in its errors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def policy(self, doc: dict[str, Any]) -> Policy:
        for key in doc:
            if key not in _TOP_KEYS:
                self.fail(None, key, f"unknown key {key!r} (expected one of {', '.join(sorted(_TOP_KEYS))})")
        if not isinstance(doc.get("default"), dict):
            self.fail(None, "default", "a [default] table is required: the rule for repositories no rule names "
                      "(an empty [default] deletes only garbage)")
        rules_doc = doc.get("rules", [])
        if not isinstance(rules_doc, list) or not all(isinstance(r, dict) for r in rules_doc):
            self.fail(None, "rules", "rules must be [[rules]] tables")
        rules = tuple(self.rule(r, i) for i, r in enumerate(rules_doc))
        default = self.rule(doc["default"], _DEFAULT)
        self.check_shadowing(rules)
        grace = doc.get("grace")
        include_locked = doc.get("include_locked", False)
        if not isinstance(include_locked, bool):
            self.fail(None, "include_locked", "include_locked must be true or false")
        return Policy(
            default=default,
            rules=rules,
            grace=self.duration(grace, None, "grace") if grace is not None else DEFAULT_GRACE,
            include_locked=include_locked,
            scope=self.globs(doc.get("repositories", []), None, "repositories"),
            source=self.path,
        )

    def rule(self, doc: dict[str, Any], index: int) -> Rule:
        for key in doc:
            if key not in _RULE_KEYS:
                self.fail(index, key, f"unknown key {key!r} (expected one of {', '.join(sorted(_RULE_KEYS))})")
        if index == _DEFAULT and "repositories" in doc:
            self.fail(index, "repositories", "[default] governs the repositories no rule names: it takes no repositories")
        if index != _DEFAULT and not doc.get("repositories"):
            self.fail(index, None, "a rule needs repositories (a pattern or a list of patterns)")
        untagged = doc.get("untagged", False)
        if not isinstance(untagged, bool):
            self.fail(index, "untagged", "untagged must be true or false")
        keep = doc.get("keep")
        if keep is not None and (isinstance(keep, bool) or not isinstance(keep, int) or keep < 0):
            self.fail(index, "keep", "keep must be a whole number >= 0")
        delete_tags = doc.get("delete_tags")
        if delete_tags is not None:
            delete_tags = self.regex(delete_tags, index, "delete_tags")
        keep_tags = doc.get("keep_tags", [])
        keep_tags = tuple(self.regex(p, index, "keep_tags") for p in ([keep_tags] if isinstance(keep_tags, str) else keep_tags))
        if delete_tags is not None and delete_tags in keep_tags:
            self.fail(index, "keep_tags", f"keep_tags protects exactly what delete_tags selects ({delete_tags!r}): "
                      "the rule can delete no tag")
        description = doc.get("description")
        if description is not None and not isinstance(description, str):
            self.fail(index, "description", "description must be a string")
        repositories = self.globs(doc.get("repositories", []), index, "repositories")
        return Rule(
            name="default" if index == _DEFAULT else f"rule {index + 1} ({', '.join(repositories)})",
            repositories=repositories,
            untagged=untagged,
            older_than=self.duration(doc["older_than"], index, "older_than") if "older_than" in doc else None,
            keep=keep,
            delete_tags=delete_tags,
            keep_tags=keep_tags,
            pulled_within=self.duration(doc["pulled_within"], index, "pulled_within") if "pulled_within" in doc else None,
            description=description,
        )

    def check_shadowing(self, rules: tuple[Rule, ...]) -> None:
        """A rule whose every pattern an earlier rule already claims can never apply."""
        for i, rule in enumerate(rules):
            for earlier in rules[:i]:
                if all(p in earlier.repositories or "*" in earlier.repositories for p in rule.repositories):
                    self.fail(i, "repositories", f"{rule.name} can never apply: {earlier.name} comes first and "
                              "claims every repository it names (rules apply in order, the first match wins)")

    def globs(self, value: Any, index: int | None, key: str) -> tuple[str, ...]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            self.fail(index, key, f"{key} must be a pattern or a list of patterns")
        return tuple(values)

    def duration(self, value: Any, index: int | None, key: str) -> timedelta:
        if not isinstance(value, str):
            self.fail(index, key, f"{key} must be a duration string such as \"30d\"")
        try:
            return parse_duration(value, key)
        except PolicyError as e:
            self.fail(index, key, str(e))

    def regex(self, value: Any, index: int | None, key: str) -> str:
        if not isinstance(value, str):
            self.fail(index, key, f"{key} must be a regular expression string (or a list of them)")
        try:
            return _regex(value, key)
        except PolicyError as e:
            self.fail(index, key, str(e))

    def fail(self, index: int | None, key: str | None, message: str) -> Any:
        line = self.line_of(index, key)
        where = f"{self.path}:{line}" if line else self.path
        raise PolicyError(f"{where}: {message}")

    def line_of(self, index: int | None, key: str | None) -> int | None:
        """The line of `key` at the top level (index None), in [default] (index _DEFAULT) or in
        the index-th [[rules]] table; else the line of that table's header."""
        section: tuple[str, int] = ("top", 0)
        rules_seen = -1
        header_line: dict[tuple[str, int], int] = {}
        for number, line in enumerate(self.lines, start=1):
            stripped = line.strip()
            if stripped.startswith("[[") and stripped[2:].split("]")[0].strip() == "rules":
                rules_seen += 1
                section = ("rules", rules_seen)
                header_line[section] = number
                continue
            if stripped.startswith("[") and not stripped.startswith("[["):
                section = (stripped[1:].split("]")[0].strip(), 0)
                header_line[section] = number
                continue
            if key is not None and re.match(rf"\s*[\"']?{re.escape(key)}[\"']?\s*=", line):
                if section == self._section(index, key):
                    return number
        if index is None and key in ("default", "rules"):
            return header_line.get((key, 0))
        return header_line.get(self._section(index, key))

    @staticmethod
    def _section(index: int | None, key: str | None) -> tuple[str, int]:
        if index is None:
            return ("top", 0)
        return ("default", 0) if index == _DEFAULT else ("rules", index)


def _regex(pattern: str, what: str) -> str:
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
            older_than=parse_duration(r["older_than"]) if r.get("older_than") else None,
            keep=r.get("keep"),
            delete_tags=r.get("delete_tags"),
            keep_tags=tuple(r.get("keep_tags") or ()),
            pulled_within=parse_duration(r["pulled_within"]) if r.get("pulled_within") else None,
            description=r.get("description"),
        )

    try:
        return Policy(
            default=rule(doc["default"]),
            rules=tuple(rule(r) for r in doc.get("rules") or ()),
            grace=parse_duration(doc["grace"]),
            include_locked=bool(doc.get("include_locked")),
            scope=tuple(doc.get("repositories") or ()),
            source=doc.get("source") or "plan",
        )
    except (KeyError, TypeError) as e:
        raise PolicyError(f"the plan's policy cannot be read back: {e}") from None
