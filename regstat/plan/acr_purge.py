"""`acr purge`'s `--filter` and `--ago`, read as acr purge reads them (Azure/acr-cli,
cmd/acr/purge.go and cmd/repository/image_functions.go), for plan-gc on any source.

- `--filter 'REPO_REGEX:TAG_REGEX'`: the colon that is not regular-expression syntax (not
  inside `[...]`, not ending a group's flags as in `(?:` or `(?i:`) splits it; both halves
  are required. The repository half must match a repository's whole name (acr purge wraps it
  as `^REPO$`, regstat uses `re.fullmatch`, which also anchors an alternation `a|b` whole);
  the tag half is searched anywhere in the tag (unanchored). Several filters naming a
  repository select the tags any of their tag halves match.
- `--ago DURATION`: days then a Go duration, `[N]d[GO_DURATION]` (`30d`, `2d3h6m`, `1h30m`,
  `1.5h`, `90s`, `0`): Go's units are h, m, s, ms, us (µs), ns; there is no `w`.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta

_GO_UNITS = {"h": 3600.0, "m": 60.0, "s": 1.0, "ms": 1e-3, "us": 1e-6, "µs": 1e-6, "μs": 1e-6, "ns": 1e-9}
_GO_PART = re.compile(r"(\d+(?:\.\d*)?|\.\d+)(ns|us|µs|μs|ms|h|m|s)")
_AGO = re.compile(r"(?:(\d+)d)?(.*)", re.DOTALL)
_LONGEST = timedelta(days=36500)
# A POSIX class (`[[:alpha:]]`), which Go and acr purge read but Python's re reads as a plain
# set of the characters `[:alph`: refused rather than silently matching something else.
_POSIX_CLASS = re.compile(r"\[:[a-z]+:\]")
# Go's ungreedy flag U (`(?U)`, `(?iU:`), which Python reads as its Unicode flag: refused too.
_UNGREEDY = re.compile(r"\(\?[a-zA-Z]*U[a-zA-Z-]*[:)]")


def parse_ago(text: str, what: str = "--ago") -> timedelta:
    """acr purge's duration: `30d`, `2d3h6m`, `1.5h`, `0`."""
    match = _AGO.fullmatch(str(text).strip())
    days, rest = (match.group(1), match.group(2)) if match else (None, "")
    parts = _GO_PART.findall(rest)
    # "0" alone is a Go duration; "" only after days ("30d"); else every character in a part
    if match is None or not (rest == "0" or (rest == "" and days is not None)
                             or (rest and "".join(n + u for n, u in parts) == rest)):
        raise ValueError(f"{what}: {text!r} is not a duration as acr purge writes it: days then a Go duration, "
                          "[N]d[GO_DURATION] (e.g. 30d, 2d3h6m, 1h30m, 1.5h, 90s, 0; units d, h, m, s, ms, us, ns)")
    total = timedelta(days=int(days or 0), seconds=sum(float(n) * _GO_UNITS[u] for n, u in parts))
    if total > _LONGEST:
        raise ValueError(f"{what}: {text!r} is longer than {_LONGEST.days}d (100 years)")
    return total


def format_ago(value: timedelta) -> str:
    """A duration as parse_ago reads it back: `30d`, `2d3h6m`, `0`."""
    days, seconds = value.days, value.seconds + value.microseconds / 1e6
    hours, seconds = divmod(seconds, 3600)
    minutes, seconds = divmod(seconds, 60)
    out = f"{days}d" if days else ""
    out += f"{int(hours)}h" if hours else ""
    out += f"{int(minutes)}m" if minutes else ""
    out += f"{seconds:g}s" if seconds else ""
    return out or "0"


@dataclass(frozen=True)
class Filter:
    """One `--filter`: a repository pattern (whole name) and a tag pattern (anywhere in the tag)."""

    repository: str
    tag: str

    @classmethod
    def parse(cls, text: str) -> Filter:
        separators = _separators(text)
        if len(separators) != 1:
            raise ValueError(f"--filter {text!r}: not REPO_REGEX:TAG_REGEX (one colon between the repository and "
                              f"the tag expression, found {len(separators)}; e.g. 'hello-world:^v1', '.*:.*')")
        repository, tag = text[:separators[0]], text[separators[0] + 1:]
        if not repository or not tag:
            raise ValueError(f"--filter {text!r}: missing the {'repository' if not repository else 'tag'} "
                              "expression (REPO_REGEX:TAG_REGEX; '.*' matches any)")
        return cls(checked(repository, text), checked(tag, text))

    def selects_repository(self, repository: str) -> bool:
        return re.fullmatch(self.repository, repository) is not None

    def __str__(self) -> str:
        return f"{self.repository}:{self.tag}"


def checked(pattern: str, text: str) -> str:
    if _POSIX_CLASS.search(pattern):
        raise ValueError(f"--filter {text!r}: POSIX classes such as [[:alpha:]] (Go regexp) are not Python regular "
                          "expressions: write the set out (e.g. [a-zA-Z], [0-9])")
    if _UNGREEDY.search(pattern):
        raise ValueError(f"--filter {text!r}: the flag U is Go's ungreedy flag, which Python's re does not have "
                         "(its U means Unicode): make each quantifier lazy instead (*?, +?)")
    try:
        re.compile(pattern)
    except re.error as e:
        raise ValueError(f"--filter {text!r}: {pattern!r} is not a (Python) regular expression: {e}") from None
    return pattern


def _separators(text: str) -> list[int]:
    """Where `text` has a colon that is not regular-expression syntax: outside `[...]`, and not
    the colon of a group's `(?:`, `(?i:` or `(?i-s:`."""
    out = []
    set_start = None  # where the set's members start, inside `[...]`
    i = 0
    while i < len(text):
        c = text[i]
        if c == "\\":
            i += 2
            continue
        if set_start is not None:
            if c == "]" and i > set_start:  # a `]` first in the set is a member
                set_start = None
        elif c == "[":
            set_start = i + 2 if text[i + 1:i + 2] == "^" else i + 1
        elif c == ":" and not re.search(r"\(\?[a-zA-Z-]*$", text[:i]):
            out.append(i)
        i += 1
    return out
