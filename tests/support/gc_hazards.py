"""A real docker-registry (distribution 2.8.2) filled with what makes GC hazardous, and
`regstat plan-gc` run against the registry's own GC on it.

A registry is filled with the shapes that make garbage collection hazardous (:func:`fill`):

- ``multi/cli``: a multi-arch OCI index tagged ``v1`` whose children were pushed by digest
  (untagged, but live), and an index pushed by digest only, with its own children (garbage);
- ``signed/app``: an image tagged ``v1`` and its signature (an OCI 1.1 artifact whose
  ``subject`` is the image) pushed by digest only: untagged, but live. Distribution 2.8.2
  stores ``subject`` and ``artifactType`` as they are and has no referrers API;
- ``web/app``: ``latest`` overwritten (the old image, and the old image's own signature,
  left untagged), an image pushed by digest only, a blob uploaded and never referenced, and
  an upload left in progress;
- ``mount/src`` and ``mount/dst``: layers shared across repositories by cross-repository
  mounts (``POST /v2/<name>/blobs/uploads/?mount=<digest>&from=<repo>``): a layer kept for a
  tagged image in one repository and mounted into an untagged one in the other, and a layer
  whose every user, in both repositories, is garbage.

:class:`Hazards` records what was pushed and so what the storage holds, which manifests are
live (reached from a tag, through an index or a ``subject``) and what the registry's GC marks
(only tagged manifests and what they list: ``--delete-untagged`` ignores index children and
``subject``).

:func:`compare` crawls and plans with regstat and runs the registry's GC dry run on the
same registry; :func:`gc_damage` runs the GC for real on a copy. tests/test_plan_registry.py
asserts on them; ``benchmarks/compare_gc.py`` prints their numbers for docs/plan-gc.md.
"""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import sys
import tempfile
import urllib.parse
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from . import images
from .components import ComponentError, Registry, isolated_env
from .images import Image, Index
from .scenario import filler

REPO_ROOT = Path(__file__).resolve().parent.parent.parent
V2 = Path("docker") / "registry" / "v2"


# --- the hazardous registry ---------------------------------------------------------------------


@dataclass(frozen=True)
class Pushed:
    """One manifest in one repository: ``tagged`` (a current tag points at it: all that the
    registry's GC looks at) and ``live`` (reached from a tag through index children and
    ``subject``: what must survive)."""

    repository: str
    manifest: Image | Index
    tagged: bool
    live: bool
    role: str  # what it is in the scenario, for messages and the report

    @property
    def digest(self) -> str:
        return self.manifest.digest

    @property
    def key(self) -> tuple[str, str]:
        return (self.repository, self.digest)

    def references(self) -> dict[str, int]:
        """The blobs it lists, as the registry's GC marks them: config and layers of an image,
        child manifests of an index (``subject`` is not among them in 2.8.2)."""
        m = self.manifest
        if isinstance(m, Index):
            return {c.digest: c.size for c in m.children}
        return {d.digest: d.size for d in (m.config, *m.layers)}

    def blobs(self) -> dict[str, int]:
        """Its own manifest blob and every blob it lists."""
        return {self.digest: self.manifest.size, **self.references()}


@dataclass
class Hazards:
    """What :func:`fill` pushed, and so what the storage tree holds."""

    manifests: list[Pushed] = field(default_factory=list)
    blob_sizes: dict[str, int] = field(default_factory=dict)  # every blob stored
    tags: dict[tuple[str, str], str] = field(default_factory=dict)  # (repo, tag) -> digest
    uploads: dict[tuple[str, str], int] = field(default_factory=dict)  # (repo, uuid) -> bytes
    unreferenced: set[str] = field(default_factory=set)

    def add(self, repository: str, manifest: Image | Index, *, tagged: bool, live: bool, role: str) -> Pushed:
        pushed = Pushed(repository, manifest, tagged, live, role)
        self.manifests = [p for p in self.manifests if p.key != pushed.key] + [pushed]
        self.blob_sizes.update(pushed.blobs())
        if isinstance(manifest, Image):
            self.blob_sizes.update({d: len(b) for d, b in manifest.blobs.items()})
        return pushed

    def retag(self, repository: str, digest: str, tagged: bool, live: bool) -> None:
        self.manifests = [
            Pushed(p.repository, p.manifest, tagged, live, p.role) if p.key == (repository, digest) else p
            for p in self.manifests
        ]

    # -- what regstat must do

    def live_manifests(self) -> set[tuple[str, str]]:
        return {p.key for p in self.manifests if p.live}

    def garbage_manifests(self) -> set[tuple[str, str]]:
        return {p.key for p in self.manifests if not p.live}

    def live_blobs(self) -> set[str]:
        return {d for p in self.manifests if p.live for d in p.blobs()}

    def garbage_blobs(self) -> set[str]:
        return set(self.blob_sizes) - self.live_blobs()

    # -- what the registry's GC does with --delete-untagged

    def gc_manifests(self) -> set[tuple[str, str]]:
        return {p.key for p in self.manifests if not p.tagged}

    def gc_blobs(self) -> set[str]:
        marked = {d for p in self.manifests if p.tagged for d in (p.digest, *p.references())}
        return set(self.blob_sizes) - marked

    def size(self, digests: Iterable[str]) -> int:
        return sum(self.blob_sizes[d] for d in digests)

    def roles(self, keys: Iterable[tuple[str, str]]) -> list[str]:
        by_key = {p.key: p.role for p in self.manifests}
        return sorted(by_key[k] for k in keys)


