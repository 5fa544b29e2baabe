"""A retention policy file (TOML), read into a Policy (regstat.plan.policy), and `resolve`:
the policy plan-gc runs, from its flags or a file with flags on top.

    grace = "24h"                  # nothing younger is deleted; "0s" turns it off
    include_locked = false
    repositories = ["apps/*", "ci/*", "pr-*"]  # the repositories the rules apply to (default: all)

    [default]                      # required: the repositories no rule names
    untagged = true

    [[rules]]
    repositories = ["ci/*", "pr-*"]
    older_than = "14d"
    keep = 3
    delete_tags = "^pr-"
    keep_tags = ["^release-"]
    pulled_within = "7d"
    untagged = true
    keep_untagged = 5

A rule may set `ago = "2d3h6m"` (acr purge's --ago, in its syntax) instead of older_than: it
selects tags as older_than does and keeps every manifest updated more recently.

Errors name the file and the line of the offending key (PolicyError, exit code 2); a rule that
can never apply (earlier rules claim every pattern it names, or the top-level repositories
exclude them) is an error too.
"""

from __future__ import annotations

import difflib
import fnmatch
import json
import re
import tomllib
from dataclasses import replace
from datetime import timedelta
from typing import Any, NoReturn

from ..durations import DEFAULT_GRACE
from .policy import Policy, PolicyError, Rule, checked_regex, from_flags, parse_ago, parse_duration

_DEFAULT = -1  # the index _Reader gives [default]; [[rules]] count from 0
_TOP_KEYS = {"grace", "include_locked", "repositories", "default", "rules"}
_RULE_KEYS = {"repositories", "description", "untagged", "keep_untagged", "older_than", "keep", "delete_tags",
              "keep_tags", "pulled_within", "ago"}


