"""The registry's domain: digests, registry hosts, media types, descriptors and manifests.

`parse_manifest` turns a manifest body into a `Manifest` or raises `ManifestError`; it never
guesses. A media type it does not know is kept as it is, with no descriptors, and marked
`unknown_media_type` so that nothing downstream reads it as "references nothing".
"""

from __future__ import annotations

import fnmatch
import hashlib
import json
import re
import sys
from collections import Counter
from dataclasses import dataclass, field
from typing import NamedTuple

from .errors import ManifestError

MAX_MANIFEST_BYTES = 4 * 1024 * 1024  # the limit registries (and distribution) enforce

# One pattern, one C call: a crawl checks a digest for every link, blob and descriptor.
_DIGEST = re.compile(r"sha256:[0-9a-f]{64}|sha512:[0-9a-f]{128}")
# Distribution's grammar for tags.
TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")


def parse_digest(text: str) -> str:
    """Return `text` if it is a well-formed `algorithm:hex` digest, else raise ValueError."""
    if _DIGEST.fullmatch(text) is None:
        raise ValueError(f"not a digest: {text[:80]!r}")
    return text


def is_digest(text: str) -> bool:
    return _DIGEST.fullmatch(text) is not None


def digest_of(data: bytes, algorithm: str = "sha256") -> str:
    return f"{algorithm}:{hashlib.new(algorithm, data).hexdigest()}"


# The first component of an image reference is a registry host, as Docker tells them apart,
# when it has a dot or a port, or is localhost: `registry.example.com/apps/web`,
# `localhost:5000/web`; `apps/web` is a repository name alone.
_REGISTRY_HOST = re.compile(
    r"(localhost|[A-Za-z0-9-]+(\.[A-Za-z0-9-]+)+|[A-Za-z0-9-]+:[0-9]+|\[[0-9A-Fa-f:.]+\])(:[0-9]+)?"
)


def is_registry_host(component: str) -> bool:
    """Whether `component`, the part of an image reference before its first `/`, is a host."""
    return _REGISTRY_HOST.fullmatch(component) is not None


class MediaType:
    """Manifest media types regstat parses, and predicates over them."""

    DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
    DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
    DOCKER_SCHEMA1 = "application/vnd.docker.distribution.manifest.v1+json"
    DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"
    OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
    OCI_INDEX = "application/vnd.oci.image.index.v1+json"

    IMAGES = frozenset({DOCKER_MANIFEST, OCI_MANIFEST})
    INDEXES = frozenset({DOCKER_MANIFEST_LIST, OCI_INDEX})
    SCHEMA1 = frozenset({DOCKER_SCHEMA1, DOCKER_SCHEMA1_SIGNED})
    KNOWN = IMAGES | INDEXES | SCHEMA1

    @staticmethod
    def is_index(media_type: str | None) -> bool:
        return media_type in MediaType.INDEXES

    @staticmethod
    def is_image(media_type: str | None) -> bool:
        return media_type in MediaType.IMAGES


class Descriptor(NamedTuple):
    """A reference from a manifest to a blob or another manifest.

    A named tuple: immutable like a frozen dataclass, a fraction of its cost to build and to
    pickle (a crawl makes one per config, layer and child, in workers that send them back).
    """

    role: str  # config, layer, manifest (index child), subject
    position: int
    digest: str
    media_type: str | None
    size: int | None
    platform: str | None = None
    artifact_type: str | None = None
    repeated: bool = False  # the manifest names this digest again as config, layer or child


# The roles whose descriptors are references (docs/design.md): a manifest's config, layers and
# index children. A digest twice among them is still one reference.
REFERENCE_ROLES = frozenset({"config", "layer", "manifest"})


def mark_repeated(descriptors: list[Descriptor]) -> tuple[Descriptor, ...]:
    """`descriptors` with `repeated` set on each reference whose digest another one repeats."""
    digests = [d.digest for d in descriptors if d.role in REFERENCE_ROLES]
    if len(set(digests)) == len(digests):  # nearly every manifest: nothing to mark
        return tuple(descriptors)
    counts = Counter(digests)
    return tuple(d._replace(repeated=True) if d.role in REFERENCE_ROLES and counts[d.digest] > 1 else d
                 for d in descriptors)


@dataclass(frozen=True)
class Manifest:
    """A parsed manifest: what it is and everything it references."""

    digest: str
    size: int
    media_type: str | None
    status: str = "ok"  # ok | unknown_media_type
    artifact_type: str | None = None
    config_media_type: str | None = None
    subject_digest: str | None = None
    descriptors: tuple[Descriptor, ...] = field(default=())

    def __reduce__(self) -> tuple:
        # Positional fields, not the default state dict: crawl workers pickle one per manifest.
        return Manifest, (
            self.digest,
            self.size,
            self.media_type,
            self.status,
            self.artifact_type,
            self.config_media_type,
            self.subject_digest,
            self.descriptors,
        )


def parse_manifest(body: bytes, digest: str) -> Manifest:
    """Parse a manifest body stored under `digest`.

    Raises ManifestError with status `too_large`, `digest_mismatch` or `invalid`.
    """
    if len(body) > MAX_MANIFEST_BYTES:
        raise ManifestError("too_large", f"manifest is {len(body)} bytes, over the 4 MiB limit")
    algorithm = digest.partition(":")[0]
    actual = digest_of(body, algorithm)
    if actual != digest:
        raise ManifestError("digest_mismatch", f"content hashes to {actual}")
    try:
        document = json.loads(body)
    except (ValueError, RecursionError) as e:
        raise ManifestError("invalid", f"not JSON: {_short(e)}") from None
    if not isinstance(document, dict):
        raise ManifestError("invalid", "not a JSON object")
    return _parse_document(document, digest, len(body))


