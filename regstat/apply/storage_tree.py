"""The Target for a distribution registry's storage tree, on disk or in S3: it removes exactly
what distribution's own tag deletion and garbage collector remove (docs/apply.md).

- a tag: its directory `repositories/<name>/_manifests/tags/<tag>/` (distribution's Untag);
- a manifest: its revision `repositories/<name>/_manifests/revisions/<alg>/<hex>/` and its
  entries `tags/*/index/<alg>/<hex>/` under every tag of the repository (the GC's RemoveManifest);
- a blob: `blobs/<alg>/<xx>/<hex>/` (the GC's sweep; `_layers` links stay, as the GC leaves them);
- an upload: `repositories/<name>/_uploads/<uuid>/`.

What it deletes it lists first: the bytes freed are the sizes of the files that went, and an
action whose directory holds no file is GONE.
"""

from __future__ import annotations

from collections.abc import Sequence

from ..crawl import CrawlOptions
from ..snapshot.info import SourceInfo
from ..sources.storage_tree import open_storage
from ..sources.storage_tree.storage import Entry, Storage
from .target import DELETED, FAILED, GONE, SKIPPED, Action, Live, Outcome, Planned

_BAD = ("", ".", "..")


class StorageTreeTarget:
    deletes_blobs = True

    def __init__(self, storage: Storage) -> None:
        self.storage = storage

    def live_tag(self, repository: str, tag: str) -> str | None:
        path = f"repositories/{repository}/_manifests/tags/{tag}/current/link"
        content = self.storage.read_many([path], 256)[path]
        if isinstance(content, FileNotFoundError):
            return None
        if isinstance(content, OSError):
            raise content
        return content.decode("ascii", "replace").strip() or None

    def refusal(self, action: Action, planned: Planned, live: Live) -> Outcome | None:
        if _directory(action) is None:
            return Outcome(SKIPPED, "bad_name", f"a name that is no path in the tree: {action}")
        return None

    def delete(self, actions: Sequence[Action]) -> list[Outcome]:
        found: list[list[Entry]] = []
        index_entries = self._tag_index_entries(actions)
        for action in actions:
            directory = _directory(action)
            assert directory is not None  # refusal() skipped the others
            entries = list(self.storage.walk(directory))
            if action.kind == "delete_manifest":
                entries += index_entries.get((action.repository, action.digest), [])
            found.append(entries)
        paths = [e.path for entries in found for e in entries]
        directories = [d for a in actions if (d := _directory(a))]
        directories += [e.path.rsplit("/", 1)[0] for a in actions if a.kind == "delete_manifest"
                        for e in index_entries.get((a.repository, a.digest), [])]
        failed = self.storage.remove(paths, directories) if paths else {}
        outcomes = []
        for entries in found:
            if not entries:
                outcomes.append(Outcome(GONE))
                continue
            errors = [f"{e.path}: {failed[e.path]}" for e in entries if e.path in failed]
            if errors:
                outcomes.append(Outcome(FAILED, "storage_error", "; ".join(errors[:3])))
            else:
                outcomes.append(Outcome(DELETED, bytes_freed=sum(e.size for e in entries)))
        return outcomes

    def _tag_index_entries(self, actions: Sequence[Action]) -> dict[tuple[str | None, str | None], list[Entry]]:
        """For the manifests among `actions`: the files of their entries in any tag's index,
        listing each repository's tags once."""
        wanted = {(a.repository, a.digest) for a in actions if a.kind == "delete_manifest"}
        found: dict[tuple[str | None, str | None], list[Entry]] = {}
        for repository in sorted({r for r, _ in wanted if r is not None}):
            for entry in self.storage.walk(f"repositories/{repository}/_manifests/tags"):
                parts = entry.path.split("/")
                # .../_manifests/tags/<tag>/index/<alg>/<hex>/link
                if len(parts) >= 5 and parts[-4] == "index" and parts[-1] == "link":
                    key = (repository, f"{parts[-3]}:{parts[-2]}")
                    if key in wanted:
                        found.setdefault(key, []).append(entry)
        return found

    def close(self) -> None:
        pass


def _directory(action: Action) -> str | None:
    """The directory `action` removes, relative to docker/registry/v2; None when a name in it
    could step outside its place (the tree cannot hold such a name: refuse, never guess)."""
    digest = action.digest or ""
    algorithm, _, hex_part = digest.partition(":")
    if action.kind == "delete_blob":
        names = [algorithm, hex_part[:2], hex_part]
        path = "blobs/" + "/".join(names)
    else:
        repository = action.repository or ""
        names = repository.split("/")
        if action.kind == "delete_tag":
            names.append(action.tag or "")
            path = f"repositories/{repository}/_manifests/tags/{action.tag}"
        elif action.kind == "delete_manifest":
            names += [algorithm, hex_part]
            path = f"repositories/{repository}/_manifests/revisions/{algorithm}/{hex_part}"
        else:
            names.append(action.uuid or "")
            path = f"repositories/{repository}/_uploads/{action.uuid}"
    if any(name in _BAD or "/" in name for name in names):
        return None
    return path


def open_storage_tree(source: SourceInfo, options: CrawlOptions) -> StorageTreeTarget:
    """The tree `source` names (a directory, or s3://bucket[/prefix] at its endpoint)."""
    location = source.location or ""
    return StorageTreeTarget(open_storage(location, endpoint_url=options.endpoint_url or source.endpoint_url,
                                          concurrency=options.concurrency))
