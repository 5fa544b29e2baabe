"""The crawl journal: what an unfinished crawl has durably done, so `crawl --resume` can go on.

Inside the crawl's staging directory:

    resume.json            written at the start: regstat version, source, options, when
                           the crawl started and was resumed (rewritten atomically)
    journal/NNNNNNNN.json  checkpoints, each written atomically (temporary file, fsync, rename)

A checkpoint names the staging parts written since the one before (flushed and fsynced
first), and what the jobs finished since then returned besides rows: their ids, the jobs they
queued (encoded below), manifest digests to fetch and fetched, repositories and errors. On
resume, a part no checkpoint names was written after the last one and is deleted; a job no
checkpoint marks done runs again, so nothing is lost and nothing is written twice.

Jobs are encoded as JSON, never pickled: the source's live objects (a storage, an HTTP
client holding credentials) are recorded by their attribute name on the source and taken from
the newly opened source; state a repository's jobs share is rebuilt from the revisions its
finished jobs wrote (`sources.base.SharedJobState`).
"""

from __future__ import annotations

import dataclasses
import importlib
import json
import os
import secrets
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, Self

from .. import __version__
from ..errors import CrawlError, NotResumable, SnapshotError
from ..snapshot import iso
from ..sources.base import CrawlOptions, Job, Source, add_unselected

FORMAT = "regstat.crawl-journal/1"
HEADER = "resume.json"
DIRECTORY = "journal"
_PLAIN = (str, int, float, bool, type(None))
# A frozenset this large is written once per checkpoint however many jobs carry it (an ECR
# repository's listing goes to each of its batches: writing it per job would be quadratic).
INTERN_MIN = 64


def options_fingerprint(options: CrawlOptions) -> dict[str, Any]:
    """The options that change what a crawl sees (not how fast or how it connects)."""
    return {
        "repositories": list(options.repositories),
        "shard": str(options.shard) if options.shard else None,
        "verify_links": options.verify_links,
        "username": options.username,
        "azure_credential": options.azure_credential,
        "registry_id": options.registry_id,
        "name": options.name,
        # What a resumed crawl copies its reused manifests from must be what it reused.
        "previous": os.path.abspath(options.previous) if options.previous else None,
    }


# --- encoding jobs ----------------------------------------------------------------------------


def _qualified(obj: Any) -> str:
    return f"{obj.__module__}:{obj.__qualname__}"


def _lookup(name: str) -> Any:
    """A regstat function or class by `module:qualname`; nothing outside regstat."""
    module, _, qualname = name.partition(":")
    if not module.startswith("regstat.") or not qualname:
        raise SnapshotError(f"the crawl journal names {name!r}, which is not part of regstat")
    target: Any = importlib.import_module(module)
    for part in qualname.split("."):
        target = getattr(target, part)
    return target


class SharedState(Protocol):
    """State a repository's jobs share (a source's RepositoryState): the journal records its
    `resume_key`, and a resumed crawl rebuilds it with `resumed`."""

    def resume_key(self) -> str: ...

    @classmethod
    def resumed(cls, key: str, revisions: Mapping[str, set[str]]) -> Self: ...


