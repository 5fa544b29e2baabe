"""Retention policies (regstat/policy.py): durations, TOML policy files and their errors, the
policy `regstat plan-gc` resolves from a file and flags, and the JSON a plan records.

Every error a policy file can have must name the file and the line of the offending key, so
an operator can go straight to it; the messages are checked for what makes them actionable
(the value given, what is expected, where a misplaced key belongs).
"""

from __future__ import annotations

import json
import re
import textwrap
from datetime import timedelta
from pathlib import Path

import pytest

from regstat.durations import DEFAULT_GRACE, format_duration
from regstat.plan import policy_file as policy_module
from regstat.plan.policy import Policy, PolicyError, Rule, from_flags, from_json, parse_duration
from regstat.plan.policy_file import load, resolve

PLAN_GC_DOCS = Path(__file__).resolve().parent.parent / "docs" / "plan-gc.md"


def write(tmp_path: Path, text: str, name: str = "policy.toml") -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text).lstrip("\n"))
    return str(path)


def load_error(tmp_path: Path, text: str) -> tuple[str, str]:
    """(the path, the message) of the PolicyError loading `text` raises."""
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load(path)
    return path, str(caught.value)


def docstring_example() -> str:
    """The TOML example in policy.py's module docstring (its indented block)."""
    lines = policy_module.__doc__.splitlines()
    block = [line for line in lines if line.startswith("    ") or not line.strip()]
    start = next(i for i, line in enumerate(block) if line.strip())
    text = "\n".join(block[start:])
    text = text[: text.rfind("\n\n")] if "Errors" in text else text
    return textwrap.dedent(text)


def docs_example() -> str:
    """The policy file example under "Policy files" in docs/plan-gc.md."""
    text = PLAN_GC_DOCS.read_text()
    section = text[text.index("## Policy files"):]
    return re.search(r"```toml\n(.*?)```", section, re.S).group(1)


# --- durations --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("90s", timedelta(seconds=90)),
        ("15m", timedelta(minutes=15)),
        ("24h", timedelta(hours=24)),
        ("30d", timedelta(days=30)),
        ("2w", timedelta(weeks=2)),
        ("1d12h", timedelta(days=1, hours=12)),
        ("1w2d3h4m5s", timedelta(weeks=1, days=2, hours=3, minutes=4, seconds=5)),
        ("1D 12H", timedelta(days=1, hours=12)),
        ("0s", timedelta(0)),
    ],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected
    assert parse_duration(format_duration(expected)) == expected


@pytest.mark.parametrize("text", ["", "12", "1.5h", "-1d", "3 days", "1y", "d", "1d-2h", "24h ago", "h24", "1e3s"])
def test_bad_durations_are_rejected_saying_what_a_duration_is(text: str) -> None:
    with pytest.raises(PolicyError) as caught:
        parse_duration(text, "--older-than")
    message = str(caught.value)
    assert message.startswith(f"--older-than: {text!r} is not a duration")
    assert "s, m, h, d, w" in message and "1d12h" in message


@pytest.mark.parametrize("text", ["36501d", "999999w", "99999999999999999999w"])
def test_absurdly_long_durations_are_an_error_not_an_overflow(text: str) -> None:
    # 999999w from a snapshot's time is before year 1: the planner would overflow.
    with pytest.raises(PolicyError, match="longer than 36500d"):
        parse_duration(text, "--grace")
    assert parse_duration("36500d") == timedelta(days=36500)


def test_format_duration_picks_the_largest_exact_unit() -> None:
    assert [format_duration(parse_duration(t)) for t in ("1d12h", "14d", "24h", "90s", "120s", "0s")] == [
        "36h", "2w", "1d", "90s", "2m", "0s"]


# --- the documented examples ------------------------------------------------------------------