def mount_blob(registry: Registry, repository: str, digest: str, source: str) -> None:
    """Cross-repository mount: link ``digest`` (stored, linked into ``source``) into
    ``repository`` without uploading it. 201 is a mount; 202 would be a fallback upload."""
    query = urllib.parse.urlencode({"mount": digest, "from": source})
    _, headers, _ = registry.request("POST", f"/v2/{repository}/blobs/uploads/?{query}", expect=(201,))
    if headers.get("docker-content-digest") != digest:
        raise ComponentError(f"mount of {digest} into {repository} answered {headers}")


def push_mounting(registry: Registry, repository: str, image: Image, mounts: dict[str, str],
                  reference: str | None = None) -> str:
    """Push ``image`` into ``repository``, mounting the blobs in ``mounts`` (digest -> source
    repository) instead of uploading them."""
    for digest, data in image.blobs.items():
        if digest in mounts:
            mount_blob(registry, repository, digest, mounts[digest])
        else:
            registry.put_blob(repository, data)
    return registry.put_manifest(repository, reference or image.digest, image.manifest, image.media_type)


def _layer(name: str, size: int) -> images.Layer:
    return images.make_layer({f"opt/{name}/data": filler(name, size)})


def fill(registry: Registry) -> Hazards:
    """Push the hazardous shapes (module docstring) through the HTTP API; return the model."""
    h = Hazards()
    amd64, arm64 = images.Platform("linux", "amd64"), images.Platform("linux", "arm64", "v8")
    base = _layer("base", 3000)

    # A tagged multi-arch index; its children are pushed by digest (untagged, live).
    repo = "multi/cli"
    children = [images.build_image([_layer(f"cli-{p.architecture}", 2000)], platform=p, cmd=["/cli"])
                for p in (amd64, arm64)]
    index = images.build_index(children)
    registry.push_index(repo, index, "v1")
    h.tags[(repo, "v1")] = index.digest
    h.add(repo, index, tagged=True, live=True, role="tagged index multi/cli:v1")
    for child in children:
        h.add(repo, child, tagged=False, live=True, role=f"untagged child {child.platform} of multi/cli:v1")
    # An index pushed by digest only, with its children: all garbage.
    nightly = [images.build_image([_layer(f"nightly-{p.architecture}", 1500)], platform=p, cmd=["/nightly"])
               for p in (amd64, arm64)]
    nightly_index = images.build_index(nightly)
    registry.push_index(repo, nightly_index)
    h.add(repo, nightly_index, tagged=False, live=False, role="digest-only index multi/cli")
    for child in nightly:
        h.add(repo, child, tagged=False, live=False, role=f"child {child.platform} of the digest-only index")

    # A tagged image and its untagged (live) signature.
    repo = "signed/app"
    app = images.build_image([base, _layer("app", 2500)], labels={"name": "app"})
    registry.push_image(repo, app, "v1")
    h.tags[(repo, "v1")] = app.digest
    h.add(repo, app, tagged=True, live=True, role="tagged image signed/app:v1")
    app_signature = images.cosign_signature(app, "signed/app")
    registry.push_image(repo, app_signature)
    h.add(repo, app_signature, tagged=False, live=True, role="untagged signature of signed/app:v1")

    # A tag overwritten: the old image and its own signature are left untagged (garbage).
    repo = "web/app"
    web_1 = _layer("web-1", 1800)
    web_old = images.build_image([base, web_1], labels={"name": "web", "v": "1"})
    registry.push_image(repo, web_old, "latest")
    h.add(repo, web_old, tagged=True, live=True, role="old web/app:latest")
    old_signature = images.cosign_signature(web_old, "web/app")
    registry.push_image(repo, old_signature)
    h.add(repo, old_signature, tagged=False, live=True, role="signature of the old web/app:latest")
    web_new = images.build_image([base, _layer("web-2", 1900)], labels={"name": "web", "v": "2"})
    registry.push_image(repo, web_new, "latest")
    h.tags[(repo, "latest")] = web_new.digest
    h.add(repo, web_new, tagged=True, live=True, role="web/app:latest")
    h.retag(repo, web_old.digest, tagged=False, live=False)
    h.retag(repo, old_signature.digest, tagged=False, live=False)
    # A manifest PUT by digest, never tagged.
    scratch = images.build_image([base, _layer("scratch", 1200)], labels={"name": "scratch"})
    registry.push_image(repo, scratch)
    h.add(repo, scratch, tagged=False, live=False, role="digest-only image web/app")
    # A blob uploaded and referenced by nothing; an upload left in progress.
    orphan = b"uploaded, never referenced\n" + filler("orphan", 900)
    h.unreferenced.add(registry.put_blob(repo, orphan))
    h.blob_sizes[images.sha256_digest(orphan)] = len(orphan)
    upload = filler("upload", 700)
    h.uploads[(repo, registry.start_upload(repo, upload))] = len(upload)

    # Cross-repository mounts.
    shared, half = _layer("mount-shared", 1600), _layer("mount-half", 1400)
    src = images.build_image([shared, half], labels={"name": "src"})
    registry.push_image("mount/src", src, "v1")
    h.tags[("mount/src", "v1")] = src.digest
    h.add("mount/src", src, tagged=True, live=True, role="tagged image mount/src:v1")
    repo = "mount/dst"
    # Tagged in both repositories: the mounted layer stays.
    dst = images.build_image([shared], labels={"name": "dst"})
    push_mounting(registry, repo, dst, {shared.digest: "mount/src"}, "v1")
    h.tags[(repo, "v1")] = dst.digest
    h.add(repo, dst, tagged=True, live=True, role="tagged image mount/dst:v1 (mounted layer)")
    # Untagged here, its mounted layer still used by mount/src:v1: only its own layer goes.
    dst_half = images.build_image([half, _layer("dst-only", 1100)], labels={"name": "dst-half"})
    push_mounting(registry, repo, dst_half, {half.digest: "mount/src"})
    h.add(repo, dst_half, tagged=False, live=False, role="digest-only image mount/dst (layer kept in mount/src)")
    # Untagged here, its layer mounted from web/app's old image, untagged there too: it goes.
    dst_old = images.build_image([web_1], labels={"name": "dst-old"})
    push_mounting(registry, repo, dst_old, {web_1.digest: "web/app"})
    h.add(repo, dst_old, tagged=False, live=False,
          role="digest-only image mount/dst (layer mounted from the old web/app)")
    return h