class JobCodec:
    """Encodes jobs as JSON and back, given the source they belong to."""

    def __init__(
        self,
        source: Source,
        shared: Callable[[type[SharedState], str], SharedState] | None = None,
        values: Mapping[str, Any] | None = None,
    ) -> None:
        live = {k: v for k, v in vars(source).items() if not isinstance(v, (*_PLAIN, tuple, list))}
        self._by_id = {id(v): k for k, v in live.items()}
        # Jobs that come back from worker processes hold copies of the source's objects (a
        # storage): those are known by their type. Not dataclasses: jobs carry those as values.
        self._by_type = {type(v): k for k, v in live.items() if not dataclasses.is_dataclass(v)}
        self._by_name = vars(source)
        self._shared = shared
        self._values = dict(values or {})  # interned values, encoded; decoded on first use
        self._decoded: dict[str, Any] = {}
        self._new_values: dict[str, Any] = {}
        self._interned: dict[int, tuple[str, Any]] = {}  # id -> (key, value): pinned, so ids stay unique
        self._prefix, self._count = secrets.token_hex(4), 0

    def take_values(self) -> dict[str, Any]:
        """The interned values the jobs encoded since the last call refer to."""
        new, self._new_values, self._interned = self._new_values, {}, {}
        return new

    def encode(self, job: Job) -> dict[str, Any]:
        function, args = job
        if "<" in function.__qualname__ or not function.__module__.startswith("regstat."):
            raise NotResumable(f"the job {function.__qualname__} is not a regstat function the journal can name")
        return {"function": _qualified(function), "args": [self._value(a) for a in args]}

    def _value(self, value: Any) -> Any:
        if isinstance(value, _PLAIN):
            return value
        if isinstance(value, list):
            return [self._value(v) for v in value]
        if isinstance(value, tuple):
            return {"tuple": [self._value(v) for v in value]}
        if isinstance(value, frozenset):
            if len(value) < INTERN_MIN:
                return {"frozenset": sorted(self._value(v) for v in value)}
            if id(value) not in self._interned:
                key = f"{self._prefix}-{self._count}"
                self._count += 1
                self._new_values[key] = {"frozenset": sorted(self._value(v) for v in value)}
                self._interned[id(value)] = (key, value)
            return {"value": self._interned[id(value)][0]}
        name = self._by_id.get(id(value)) or self._by_type.get(type(value))
        if name is not None:
            return {"resource": name}
        if callable(getattr(value, "resume_key", None)):
            return {"shared": _qualified(type(value)), "key": value.resume_key()}
        if dataclasses.is_dataclass(value) and not isinstance(value, type):
            fields = {f.name: self._value(getattr(value, f.name)) for f in dataclasses.fields(value)}
            return {"dataclass": _qualified(type(value)), "fields": fields}
        raise NotResumable(f"a job argument of type {type(value).__name__} cannot be recorded")

    def decode(self, form: Mapping[str, Any]) -> Job:
        function = _lookup(form["function"])
        return function, tuple(self._decode_value(a) for a in form["args"])

    def _decode_value(self, form: Any) -> Any:
        if isinstance(form, list):
            return [self._decode_value(v) for v in form]
        if not isinstance(form, dict):
            return form
        if "tuple" in form:
            return tuple(self._decode_value(v) for v in form["tuple"])
        if "frozenset" in form:
            return frozenset(self._decode_value(v) for v in form["frozenset"])
        if "value" in form:
            key = form["value"]
            if key not in self._decoded:
                self._decoded[key] = self._decode_value(self._values[key])
            return self._decoded[key]
        if "resource" in form:
            return self._by_name[form["resource"]]
        if "shared" in form:
            if self._shared is None:
                raise SnapshotError("the crawl journal names shared state this crawl cannot rebuild")
            return self._shared(_lookup(form["shared"]), form["key"])
        cls = _lookup(form["dataclass"])
        return cls(**{k: self._decode_value(v) for k, v in form["fields"].items()})


# --- writing ----------------------------------------------------------------------------------


def write_json_durably(path: Path, document: Any) -> None:
    """Replace `path` atomically, and make the new content survive a power cut."""
    tmp = path.with_name(path.name + ".tmp")
    # json.dumps, not json.dump: dump streams through the pure-Python encoder, several times
    # slower on a checkpoint's thousands of digests and jobs.
    text = json.dumps(document, separators=(",", ":"))
    with open(tmp, "w") as f:
        f.write(text)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    fsync_directory(path.parent)