def test_the_docstring_example_loads_and_resolves_rules_per_repository(tmp_path: Path) -> None:
    policy = load(write(tmp_path, docstring_example()))
    assert policy.grace == timedelta(hours=24) and policy.include_locked is False
    assert policy.scope == ("apps/*", "ci/*", "pr-*")
    (rule,) = policy.rules
    assert rule == Rule(
        name="rule 1 (ci/*, pr-*)", repositories=("ci/*", "pr-*"), older_than=timedelta(days=14), keep=3,
        delete_tags="^pr-", keep_tags=("^release-",), pulled_within=timedelta(days=7), untagged=True, keep_untagged=5,
    )
    assert policy.default == Rule(name="default", untagged=True)
    assert policy.rule_for("ci/build") is rule
    assert policy.rule_for("ci/deep/nested/image") is rule  # `*` matches `/` too
    assert policy.rule_for("pr-1234") is rule
    assert policy.rule_for("apps/web") is policy.default
    # Outside the top-level repositories: no rule at all, not the default.
    assert policy.rule_for("base/alpine") is None
    assert policy.rule_for("app") is None


def test_the_docs_example_loads_and_resolves_rules_in_priority_order(tmp_path: Path) -> None:
    policy = load(write(tmp_path, docs_example()))
    assert [r.repositories for r in policy.rules] == [("ci/*", "pr-*"), ("apps/*",)]
    ci, apps = policy.rules
    assert ci.description and ci.older_than == timedelta(days=14) and ci.keep == 3 and ci.untagged
    assert ci.keep_untagged == 5
    assert apps.delete_tags == "^(pr|dev)-" and apps.keep_tags == ("^v[0-9]", "^latest$")
    assert policy.rule_for("ci/x") is ci and policy.rule_for("apps/web") is apps
    assert policy.rule_for("base/alpine") is policy.default and policy.default.untagged


def test_the_first_matching_rule_wins_and_default_takes_the_rest(tmp_path: Path) -> None:
    policy = load(write(tmp_path, """
        [default]
        [[rules]]
        repositories = "apps/web"
        keep = 1
        [[rules]]
        repositories = ["apps/*", "tools/cli"]
        keep = 5
        [[rules]]
        repositories = ["*"]
        untagged = true
    """))
    web, apps, everything = policy.rules
    assert policy.rule_for("apps/web") is web
    assert policy.rule_for("apps/api") is apps and policy.rule_for("tools/cli") is apps
    assert policy.rule_for("base/alpine") is everything
    assert policy.rule_for("apps/web2") is apps  # a literal pattern matches only itself
    assert [r.name for r in policy.all_rules] == ["rule 1 (apps/web)", "rule 2 (apps/*, tools/cli)",
                                                  "rule 3 (*)", "default"]


def test_an_empty_default_is_allowed_and_selects_nothing(tmp_path: Path) -> None:
    policy = load(write(tmp_path, "[default]\n"))
    assert policy.default == Rule(name="default") and not policy.default.selects_tags
    assert policy.rules == () and policy.scope == () and policy.grace == DEFAULT_GRACE
    assert policy.rule_for("anything/at/all") is policy.default


def test_a_rule_may_come_after_default_and_take_single_strings(tmp_path: Path) -> None:
    policy = load(write(tmp_path, """
        grace = "0s"
        include_locked = true
        repositories = "apps/*"
        [default]
        keep_tags = "^v"
        [[rules]]
        repositories = "apps/web"
        description = "the web app"
        delete_tags = "^dev-"
        keep_tags = "^dev-keep"
    """))
    assert policy.grace == timedelta(0) and policy.include_locked and policy.scope == ("apps/*",)
    assert policy.default.keep_tags == ("^v",)
    assert policy.rules[0].keep_tags == ("^dev-keep",) and policy.rules[0].description == "the web app"


# --- errors name the file and the line --------------------------------------------------------