# --- the tools ----------------------------------------------------------------------------------


def regstat(*args: str) -> subprocess.CompletedProcess[str]:
    """``python -m regstat ARGS`` in a child process (dummy AWS credentials)."""
    return subprocess.run([sys.executable, "-m", "regstat", *args], capture_output=True, text=True,
                          env=isolated_env(), cwd=REPO_ROOT, timeout=120)


def crawl_and_plan(root: Path, work: Path) -> dict[str, Any]:
    """``regstat crawl ROOT -o snap`` then ``regstat plan-gc snap --untagged --grace 0s``."""
    snapshot, plan = work / "snap", work / "plan.json"
    for args in (("crawl", str(root), "-o", str(snapshot)),
                 ("plan-gc", str(snapshot), "--untagged", "--grace", "0s", "-o", str(plan))):
        result = regstat(*args)
        if result.returncode != 0:
            raise AssertionError(f"regstat {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
    meta = json.loads((snapshot / "snapshot.json").read_text())
    assert meta["complete"] is True and meta["errors"] == [], meta
    return json.loads(plan.read_text())


@dataclass(frozen=True)
class GcRun:
    """What ``docker-registry garbage-collect`` said: manifests it would delete (with
    ``--delete-untagged``), per repository, and blobs it would delete."""

    manifests: set[tuple[str, str]]
    blobs: set[str]
    marked: int
    output: str


_REPOSITORY_LINE = re.compile(r"^[a-z0-9][a-z0-9._/-]*$")
_SUMMARY = re.compile(r"^(\d+) blobs marked, (\d+) blobs and (\d+) manifests eligible for deletion$")


def run_gc(config: Path, *, dry_run: bool, delete_untagged: bool) -> GcRun:
    """Run the registry's GC and parse its output (distribution 2.8.2): each repository's walk
    starts with a line holding its bare name, followed by ``manifest eligible for deletion:
    DIGEST`` (untagged, with --delete-untagged) and ``REPO: marking manifest|blob DIGEST``; then
    ``N blobs marked, M blobs and K manifests eligible for deletion`` and one ``blob eligible
    for deletion: DIGEST`` per blob (also when not a dry run: it deletes them as it lists them)."""
    argv = ["docker-registry", "garbage-collect"]
    argv += ["--dry-run"] * dry_run + ["--delete-untagged"] * delete_untagged + [str(config)]
    result = subprocess.run(argv, capture_output=True, text=True, env=isolated_env(), timeout=120)
    if result.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    repository, manifests, blobs, summary = None, set(), set(), None
    for line in result.stdout.splitlines():
        line = line.strip()
        if m := re.match(r"^manifest eligible for deletion: (sha256:[0-9a-f]{64})$", line):
            assert repository is not None, line
            manifests.add((repository, m[1]))
        elif m := re.match(r"^blob eligible for deletion: (sha256:[0-9a-f]{64})$", line):
            blobs.add(m[1])
        elif m := _SUMMARY.match(line):
            summary = tuple(int(g) for g in m.groups())
        elif _REPOSITORY_LINE.match(line):
            repository = line
    assert summary is not None, f"no summary line in:\n{result.stdout}"
    assert (summary[1], summary[2]) == (len(blobs), len(manifests)), (summary, result.stdout)
    return GcRun(manifests, blobs, summary[0], result.stdout)


def gc_config(registry: Registry, root: Path, path: Path) -> Path:
    """The registry's configuration with its storage moved to ``root`` (a copy of the tree)."""
    config = registry.config()
    config["storage"]["filesystem"]["rootdirectory"] = str(root)  # type: ignore[index]
    path.write_text(json.dumps(config))
    return path


def blob_files(root: Path) -> dict[str, int]:
    """Every blob's digest and data file size under ``docker/registry/v2/blobs``."""
    out = {}
    for data in (root / V2 / "blobs" / "sha256").glob("*/*/data"):
        out["sha256:" + data.parent.name] = data.stat().st_size
    return out


def upload_files(root: Path) -> dict[tuple[str, str], int]:
    """Every upload in progress, (repository, uuid) -> size of its data file."""
    repositories = root / V2 / "repositories"
    return {(str(d.parent.parent.parent.relative_to(repositories)), d.parent.name): d.stat().st_size
            for d in repositories.glob("**/_uploads/*/data")}


def planned(plan: dict[str, Any], action: str) -> list[dict[str, Any]]:
    return [a for a in plan["actions"] if a["action"] == action]


def skopeo_copy_out(registry: Registry, reference: str, destination: Path, transport: str = "oci") -> None:
    """``skopeo copy --all docker://HOST/REFERENCE oci:DESTINATION``: every manifest and blob
    must be served (and skopeo checks every digest). ``transport`` ``dir`` takes a Docker
    manifest list as it is (an OCI layout would need it converted)."""
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix="regstat-skopeo-") as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
        argv = ["skopeo", "--policy", str(policy), "copy", "--quiet", "--all", "--preserve-digests",
                "--src-tls-verify=false", f"docker://{registry.host}/{reference}", f"{transport}:{destination}"]
        result = subprocess.run(argv, capture_output=True, text=True, env=isolated_env(), timeout=120)
    if result.returncode != 0:
        raise CopyFailed(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")


class CopyFailed(AssertionError):
    """skopeo could not copy an image out of the registry."""


# --- the comparison -------------------------------------------------------------------------------


@dataclass(frozen=True)
class Comparison:
    """regstat's plan and the registry's ``garbage-collect --dry-run --delete-untagged`` on the
    same tree, with the blob sizes found on disk."""

    hazards: Hazards
    plan: dict[str, Any]
    gc: GcRun
    sizes: dict[str, int]  # every blob data file in the tree

    @property
    def plan_manifests(self) -> set[tuple[str, str]]:
        return {(a["repository"], a["digest"]) for a in planned(self.plan, "delete_manifest")}

    @property
    def plan_blobs(self) -> set[str]:
        return {a["digest"] for a in planned(self.plan, "delete_blob")}

    def bytes(self, digests: Iterable[str]) -> int:
        return sum(self.sizes[d] for d in digests)

    def numbers(self) -> dict[str, Any]:
        """The figures docs/plan-gc.md quotes."""
        h, gc = self.hazards, self.gc
        destroyed_manifests = gc.manifests & h.live_manifests()
        destroyed_blobs = gc.blobs & h.live_blobs()
        upload_bytes = sum(a["size"] for a in planned(self.plan, "delete_upload"))
        return {
            "stored": {"manifests": len(h.manifests), "blobs": len(self.sizes), "bytes": self.bytes(self.sizes)},
            "registry_gc": {"manifests": len(gc.manifests), "blobs": len(gc.blobs), "bytes": self.bytes(gc.blobs)},
            "regstat": {"manifests": len(self.plan_manifests), "blobs": len(self.plan_blobs),
                        "blob_bytes": self.bytes(self.plan_blobs),
                        "uploads": len(planned(self.plan, "delete_upload")), "upload_bytes": upload_bytes,
                        "bytes_reclaimed": self.plan["summary"]["bytes_reclaimed"]},
            "gc_destroys_live": {"manifests": len(destroyed_manifests), "blobs": len(destroyed_blobs),
                                 "bytes": self.bytes(destroyed_blobs),
                                 "what": h.roles(destroyed_manifests)},
        }


def compare(registry: Registry, hazards: Hazards, work: Path) -> Comparison:
    """Crawl and plan the registry's tree, and run its GC's dry run on a copy of the tree."""
    assert registry.root is not None
    plan = crawl_and_plan(registry.root, work)
    copy = work / "gc-copy"
    shutil.copytree(registry.root, copy)
    gc = run_gc(gc_config(registry, copy, work / "gc-copy.yml"), dry_run=True, delete_untagged=True)
    return Comparison(hazards, plan, gc, blob_files(registry.root))


def gc_damage(c: Comparison, work: Path) -> dict[str, Any]:
    """Run ``garbage-collect --delete-untagged`` for real on the dry run's copy of the tree,
    serve the result with a second registry, and try to copy out every tag and the live
    signature: what the registry's own GC breaks. Returns the bytes it removed and, per
    reference, skopeo's error (for what no longer copies)."""
    copy = work / "gc-copy"
    before = blob_files(copy)
    run_gc(work / "gc-copy.yml", dry_run=False, delete_untagged=True)
    after = blob_files(copy)
    broken: dict[str, str] = {}
    with Registry(root=copy, workdir=work / "gc-copy-registry") as damaged:
        for i, reference in enumerate(kept_references(c.hazards)):
            try:
                skopeo_copy_out(damaged, reference, work / "gc-copy-out" / str(i))
            except CopyFailed as e:
                broken[reference] = str(e).splitlines()[-1]
    return {"blobs_removed": len(set(before) - set(after)),
            "bytes_removed": sum(before.values()) - sum(after.values()), "broken": broken}


def kept_references(h: Hazards) -> list[str]:
    """Every tag, and every live manifest no tag points at directly but an index lists (those
    copy with the index) or that is a referrer (by digest: a referrers API would list it)."""
    references = [f"{repository}:{tag}" for (repository, tag) in sorted(h.tags)]
    tagged = {(repository, digest) for (repository, _), digest in h.tags.items()}
    listed = {(p.repository, d) for p in h.manifests if p.live and isinstance(p.manifest, Index)
              for d in p.references()}
    references += [f"{p.repository}@{p.digest}" for p in h.manifests
                   if p.live and p.key not in tagged and p.key not in listed]
    return references


def format_numbers(numbers: dict[str, Any]) -> str:
    """The comparison as a Markdown table (what benchmarks/compare_gc.py prints)."""
    s, g, r, d = numbers["stored"], numbers["registry_gc"], numbers["regstat"], numbers["gc_destroys_live"]
    lines = [
        "| | manifests | blobs | bytes |",
        "|---|---:|---:|---:|",
        f"| stored in the registry | {s['manifests']} | {s['blobs']} | {s['bytes']:,} |",
        f"| `garbage-collect --delete-untagged` deletes | {g['manifests']} | {g['blobs']} | {g['bytes']:,} |",
        (f"| `regstat plan-gc --untagged --grace 0s` deletes | {r['manifests']} | {r['blobs']} | "
         f"{r['blob_bytes']:,} (+ {r['uploads']} stale upload, {r['upload_bytes']:,}: "
         f"bytes_reclaimed {r['bytes_reclaimed']:,}) |"),
        f"| live content the registry's GC destroys | {d['manifests']} | {d['blobs']} | {d['bytes']:,} |",
        "",
        "Live manifests the registry's GC deletes: " + "; ".join(d["what"]) + ".",
    ]
    return "\n".join(lines)


# --- the test ---------------------------------------------------------------------------------------
