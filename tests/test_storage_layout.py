"""Classifying paths of the distribution storage layout, and checking link files."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from regstat.sources.storage_tree.storage import Entry
from regstat.sources.storage_tree.layout import (
    Link,
    RepositoryListing,
    add_repository_entry,
    check_link,
    check_link_size,
    classify_blob,
    is_tag_history,
    valid_repository_name,
)

HEX = "ab" + "c" * 62
DIGEST = f"sha256:{HEX}"
NOW = 1_767_225_600_000_000  # 2026-01-01, in microseconds


def entry(path: str, size: int = 71, symlink: bool = False) -> Entry:
    return Entry(path, size, NOW, symlink)


def test_blob_paths() -> None:
    assert classify_blob(entry(f"blobs/sha256/ab/{HEX}/data", 5)).digest == DIGEST
    assert classify_blob(entry(f"blobs/sha256/cd/{HEX}/data")) is None  # wrong shard
    assert classify_blob(entry(f"blobs/sha256/ab/{HEX}/other")) is None
    assert classify_blob(entry(f"blobs/sha256/ab/{HEX}/data", symlink=True)) is None


def test_repository_paths_are_filed_under_nested_names() -> None:
    listings: dict[str, RepositoryListing] = {}
    for path in [
        f"repositories/a/b/c/_manifests/revisions/sha256/{HEX}/link",
        "repositories/a/b/c/_manifests/tags/v1/current/link",
        f"repositories/a/b/c/_manifests/tags/v1/index/sha256/{HEX}/link",
        f"repositories/a/b/c/_layers/sha256/{HEX}/link",
        "repositories/a/b/c/_uploads/u-1/startedat",
        "repositories/a/b/c/_uploads/u-1/data",
        "repositories/a/b/c/_uploads/u-1/hashstates/sha256/0",
    ]:
        assert add_repository_entry(listings, entry(path)) is None
    listing = listings["a/b/c"]
    assert [link.expected for link in listing.revisions] == [DIGEST]
    assert list(listing.tags) == ["v1"]
    assert [link.expected for link in listing.layers] == [DIGEST]
    assert listing.uploads["u-1"].started_path == "repositories/a/b/c/_uploads/u-1/startedat"
    assert listing.has_manifests and not listing.problems


def test_paths_outside_the_layout_are_problems() -> None:
    listings: dict[str, RepositoryListing] = {}
    assert add_repository_entry(listings, entry("repositories/a/README")) is not None
    add_repository_entry(listings, entry("repositories/a/_manifests/revisions/link"))
    add_repository_entry(listings, entry("repositories/a/_junk/file"))
    add_repository_entry(listings, entry(f"repositories/a/_layers/sha256/{HEX}/link", symlink=True))
    kinds = [kind for _, kind, _ in listings["a"].problems]
    assert kinds == ["outside_layout", "outside_layout", "symlink"]


def test_check_link() -> None:
    good = Link("p", 71, NOW, DIGEST)
    assert check_link(good, DIGEST.encode()) == (DIGEST, None, None)
    assert check_link(good, b"")[1] == "bad_link"
    assert check_link(good, DIGEST.encode()[:40])[1] == "bad_link"
    assert check_link(good, b"\xff\xfe")[1] == "bad_link"
    assert check_link(good, ("sha256:" + "d" * 64).encode())[1] == "link_mismatch"
    assert check_link(Link("p", 71, NOW), DIGEST.encode())[0] == DIGEST


def test_check_link_size() -> None:
    assert check_link_size(Link("p", 71, NOW, DIGEST)) == (DIGEST, None, None)
    assert check_link_size(Link("p", 0, NOW, DIGEST))[1] == "bad_link"
    assert check_link_size(Link("p", 40, NOW, DIGEST))[1] == "bad_link"
    not_a_digest = "sha256:" + "z" * 64  # the path's own name: right length, no digest
    assert check_link_size(Link("p", len(not_a_digest), NOW, not_a_digest))[1] == "bad_link"


def test_tag_history_is_pruned() -> None:
    assert is_tag_history("repositories/a/b/_manifests/tags/v1/index")
    assert not is_tag_history("repositories/a/b/_manifests/tags/index")
    assert not is_tag_history("repositories/a/_manifests/revisions/index")


def test_repository_names() -> None:
    assert valid_repository_name("apps/web-2/x_y.z")
    for bad in ["..", "a/../b", "A", "a%2Fb", "caf\u00e9", "a\x00b", "a//b", "-a"]:
        assert not valid_repository_name(bad), bad


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=200), st.one_of(st.none(), st.just(DIGEST)))
def test_fuzz_link_files(content: bytes, expected: str | None) -> None:
    digest, kind, message = check_link(Link("p", 71, NOW, expected), content)
    if digest is None:
        assert kind in ("bad_link", "link_mismatch") and message
    else:
        assert content == digest.encode() and (expected is None or digest == expected)