ERRORS = [
    # (id, text, line, fragments of the message)
    ("unknown top-level key", """
        grace = "1h"
        graec = "2h"
        [default]
     """, 2, ["unknown top-level key 'graec'", "did you mean 'grace'?", "the top level takes"]),
    ("rule key at the top level", """
        untagged = true
        [default]
     """, 1, ["unknown top-level key 'untagged'", "put it in [default] or in a [[rules]] table"]),
    ("misspelt rule key at the top level", """
        # a comment
        keeep = 3
        [default]
     """, 2, ["'keeep'", "did you mean 'keep'?", "rule setting"]),
    ("unknown key in a rule", """
        [default]
        [[rules]]
        repositories = ["a/*"]
        keep = 1
        [[rules]]
        repositories = ["b/*"]
        older_then = "3d"
     """, 7, ["rule 2: unknown key 'older_then'", "did you mean 'older_than'?", "a rule takes"]),
    ("unknown key in default", """
        [default]
        untaged = true
     """, 2, ["[default]: unknown key 'untaged'", "did you mean 'untagged'?"]),
    ("top-level setting after a table header", """
        [default]
        untagged = true
        grace = "0s"
     """, 3, ["[default]: unknown key 'grace'", "top-level setting", "move it above the first table"]),
    ("dotted key", """
        [default]
        untagged = true
        extra.thing = 1
     """, 3, ["unknown key 'extra'"]),
    ("sub-table of default", """
        [default]
        untagged = true

        [default.extra]
        x = 1
     """, 4, ["[default]: unknown key 'extra'"]),
    ("sub-table of a rule", """
        [default]
        [[rules]]
        repositories = ["a"]
        [rules.limits]
        keep = 1
     """, 4, ["rule 1: unknown key 'limits'"]),
    ("inline default", """
        grace = "1h"
        default = { untagged = true, bogus = 1 }
     """, 2, ["[default]: unknown key 'bogus'"]),
    ("default is not a table", """
        default = true
     """, 1, ["default = true", "must be a table"]),
    ("rules not an array of tables", """
        [default]
        [rules]
        repositories = ["a"]
     """, 2, ["rules must be [[rules]] tables"]),
    ("default with repositories", """
        [default]
        untagged = true
        repositories = ["apps/*"]
     """, 3, ["[default]: takes no repositories", "set repositories at the top level"]),
    ("rule without repositories", """
        [default]

        [[rules]]
        keep = 3
     """, 3, ["rule 1: a rule needs repositories"]),
    ("rule with empty repositories", """
        [default]
        [[rules]]
        keep = 3
        repositories = []
     """, 4, ["rule 1: a rule needs repositories"]),
    ("empty pattern", """
        [default]
        [[rules]]
        repositories = ["apps/*", ""]
     """, 3, ['repositories = ["apps/*", ""]', "non-empty patterns"]),
    ("pattern not a string", """
        repositories = [1]
        [default]
     """, 1, ["repositories = [1]", "a pattern or a list"]),
    ("bad delete_tags regex", """
        [default]
        delete_tags = "(["
     """, 2, ["[default]: delete_tags: '([' is not a regular expression"]),
    ("bad keep_tags regex in a list", """
        [default]
        [[rules]]
        repositories = "a"
        keep_tags = [
          "^v",
          "release-(",
        ]
     """, 4, ["rule 1: keep_tags: 'release-(' is not a regular expression", "missing )"]),
    ("delete_tags a list", """
        [default]
        delete_tags = ["^pr-", "^dev-"]
     """, 2, ['delete_tags = ["^pr-", "^dev-"]', "one regular expression", "^(pr|dev)-"]),
    ("keep_tags not a string", """
        [default]
        keep_tags = [3]
     """, 2, ["keep_tags: 3 is not a regular expression string"]),
    ("bad older_than", """
        [default]
        older_than = "3 days"
     """, 2, ["[default]: older_than: '3 days' is not a duration", "s, m, h, d, w"]),
    ("older_than a number", """
        [default]
        [[rules]]
        repositories = "a"
        older_than = 30
     """, 4, ["rule 1: older_than = 30", 'a duration string such as "30d"']),
    ("bad pulled_within", """
        [default]
        pulled_within = "7x"
     """, 2, ["pulled_within: '7x' is not a duration"]),
    ("bad grace", """
        include_locked = false
        grace = "forever"
        [default]
     """, 2, ["grace: 'forever' is not a duration"]),
    ("grace too long", """
        grace = "99999999w"
        [default]
     """, 1, ["grace: '99999999w' is longer than 36500d"]),
    ("keep negative", """
        [default]
        keep = -1
     """, 2, ["[default]: keep = -1", "a whole number >= 0"]),
    ("keep a fraction", """
        [default]
        keep = 1.5
     """, 2, ["keep = 1.5", "a whole number"]),
    ("keep quoted", """
        [default]
        keep = "3"
     """, 2, ['keep = "3"', "without quotes"]),
    ("keep a boolean", """
        [default]
        keep = true
     """, 2, ["keep = true", "a whole number"]),
    ("keep_untagged negative", """
        [default]
        untagged = true
        keep_untagged = -1
     """, 3, ["[default]: keep_untagged = -1", "a whole number >= 0", "most recently updated orphaned"]),
    ("keep_untagged without untagged", """
        [default]
        [[rules]]
        repositories = ["ci/*"]
        keep_untagged = 2
        untagged = false
     """, 4, ["rule 1: keep_untagged needs untagged = true in the same rule"]),
    ("untagged quoted", """
        [default]
        untagged = "yes"
     """, 2, ['untagged = "yes"', "true or false (without quotes)"]),
    ("include_locked a number", """
        include_locked = 1
        [default]
     """, 1, ["include_locked = 1", "true or false"]),
    ("description a number", """
        [default]
        description = 3
     """, 2, ["description = 3", "must be a string"]),
    ("keep_tags identical to delete_tags", """
        [default]
        [[rules]]
        repositories = "ci/*"
        delete_tags = "^pr-"
        keep_tags = ["^v", "^pr-"]
     """, 5, ["rule 1: keep_tags protects exactly what delete_tags selects ('^pr-')", "can delete no tag"]),
    ("keep_tags string identical to delete_tags", """
        [default]
        delete_tags = "^pr-"
        keep_tags = "^pr-"
     """, 3, ["[default]: keep_tags protects exactly what delete_tags selects"]),
    ("shadowed by the same pattern", """
        [default]
        [[rules]]
        repositories = ["apps/*", "base/alpine"]
        keep = 3
        [[rules]]
        repositories = ["base/alpine"]
        keep = 1
     """, 6, ["rule 2 (base/alpine) can never apply", "rule 1 (apps/*, base/alpine) comes first",
              "first match wins"]),
    ("shadowed by an earlier *", """
        [default]
        [[rules]]
        repositories = "*"
        untagged = true
        [[rules]]
        repositories = ["ci/*", "apps/web"]
        keep = 1
     """, 6, ["rule 2 (ci/*, apps/web) can never apply", "rule 1 (*) comes first", "'ci/*' by rule 1's '*'"]),
    ("shadowed by a wider glob", """
        [default]
        [[rules]]
        repositories = "apps/*"
        [[rules]]
        repositories = ["apps/web", "apps/web-*"]
     """, 5, ["rule 2 (apps/web, apps/web-*) can never apply", "'apps/web' by rule 1's 'apps/*'"]),
    ("shadowed by two earlier rules together", """
        [default]
        [[rules]]
        repositories = "apps/*"
        [[rules]]
        repositories = "ci/*"
        [[rules]]
        repositories = ["ci/build", "apps/web"]
     """, 7, ["rule 3 (ci/build, apps/web) can never apply", "rule 1 (apps/*) and rule 2 (ci/*) come first"]),
    ("outside the top-level repositories", """
        repositories = ["apps/*", "base/alpine"]
        [default]
        [[rules]]
        repositories = ["ci/*", "tools/cli"]
     """, 4, ["rule 1 (ci/*, tools/cli) can never apply", "top-level repositories (apps/*, base/alpine)"]),
    ("a rule table with a quoted header", """
        [default]
        [["rules"]]
        repositories = "a"
        keep = -2
     """, 4, ["rule 1: keep = -2"]),
]