def _parse_document(doc: dict, digest: str, size: int) -> Manifest:
    schema_version = doc.get("schemaVersion")
    media_type = doc.get("mediaType")
    if media_type is not None and not isinstance(media_type, str):
        raise ManifestError("invalid", "mediaType is not a string")
    if schema_version == 1:
        return _parse_schema1(doc, digest, size)
    if media_type is None and schema_version == 2:
        # The OCI spec lets mediaType be omitted; like distribution, infer it from the shape.
        media_type = MediaType.OCI_INDEX if "manifests" in doc else MediaType.OCI_MANIFEST
    if media_type not in MediaType.KNOWN:
        return Manifest(digest, size, media_type, status="unknown_media_type")
    if schema_version != 2:
        raise ManifestError("invalid", f"schemaVersion {schema_version!r} for {media_type}")
    if media_type in MediaType.SCHEMA1:
        return _parse_schema1(doc, digest, size)

    artifact_type = _optional_str(doc, "artifactType")
    descriptors: list[Descriptor] = []
    config_media_type = None
    if MediaType.is_index(media_type):
        children = _list(doc, "manifests", required=True)
        for i, child in enumerate(children):
            descriptors.append(_descriptor(child, "manifest", i, with_platform=True))
    else:
        config = _descriptor(doc.get("config"), "config", 0)
        config_media_type = config.media_type
        descriptors.append(config)
        for i, layer in enumerate(_list(doc, "layers", required=True)):
            descriptors.append(_descriptor(layer, "layer", i))
    subject_digest = None
    if doc.get("subject") is not None:
        subject = _descriptor(doc["subject"], "subject", 0)
        subject_digest = subject.digest
        descriptors.append(subject)
    return Manifest(
        digest,
        size,
        media_type,
        artifact_type=artifact_type,
        config_media_type=config_media_type,
        subject_digest=subject_digest,
        descriptors=mark_repeated(descriptors),
    )


def _parse_schema1(doc: dict, digest: str, size: int) -> Manifest:
    # The registry stores the payload without its signatures and signs it again when serving
    # it, always as prettyjws: call it what the registry calls it. Layers carry no size.
    media_type = doc.get("mediaType") or MediaType.DOCKER_SCHEMA1_SIGNED
    layers = []
    for i, entry in enumerate(_list(doc, "fsLayers", required=True)):
        if not isinstance(entry, dict) or not isinstance(entry.get("blobSum"), str):
            raise ManifestError("invalid", f"fsLayers[{i}] has no blobSum")
        layers.append(Descriptor("layer", i, _digest(entry["blobSum"]), None, None))
    return Manifest(digest, size, media_type, descriptors=mark_repeated(layers))


def _descriptor(value: object, role: str, position: int, with_platform: bool = False) -> Descriptor:
    where = f"{role} {position}"
    if not isinstance(value, dict):
        raise ManifestError("invalid", f"{where} is not an object")
    media_type = value.get("mediaType")
    if media_type is not None:
        if not isinstance(media_type, str):
            raise ManifestError("invalid", f"{where}: mediaType is not a string")
        # A handful of media types repeat across every manifest: one object each, which
        # pickling sends once per batch of manifests instead of once per descriptor.
        media_type = sys.intern(media_type)
    if not isinstance(value.get("digest"), str):
        raise ManifestError("invalid", f"{where} has no digest")
    size = value.get("size")
    if not isinstance(size, int) or isinstance(size, bool) or size < 0 or size >= 2**63:
        raise ManifestError("invalid", f"{where} has no valid size")
    platform = _platform(value.get("platform"), where) if with_platform else None
    artifact_type = value.get("artifactType")
    if artifact_type is not None and not isinstance(artifact_type, str):
        raise ManifestError("invalid", f"{where}: artifactType is not a string")
    return Descriptor(role, position, _digest(value["digest"]), media_type, size, platform, artifact_type)


def _platform(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise ManifestError("invalid", f"{where}: platform is not an object")
    parts = [value.get("os"), value.get("architecture")]
    if value.get("variant"):
        parts.append(value.get("variant"))
    if not all(isinstance(p, str) and p for p in parts):
        raise ManifestError("invalid", f"{where}: platform lacks os or architecture")
    return "/".join(parts)  # type: ignore[arg-type]


def _digest(text: str) -> str:
    try:
        return parse_digest(text)
    except ValueError as e:
        raise ManifestError("invalid", str(e)) from None


def _list(doc: dict, key: str, required: bool) -> list:
    value = doc.get(key)
    if value is None and not required:
        return []
    if not isinstance(value, list):
        raise ManifestError("invalid", f"{key} is not a list")
    return value


def _optional_str(doc: dict, key: str) -> str | None:
    value = doc.get(key)
    if value is not None and not isinstance(value, str):
        raise ManifestError("invalid", f"{key} is not a string")
    return value


def _short(error: Exception) -> str:
    return str(error)[:200] or type(error).__name__


def repository_selected(name: str, globs: tuple[str, ...] | list[str]) -> bool:
    """Whether -r/--repository GLOB... selects the repository `name`: no GLOB selects every
    one; `*` matches `/` too (fnmatch, case-sensitive, as crawl --repository)."""
    return not globs or any(fnmatch.fnmatchcase(name, glob) for glob in globs)