def resolve(
    policy_file: str | None,
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
    """The policy `regstat plan-gc` runs: from its flags, or from a policy file with the
    protections and settings flags add on top (tag rules then belong in the file)."""
    if policy_file is None:
        return from_flags(untagged=untagged, keep_untagged=keep_untagged, older_than=older_than, keep=keep,
                          delete_tags=delete_tags, keep_tags=keep_tags, pulled_within=pulled_within, grace=grace,
                          include_locked=include_locked, repositories=repositories, filters=filters, ago=ago)
    if filters:
        raise PolicyError(f"--filter cannot be combined with --policy {policy_file}: a rule's repositories and "
                          "delete_tags say what a filter says (or use --repository on top of the file)")
    # `is not None`, not truthiness: --keep 0 is a rule too, and must not be silently dropped.
    rule_flags = {"--untagged": untagged or None, "--keep-untagged": keep_untagged, "--older-than": older_than,
                  "--keep": keep, "--delete-tags": delete_tags, "--ago": ago}
    given = [name for name, value in rule_flags.items() if value is not None]
    if given:
        keys = ", ".join(name.removeprefix("--").replace("-", "_") for name in given)
        raise PolicyError(f"{', '.join(given)} cannot be combined with --policy {policy_file}: with a policy file "
                          f"the rules live in it (set {keys} in its [default] or a [[rules]] table); only "
                          "--keep-tags, --pulled-within, --grace, --include-locked and --repository apply on top")
    policy = load(policy_file).with_protections(
        tuple(checked_regex(p, "--keep-tags") for p in keep_tags),
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
        raise PolicyError(f"{path}: cannot read the policy file: {e.strerror or e}") from None
    text = raw.decode("utf-8", errors="replace")
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as e:
        line = re.search(r"at line (\d+)", str(e))
        raise PolicyError(f"{path}{':' + line.group(1) if line else ''}: not valid TOML: {e}") from None
    return _Reader(path, text).policy(doc)


class _Reader:
    """Turns a parsed policy document into a Policy, naming lines in its errors."""

    def __init__(self, path: str, text: str) -> None:
        self.path = path
        self.lines = text.splitlines()

    def policy(self, doc: dict[str, Any]) -> Policy:
        for key in doc:
            if key not in _TOP_KEYS:
                hint = _did_you_mean(key, _TOP_KEYS)
                rule_key = key if key in _RULE_KEYS else (None if hint else _closest(key, _RULE_KEYS))
                if rule_key:
                    hint = (f"{'' if rule_key == key else f'; did you mean {rule_key!r}?'}; {rule_key} is a rule "
                            "setting: put it in [default] or in a [[rules]] table")
                self.fail(None, key, f"unknown top-level key {key!r}{hint} "
                          f"(the top level takes {', '.join(sorted(_TOP_KEYS))})")
        if "default" not in doc:
            self.fail(None, None, "a [default] table is required: the rule for the repositories no [[rules]] "
                      "names (an empty [default] deletes only garbage: unreferenced blobs and stale uploads)")
        if not isinstance(doc["default"], dict):
            self.fail(None, "default", f"default = {_toml(doc['default'])}: default must be a table ([default])")
        rules_doc = doc.get("rules", [])
        if not isinstance(rules_doc, list) or not all(isinstance(r, dict) for r in rules_doc):
            self.fail(None, "rules", "rules must be [[rules]] tables (double brackets: one table per rule)")
        rules = tuple(self.rule(r, i) for i, r in enumerate(rules_doc))
        default = self.rule(doc["default"], _DEFAULT)
        scope = self.globs(doc.get("repositories", []), None, "repositories")
        self.check_shadowing(rules)
        self.check_scope(rules, scope)
        grace = doc.get("grace")
        include_locked = doc.get("include_locked", False)
        if not isinstance(include_locked, bool):
            self.fail(None, "include_locked", f"include_locked = {_toml(include_locked)}: must be true or false "
                      "(without quotes)")
        return Policy(
            default=default,
            rules=rules,
            grace=self.duration(grace, None, "grace") if grace is not None else DEFAULT_GRACE,
            include_locked=include_locked,
            scope=scope,
            source=self.path,
        )

    def rule(self, doc: dict[str, Any], index: int) -> Rule:
        for key in doc:
            if key not in _RULE_KEYS:
                if key in _TOP_KEYS:
                    hint = (f"; {key} is a top-level setting, and in TOML every key after a [table] header "
                            "belongs to that table: move it above the first table")
                else:
                    hint = _did_you_mean(key, _RULE_KEYS)
                self.fail(index, key, f"unknown key {key!r}{hint} (a rule takes {', '.join(sorted(_RULE_KEYS))})")
        if index == _DEFAULT and "repositories" in doc:
            self.fail(index, "repositories", "takes no repositories: [default] governs the repositories no "
                      "rule names (to limit the repositories every rule applies to, set repositories at "
                      "the top level)")
        if index != _DEFAULT and not doc.get("repositories"):
            self.fail(index, "repositories", 'a rule needs repositories = ["pattern", ...]: the repositories it '
                      "governs (the first rule naming a repository wins; [default] takes the rest)")
        untagged = doc.get("untagged", False)
        if not isinstance(untagged, bool):
            self.fail(index, "untagged", f"untagged = {_toml(untagged)}: must be true or false (without quotes)")
        keep = self.count(doc, index, "keep", "how many of the most recently updated selected tags stay")
        keep_untagged = self.count(doc, index, "keep_untagged", "how many of the most recently updated orphaned "
                                   "manifests stay")
        if "ago" in doc and "older_than" in doc:
            self.fail(index, "ago", "ago and older_than cannot both be set: ago selects tags by age as older_than "
                      "does (and also keeps manifests updated more recently); keep one of them")
        if keep_untagged is not None and not untagged:
            self.fail(index, "keep_untagged", "keep_untagged needs untagged = true in the same rule: without it no "
                      "orphaned manifest is deleted, so there is nothing to keep")
        delete_tags = doc.get("delete_tags")
        if delete_tags is not None:
            if not isinstance(delete_tags, str):
                self.fail(index, "delete_tags", f"delete_tags = {_toml(delete_tags)}: must be one regular "
                          'expression string (e.g. "^pr-"; combine alternatives as "^(pr|dev)-")')
            delete_tags = self.regex(delete_tags, index, "delete_tags")
        keep_tags = doc.get("keep_tags", [])
        if not isinstance(keep_tags, (str, list)):
            self.fail(index, "keep_tags", f"keep_tags = {_toml(keep_tags)}: must be a regular expression string "
                      "or a list of them")
        patterns = [keep_tags] if isinstance(keep_tags, str) else keep_tags
        keep_tags = tuple(self.regex(p, index, "keep_tags") for p in patterns)
        if delete_tags is not None and delete_tags in keep_tags:
            self.fail(index, "keep_tags", f"keep_tags protects exactly what delete_tags selects ({delete_tags!r}): "
                      "the rule can delete no tag; drop one of them")
        description = doc.get("description")
        if description is not None and not isinstance(description, str):
            self.fail(index, "description", f"description = {_toml(description)}: must be a string")
        repositories = self.globs(doc.get("repositories", []), index, "repositories")
        return Rule(
            name="default" if index == _DEFAULT else f"rule {index + 1} ({', '.join(repositories)})",
            repositories=repositories,
            untagged=untagged,
            keep_untagged=keep_untagged,
            older_than=self.duration(doc["older_than"], index, "older_than") if "older_than" in doc else None,
            keep=keep,
            delete_tags=delete_tags,
            keep_tags=keep_tags,
            pulled_within=(self.duration(doc["pulled_within"], index, "pulled_within")
                           if "pulled_within" in doc else None),
            description=description,
            ago=self.ago(doc["ago"], index) if "ago" in doc else None,
        )

    def check_shadowing(self, rules: tuple[Rule, ...]) -> None:
        """A rule whose every pattern earlier rules already claim can never apply."""
        for i, rule in enumerate(rules):
            claimed = {}
            for pattern in rule.repositories:
                claimer = next(((earlier, glob) for earlier in rules[:i] for glob in earlier.repositories
                                if _claims(glob, pattern)), None)
                if claimer is None:
                    break
                claimed[pattern] = claimer
            else:
                how = "; ".join(f"{p!r} by {earlier.name.split(' (')[0]}'s {glob!r}"
                                for p, (earlier, glob) in claimed.items())
                firsts = sorted({earlier.name for earlier, _ in claimed.values()})
                verbs = "comes first and matches" if len(firsts) == 1 else "come first and match"
                self.fail(i, "repositories", f"{rule.name} can never apply: {' and '.join(firsts)} {verbs} "
                          f"every repository it names ({how}); "
                          "rules apply in order and the first match wins: move this rule above, or narrow "
                          "the earlier one", label=False)

    def check_scope(self, rules: tuple[Rule, ...], scope: tuple[str, ...]) -> None:
        """A rule none of whose patterns can match inside the top-level repositories can never apply."""
        if not scope:
            return
        for i, rule in enumerate(rules):
            if all(_disjoint(pattern, glob) for pattern in rule.repositories for glob in scope):
                self.fail(i, "repositories", f"{rule.name} can never apply: the top-level repositories "
                          f"({', '.join(scope)}) include none of the repositories it names", label=False)

    def globs(self, value: Any, index: int | None, key: str) -> tuple[str, ...]:
        values = [value] if isinstance(value, str) else value
        if not isinstance(values, list) or not all(isinstance(v, str) and v for v in values):
            self.fail(index, key, f"{key} = {_toml(value)}: must be a pattern or a list of non-empty patterns "
                      '(e.g. ["apps/*", "base/alpine"]; `*` matches `/` too)')
        return tuple(values)

    def count(self, doc: dict[str, Any], index: int, key: str, meaning: str) -> int | None:
        value = doc.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 0):
            self.fail(index, key, f"{key} = {_toml(value)}: must be a whole number >= 0 ({meaning}), without quotes")
        return value

    def duration(self, value: Any, index: int | None, key: str) -> timedelta:
        if not isinstance(value, str):
            self.fail(index, key, f"{key} = {_toml(value)}: must be a duration string such as \"30d\" (quoted, "
                      "with a unit: s, m, h, d, w)")
        try:
            return parse_duration(value, key)
        except PolicyError as e:
            self.fail(index, key, str(e))

    def ago(self, value: Any, index: int) -> timedelta:
        if not isinstance(value, str):
            self.fail(index, "ago", f"ago = {_toml(value)}: must be a duration string as acr purge's --ago takes "
                      "it, such as \"30d\" or \"2d3h6m\" (quoted)")
        try:
            return parse_ago(value, "ago")
        except PolicyError as e:
            self.fail(index, "ago", str(e))

    def regex(self, value: Any, index: int | None, key: str) -> str:
        if not isinstance(value, str):
            self.fail(index, key, f"{key}: {_toml(value)} is not a regular expression string")
        try:
            return checked_regex(value, key)
        except PolicyError as e:
            self.fail(index, key, str(e))

    def fail(self, index: int | None, key: str | None, message: str, *, label: bool = True) -> NoReturn:
        line = self.line_of(index, key)
        where = f"{self.path}:{line}" if line else self.path
        if label and index is not None:
            message = ("[default]: " if index == _DEFAULT else f"rule {index + 1}: ") + message
        raise PolicyError(f"{where}: {message}")

    def line_of(self, index: int | None, key: str | None) -> int | None:
        """The line of `key` at the top level (index None), in [default] (index _DEFAULT) or in
        the index-th [[rules]] table, as `key = `, a dotted `key.x = ` or a `[table.key]` header;
        else the line of that table's header (or of its inline `default = {` / `rules = [`)."""
        want = self._section(index)
        section: tuple[str, int] = ("top", 0)
        rules_seen = -1
        headers: dict[tuple[str, int], int] = {}
        top_keys: dict[str, int] = {}
        key_line = re.compile(rf"\s*[\"']?{re.escape(key)}[\"']?\s*[=.]") if key is not None else None
        for number, line in enumerate(self.lines, start=1):
            header = re.match(r"\s*(\[\[?)([^\]]*)\]", line)
            if header:
                parts = [p.strip().strip("\"'") for p in header.group(2).split(".")]
                if parts == ["rules"] and header.group(1) == "[[":
                    rules_seen += 1
                    section = ("rules", rules_seen)
                elif parts[0] == "rules":
                    section = ("rules", max(rules_seen, 0))
                elif parts[0] == "default":
                    section = ("default", 0)
                else:  # an unknown table: a top-level key
                    section = ("unknown", 0)
                    if want == ("top", 0) and key == parts[0]:
                        return number
                    continue
                headers.setdefault(section, number)
                if len(parts) > 1 and section == want and key == parts[1]:
                    return number  # [default.key] or [rules.key]: a sub-table named key
                continue
            if section == ("top", 0):
                bare = re.match(r"\s*[\"']?([A-Za-z0-9_-]+)[\"']?\s*[=.]", line)
                if bare:
                    top_keys.setdefault(bare.group(1), number)
            if key_line is not None and section == want and key_line.match(line):
                return number
        if want == ("top", 0):
            return headers.get((key, 0)) or top_keys.get(key) if key in ("default", "rules") else None
        return headers.get(want) or top_keys.get(want[0])

    @staticmethod
    def _section(index: int | None) -> tuple[str, int]:
        if index is None:
            return ("top", 0)
        return ("default", 0) if index == _DEFAULT else ("rules", index)


def _toml(value: Any) -> str:
    """A value as it reads in TOML (near enough for an error message)."""
    return json.dumps(value, default=str)


def _closest(key: str, keys: set[str]) -> str | None:
    close = difflib.get_close_matches(key, sorted(keys), n=1, cutoff=0.6)
    return close[0] if close else None


def _did_you_mean(key: str, keys: set[str]) -> str:
    close = _closest(key, keys)
    return f"; did you mean {close!r}?" if close else ""


def _is_glob(pattern: str) -> bool:
    return any(c in pattern for c in "*?[")


def _literal_prefix(pattern: str) -> str:
    return re.split(r"[*?\[]", pattern, maxsplit=1)[0]


def _claims(earlier: str, pattern: str) -> bool:
    """Whether glob `earlier` surely matches every repository glob `pattern` matches."""
    if earlier in (pattern, "*"):
        return True
    if not _is_glob(pattern):
        return fnmatch.fnmatchcase(pattern, earlier)
    # "apps/*" claims "apps/web-*": `*` matches anything, `/` included
    return earlier.endswith("*") and not _is_glob(earlier[:-1]) and pattern.startswith(earlier[:-1])


def _disjoint(pattern: str, glob: str) -> bool:
    """Whether no repository name surely matches both globs."""
    if not _is_glob(pattern):
        return not fnmatch.fnmatchcase(pattern, glob)
    if not _is_glob(glob):
        return not fnmatch.fnmatchcase(glob, pattern)
    a, b = _literal_prefix(pattern), _literal_prefix(glob)
    return not (a.startswith(b) or b.startswith(a))