@pytest.mark.parametrize("text, line, fragments", [e[1:] for e in ERRORS], ids=[e[0] for e in ERRORS])
def test_errors_name_the_file_and_line(tmp_path: Path, text: str, line: int, fragments: list[str]) -> None:
    path, message = load_error(tmp_path, text)
    assert message.startswith(f"{path}:{line}: "), message
    for fragment in fragments:
        assert fragment in message, (fragment, message)


def test_the_line_is_the_key_not_a_comment_or_another_table(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, """
        # keep = -1 in a comment is not the key
        [default]
        keep = 2
        [[rules]]
        repositories = "a"
        # keep = -1
        keep = 1
        [[rules]]
        repositories = "b"
        keep = -1
    """)
    assert message.startswith(f"{path}:10: rule 2: keep = -1"), message


def test_a_missing_default_names_the_file(tmp_path: Path) -> None:
    path, message = load_error(tmp_path, """
        [[rules]]
        repositories = "a"
    """)
    assert message.startswith(f"{path}: a [default] table is required"), message
    assert "empty [default] deletes only garbage" in message


@pytest.mark.parametrize(
    "text, line",
    [("[default]\nkeep = \n", 2), ("grace = '1h'\ngrace = '2h'\n[default]\n", 2), ("[default\n", 1),
     ("[default]\n[default]\n", 2)],
)
def test_invalid_toml_gives_tomllibs_message_with_the_line(tmp_path: Path, text: str, line: int) -> None:
    path = write(tmp_path, text)
    with pytest.raises(PolicyError) as caught:
        load(path)
    message = str(caught.value)
    assert message.startswith(f"{path}:{line}: not valid TOML: "), message
    assert f"(at line {line}, column" in message