def fsync_file(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def fsync_directory(path: Path) -> None:
    try:
        fsync_file(path)
    except OSError:  # some file systems cannot fsync a directory; the rename is still atomic
        pass


@dataclass
class Delta:
    """What finished jobs returned since the last checkpoint, besides rows."""

    done: list[int] = field(default_factory=list)
    jobs: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    wanted: list[str] = field(default_factory=list)  # manifest digests to fetch
    written: list[str] = field(default_factory=list)  # manifest digests whose facts are staged
    repositories: list[str] = field(default_factory=list)
    errors: list[CrawlError] = field(default_factory=list)
    unselected: int | None = 0  # repositories listed and left out by --repository (None: unknown)

    def to_json(self) -> dict[str, Any]:
        return {
            "done": self.done,
            "jobs": self.jobs,
            "wanted": self.wanted,
            "written": self.written,
            "repositories": self.repositories,
            "errors": [e.to_json() for e in self.errors],
            "unselected": self.unselected,
        }


class JournalWriter:
    """Appends checkpoints to a crawl's journal."""

    def __init__(self, stage: Path, number: int = 0) -> None:
        self.directory = stage / DIRECTORY
        self.directory.mkdir(parents=True, exist_ok=True)
        self.number = number
        self.broken: str | None = None  # why the crawl cannot be resumed, once it cannot

    def checkpoint(
        self, delta: Delta, parts: dict[str, list[str]], values: dict[str, Any], crawled: bool = False
    ) -> None:
        if self.broken:
            return
        document = {"checkpoint": self.number, "parts": parts, "crawled": crawled, "values": values}
        document.update(delta.to_json())
        write_json_durably(self.directory / f"{self.number:08d}.json", document)
        self.number += 1

    def give_up(self, reason: str) -> None:
        """Record that this crawl cannot be resumed, and journal nothing more."""
        if not self.broken:
            write_json_durably(self.directory / f"{self.number:08d}.json",
                               {"checkpoint": self.number, "broken": reason})
            self.broken = reason


def write_header(stage: Path, source: Source, options: CrawlOptions, started_at: str) -> dict[str, Any]:
    header = {
        "format": FORMAT,
        "regstat_version": __version__,
        "source": source.describe().to_json(),
        "options": options_fingerprint(options),
        "started_at": started_at,
        "resumed_at": [],
    }
    write_json_durably(stage / HEADER, header)
    return header


# --- reading ----------------------------------------------------------------------------------


@dataclass
class JournalState:
    """An interrupted crawl, as its journal tells it."""

    header: dict[str, Any]
    checkpoints: int = 0
    parts: dict[str, set[str]] = field(default_factory=dict)
    jobs: dict[int, dict[str, Any]] = field(default_factory=dict)  # every job queued, by id
    done: set[int] = field(default_factory=set)
    wanted: list[str] = field(default_factory=list)
    written: set[str] = field(default_factory=set)
    repositories: set[str] = field(default_factory=set)
    errors: list[CrawlError] = field(default_factory=list)
    unselected: int | None = 0
    values: dict[str, Any] = field(default_factory=dict)  # interned job arguments
    crawled: bool = False

    @property
    def pending(self) -> list[int]:
        return sorted(set(self.jobs) - self.done)

    def add(self, document: dict[str, Any]) -> None:
        if "broken" in document:
            raise SnapshotError(f"the interrupted crawl cannot be resumed: {document['broken']}; {START_AGAIN}")
        for table, names in document["parts"].items():
            self.parts.setdefault(table, set()).update(names)
        self.jobs.update((int(i), job) for i, job in document["jobs"])
        self.values.update(document.get("values", {}))
        self.done.update(document["done"])
        self.wanted += document["wanted"]
        self.written.update(document["written"])
        self.repositories.update(document["repositories"])
        self.errors += [CrawlError(**e) for e in document["errors"]]
        self.unselected = add_unselected(self.unselected, document["unselected"])
        self.crawled = self.crawled or document["crawled"]
        self.checkpoints += 1


START_AGAIN = "run the same command without --resume to start a new crawl (it removes the unfinished one)"


def read_journal(stage: Path, source: Source, options: CrawlOptions) -> JournalState:
    """The journal of an interrupted crawl, checked against this command's source and options."""
    try:
        header = json.loads((stage / HEADER).read_text())
    except FileNotFoundError:
        raise SnapshotError(
            f"the interrupted crawl left no journal (it stopped before its first job, or an older "
            f"regstat wrote it); {START_AGAIN}"
        ) from None
    except (OSError, ValueError) as e:
        raise SnapshotError(f"the interrupted crawl's journal is unreadable ({e}); {START_AGAIN}") from None
    _check_header(header, source, options)
    state = JournalState(header)
    number = 0
    while (path := stage / DIRECTORY / f"{number:08d}.json").exists():
        try:
            state.add(json.loads(path.read_text()))
        except (OSError, ValueError, KeyError, TypeError) as e:
            raise SnapshotError(f"{path}: damaged crawl journal ({e}); {START_AGAIN}") from None
        number += 1
    if number == 0:
        raise SnapshotError(f"the interrupted crawl recorded no checkpoint; {START_AGAIN}")
    return state


def recorded_previous(stage: Path) -> str | None:
    """The --previous the interrupted crawl staged under `stage` was started with (None: it
    had none, or left no readable journal, which read_journal then reports)."""
    try:
        previous = json.loads((stage / HEADER).read_text()).get("options", {}).get("previous")
    except (OSError, ValueError, AttributeError):
        return None
    return previous if isinstance(previous, str) else None


def _check_header(header: dict[str, Any], source: Source, options: CrawlOptions) -> None:
    if header.get("format") != FORMAT or header.get("regstat_version") != __version__:
        raise SnapshotError(
            f"the interrupted crawl was written by regstat {header.get('regstat_version')} "
            f"({header.get('format')}), not {__version__}; {START_AGAIN}"
        )
    differences = []
    if header.get("source") != source.describe().to_json():
        differences.append(f"source {_show(header.get('source'))}, not {_show(source.describe().to_json())}")
    now = options_fingerprint(options)
    for key, value in (header.get("options") or {}).items():
        if now.get(key) != value:
            differences.append(f"{key} {value!r}, not {now.get(key)!r}")
    if differences:
        raise SnapshotError(
            "--resume needs the SOURCE and options of the interrupted crawl; it had "
            + "; ".join(differences)
            + f". Repeat its command with --resume, or {START_AGAIN}"
        )


def _show(description: Any) -> str:
    if isinstance(description, dict):
        return str(description.get("location"))
    return repr(description)


def mark_resumed(stage: Path, header: dict[str, Any], moment: Any) -> dict[str, Any]:
    """Record in the header that the crawl was resumed now."""
    header = {**header, "resumed_at": [*header.get("resumed_at", []), iso(moment)]}
    write_json_durably(stage / HEADER, header)
    return header