def test_a_missing_policy_file_is_named(tmp_path: Path) -> None:
    path = str(tmp_path / "nope.toml")
    with pytest.raises(PolicyError, match=re.escape(f"{path}: cannot read the policy file: No such file")):
        load(path)


@pytest.mark.parametrize(
    "rules",
    [
        [("apps/web",), ("apps/*",)],  # the specific one first: both apply
        [("apps/*",), ("ci/*",)],
        [("apps/web-*",), ("apps/*",)],
        [("a*",), ("b", "a/x")],  # b is not claimed
        [("apps/[ab]*",), ("apps/c*",)],
        [("apps/?",), ("apps/web",)],
    ],
)
def test_rules_that_only_overlap_are_not_shadowed(tmp_path: Path, rules: list[tuple[str, ...]]) -> None:
    text = "[default]\n" + "".join(f"[[rules]]\nrepositories = {json.dumps(list(r))}\n" for r in rules)
    policy = load(write(tmp_path, text))
    assert [r.repositories for r in policy.rules] == rules


def test_rules_inside_the_top_level_repositories_are_accepted(tmp_path: Path) -> None:
    policy = load(write(tmp_path, """
        repositories = ["apps/*", "ci-*"]
        [default]
        [[rules]]
        repositories = ["apps/web", "ci-build", "other/x"]
        [[rules]]
        repositories = ["*"]
    """))
    assert len(policy.rules) == 2


# --- flags, and flags on top of a file ---------------------------------------------------------


def test_flags_make_one_default_rule() -> None:
    policy = from_flags(untagged=True, older_than="30d", keep=5, delete_tags="^ci-", keep_tags=("^v", "^latest$"),
                        grace="0s", include_locked=True, repositories=("apps/*",))
    assert policy.rules == ()
    assert policy.default == Rule(name="command line", untagged=True, older_than=timedelta(days=30), keep=5,
                                  delete_tags="^ci-", keep_tags=("^v", "^latest$"))
    assert policy.grace == timedelta(0) and policy.include_locked and policy.scope == ("apps/*",)
    assert policy.rule_for("apps/web") is policy.default and policy.rule_for("base/alpine") is None
    assert from_flags().grace == DEFAULT_GRACE == timedelta(hours=24)


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"older_than": "30"}, "--older-than: '30' is not a duration"),
        ({"pulled_within": "1 week"}, "--pulled-within: '1 week' is not a duration"),
        ({"grace": "soon"}, "--grace: 'soon' is not a duration"),
        ({"delete_tags": "*"}, "--delete-tags: '*' is not a regular expression"),
        ({"keep_tags": ("^v", "[")}, "--keep-tags: '[' is not a regular expression"),
        ({"keep": -1}, "--keep must be >= 0"),
        ({"untagged": True, "keep_untagged": -1}, "--keep-untagged must be >= 0"),
        ({"keep_untagged": 1}, "--keep-untagged needs --untagged"),
        ({"delete_tags": "^pr-", "keep_tags": ("^v", "^pr-")}, "--keep-tags '^pr-' protects exactly the tags"),
    ],
)
def test_bad_flags_name_the_flag(flags: dict, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        from_flags(**flags)
    assert str(caught.value).startswith(message), str(caught.value)


@pytest.mark.parametrize(
    "flags, named",
    [
        ({"untagged": True}, "--untagged"),
        ({"older_than": "30d"}, "--older-than"),
        ({"keep": 5}, "--keep"),
        ({"keep": 0}, "--keep"),  # 0 is falsy: it used to be dropped silently
        ({"delete_tags": "^pr-"}, "--delete-tags"),
        ({"untagged": True, "keep": 2}, "--untagged, --keep"),
        ({"untagged": True, "keep_untagged": 0}, "--untagged, --keep-untagged"),
    ],
)
def test_rule_flags_with_a_policy_file_are_an_error(tmp_path: Path, flags: dict, named: str) -> None:
    path = write(tmp_path, "[default]\n")
    with pytest.raises(PolicyError) as caught:
        resolve(path, **flags)
    message = str(caught.value)
    assert message.startswith(f"{named} cannot be combined with --policy {path}"), message
    assert "[default] or a [[rules]] table" in message


def test_protections_from_flags_apply_to_every_rule_of_a_file(tmp_path: Path) -> None:
    path = write(tmp_path, """
        [default]
        keep_tags = ["^stable$"]
        [[rules]]
        repositories = "ci/*"
        keep = 2
        pulled_within = "30d"
        [[rules]]
        repositories = "apps/*"
        pulled_within = "1d"
    """)
    policy = resolve(path, keep_tags=("^v[0-9]",), pulled_within="7d")
    ci, apps = policy.rules
    assert policy.default.keep_tags == ("^stable$", "^v[0-9]")
    assert ci.keep_tags == apps.keep_tags == ("^v[0-9]",)
    # The longer window protects more: a flag never shortens the file's.
    assert ci.pulled_within == timedelta(days=30)
    assert apps.pulled_within == timedelta(days=7) and policy.default.pulled_within == timedelta(days=7)
    assert ci.keep == 2  # the rules themselves are the file's
    assert policy.rule_for("ci/x") is ci and policy.rule_for("other") is policy.default


def test_settings_from_flags_override_the_files(tmp_path: Path) -> None:
    path = write(tmp_path, """
        grace = "3d"
        repositories = ["apps/*", "ci/*"]
        [default]
        untagged = true
        [[rules]]
        repositories = "ci/*"
        keep = 1
    """)
    unchanged = resolve(path)
    assert unchanged == load(path)
    assert unchanged.grace == timedelta(days=3) and not unchanged.include_locked
    assert unchanged.rule_for("base/alpine") is None and unchanged.rule_for("apps/web") is unchanged.default
    policy = resolve(path, grace="0s", include_locked=True, repositories=("apps/web", "base/*"))
    assert policy.grace == timedelta(0) and policy.include_locked
    assert policy.scope == ("apps/web", "base/*")
    assert policy.rule_for("apps/web") is policy.default and policy.rule_for("base/alpine") is policy.default
    assert policy.rule_for("apps/api") is None and policy.rule_for("ci/x") is None
    assert policy.rules == unchanged.rules and policy.source == path


@pytest.mark.parametrize(
    "flags, message",
    [
        ({"grace": "1x"}, "--grace: '1x' is not a duration"),
        ({"keep_tags": ("(",)}, "--keep-tags: '(' is not a regular expression"),
        ({"pulled_within": "x"}, "--pulled-within: 'x' is not a duration"),
    ],
)
def test_bad_flags_on_top_of_a_file_name_the_flag(tmp_path: Path, flags: dict, message: str) -> None:
    with pytest.raises(PolicyError) as caught:
        resolve(write(tmp_path, "[default]\n"), **flags)
    assert str(caught.value).startswith(message)


def test_resolve_without_a_file_is_the_flags_policy() -> None:
    assert resolve(None, untagged=True, keep=0, grace="1h") == from_flags(untagged=True, keep=0, grace="1h")


# --- the policy a plan records ------------------------------------------------------------------


def _policies(tmp_path: Path) -> list[Policy]:
    return [
        load(write(tmp_path, docstring_example(), "doc.toml")),
        load(write(tmp_path, docs_example(), "readme.toml")),
        resolve(write(tmp_path, docs_example(), "readme2.toml"), keep_tags=("^keep",), pulled_within="1d12h",
                grace="90s", include_locked=True, repositories=("apps/*",)),
        from_flags(untagged=True, older_than="1d12h", keep=0, delete_tags="^pr-", keep_tags=("^v",), grace="0s"),
        from_flags(untagged=True, keep_untagged=3),
        from_flags(),
    ]


def test_to_json_round_trips_the_resolved_policy(tmp_path: Path) -> None:
    for policy in _policies(tmp_path):
        doc = json.loads(json.dumps(policy.to_json()))  # plain JSON, as a plan stores it
        assert from_json(doc) == policy
        assert from_json(doc).to_json() == doc


def test_to_json_shows_the_resolved_values(tmp_path: Path) -> None:
    doc = _policies(tmp_path)[2].to_json()
    assert doc["grace"] == "90s" and doc["include_locked"] is True and doc["repositories"] == ["apps/*"]
    assert doc["source"].endswith("readme2.toml")
    assert [r["name"] for r in doc["rules"]] == ["rule 1 (ci/*, pr-*)", "rule 2 (apps/*)"]
    ci = doc["rules"][0]
    assert ci["older_than"] == "2w" and ci["keep"] == 3 and ci["untagged"] is True and ci["keep_untagged"] == 5
    assert ci["keep_tags"] == ["^keep"] and ci["pulled_within"] == "36h"
    assert ci["description"].startswith("CI images")
    assert doc["rules"][1]["keep_tags"] == ["^v[0-9]", "^latest$", "^keep"]
    assert doc["default"] == {"name": "default", "untagged": True, "keep_untagged": None, "older_than": None,
                              "keep": None,
                              "delete_tags": None, "keep_tags": ["^keep"], "pulled_within": "36h", "ago": None}
    flags = _policies(tmp_path)[3].to_json()
    assert flags["source"] == "command line" and flags["grace"] == "0s" and flags["rules"] == []
    assert flags["default"]["keep"] == 0 and flags["default"]["older_than"] == "36h"
