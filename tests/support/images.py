"""Deterministic, in-memory builders for small container images.

Every builder returns plain data (the manifest bytes and every blob it references), so a test
knows exactly what it pushed: digests, sizes and descriptors. Nothing here talks to a
registry; see ``tests/support/scenario.py`` for pushing.

Determinism matters because ``tests/scenario_tree/`` and ``sample_data/`` are regenerated
from these builders: layers are tar archives with sorted entries, fixed owners, modes and
mtimes, gzip'ed with a zero gzip mtime; JSON documents are serialised with sorted keys and
no whitespace.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import tarfile
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeAlias

# --- media types -------------------------------------------------------------------------

OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_INDEX = "application/vnd.oci.image.index.v1+json"
OCI_CONFIG = "application/vnd.oci.image.config.v1+json"
OCI_LAYER_GZIP = "application/vnd.oci.image.layer.v1.tar+gzip"
OCI_EMPTY = "application/vnd.oci.empty.v1+json"

DOCKER_MANIFEST = "application/vnd.docker.distribution.manifest.v2+json"
DOCKER_MANIFEST_LIST = "application/vnd.docker.distribution.manifest.list.v2+json"
DOCKER_CONFIG = "application/vnd.docker.container.image.v1+json"
DOCKER_LAYER_GZIP = "application/vnd.docker.image.rootfs.diff.tar.gzip"
DOCKER_SCHEMA1_SIGNED = "application/vnd.docker.distribution.manifest.v1+prettyjws"

COSIGN_SIGNATURE_ARTIFACT = "application/vnd.dev.cosign.artifact.sig.v1+json"
COSIGN_SIMPLESIGNING = "application/vnd.dev.cosign.simplesigning.v1+json"

# Every manifest media type a registry might be asked to serve, for Accept headers.
ALL_MANIFEST_TYPES = (
    OCI_MANIFEST,
    OCI_INDEX,
    DOCKER_MANIFEST,
    DOCKER_MANIFEST_LIST,
    DOCKER_SCHEMA1_SIGNED,
)

# A fixed point in time for tar entries and image configs: reproducible sample data.
FIXED_EPOCH = 1_704_067_200  # 2024-01-01T00:00:00Z
FIXED_CREATED = "2024-01-01T00:00:00Z"

# The OCI "empty" descriptor body, used as the config of artifacts (OCI image spec 1.1).
EMPTY_JSON = b"{}"


def sha256_digest(data: bytes) -> str:
    """The ``sha256:<hex>`` digest of ``data``."""
    return "sha256:" + hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """Compact JSON with sorted keys: the same document always gives the same bytes."""
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


# --- descriptors ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Platform:
    """An image platform; ``str()`` is the snapshot's ``os/arch[/variant]`` form."""

    os: str = "linux"
    architecture: str = "amd64"
    variant: str | None = None

    def __str__(self) -> str:
        parts = [self.os, self.architecture] + ([self.variant] if self.variant else [])
        return "/".join(parts)

    def to_json(self) -> dict[str, str]:
        """The ``platform`` object of an index entry (or the fields of an image config)."""
        out = {"architecture": self.architecture, "os": self.os}
        if self.variant:
            out["variant"] = self.variant
        return out


@dataclass(frozen=True)
class Descriptor:
    """A content descriptor as it appears inside a manifest."""

    media_type: str
    digest: str
    size: int
    platform: Platform | None = None
    artifact_type: str | None = None

    @classmethod
    def of(cls, media_type: str, data: bytes, **kwargs: object) -> Descriptor:
        """The descriptor of ``data`` (digest and size computed)."""
        return cls(media_type, sha256_digest(data), len(data), **kwargs)  # type: ignore[arg-type]

    def to_json(self) -> dict[str, object]:
        """The JSON object of this descriptor."""
        out: dict[str, object] = {
            "mediaType": self.media_type,
            "digest": self.digest,
            "size": self.size,
        }
        if self.platform is not None:
            out["platform"] = self.platform.to_json()
        if self.artifact_type is not None:
            out["artifactType"] = self.artifact_type
        return out


# --- layers ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Layer:
    """A gzip'ed tar layer: ``data`` is the blob, ``diff_id`` the digest of the plain tar."""

    data: bytes
    diff_id: str

    @property
    def digest(self) -> str:
        return sha256_digest(self.data)

    @property
    def size(self) -> int:
        return len(self.data)


def make_layer(files: Mapping[str, bytes]) -> Layer:
    """Build a deterministic tar+gzip layer holding ``files`` (path -> content).

    Entries are sorted and carry fixed metadata, so equal inputs give identical bytes
    (and so identical digests): this is how two images share a base layer.
    """
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        for path in sorted(files):
            content = files[path]
            info = tarfile.TarInfo(path)
            info.size = len(content)
            info.mtime = FIXED_EPOCH
            info.mode = 0o644
            info.uid = info.gid = 0
            info.uname = info.gname = "root"
            tar.addfile(info, io.BytesIO(content))
    plain = raw.getvalue()
    # mtime=0 keeps the gzip header free of the current time.
    return Layer(data=gzip.compress(plain, compresslevel=9, mtime=0), diff_id=sha256_digest(plain))


# --- images, indexes, referrers -------------------------------------------------------------


@dataclass(frozen=True)
class Image:
    """A single-platform image manifest (OCI or Docker schema 2) and its blobs.

    ``blobs`` holds the config and layer blobs (digest -> bytes), not the manifest itself.
    """

    manifest: bytes
    media_type: str
    config: Descriptor
    layers: tuple[Descriptor, ...]
    blobs: Mapping[str, bytes]
    platform: Platform | None = None
    subject: Descriptor | None = None
    artifact_type: str | None = None

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    def descriptor(self, with_platform: bool = False) -> Descriptor:
        """The descriptor that points at this manifest (from an index or a ``subject``)."""
        platform = self.platform if with_platform else None
        return Descriptor(self.media_type, self.digest, self.size, platform=platform)

    @property
    def config_media_type(self) -> str:
        return self.config.media_type


@dataclass(frozen=True)
class Index:
    """An OCI image index or a Docker manifest list, with the images it lists."""

    manifest: bytes
    media_type: str
    children: tuple[Image, ...]

    @property
    def digest(self) -> str:
        return sha256_digest(self.manifest)

    @property
    def size(self) -> int:
        return len(self.manifest)

    @property
    def child_descriptors(self) -> tuple[Descriptor, ...]:
        return tuple(child.descriptor(with_platform=True) for child in self.children)

    def descriptor(self) -> Descriptor:
        return Descriptor(self.media_type, self.digest, self.size)


Manifest: TypeAlias = Image | Index


def build_image(
    layers: Sequence[Layer],
    *,
    platform: Platform = Platform(),
    docker: bool = False,
    labels: Mapping[str, str] | None = None,
    cmd: Sequence[str] = ("/bin/sh",),
) -> Image:
    """An image with the given layers; ``docker=True`` gives the Docker schema 2 variant.

    ``labels`` and ``cmd`` land in the config, so two images with the same layers can still
    differ (and have distinct config and manifest digests).
    """
    config_doc = {
        "architecture": platform.architecture,
        "os": platform.os,
        "created": FIXED_CREATED,
        "config": {"Cmd": list(cmd), "Labels": dict(labels or {})},
        "rootfs": {"type": "layers", "diff_ids": [layer.diff_id for layer in layers]},
        "history": [{"created": FIXED_CREATED, "created_by": "regstat tests"} for _ in layers],
    }
    if platform.variant:
        config_doc["variant"] = platform.variant
    config_bytes = canonical_json(config_doc)
    config = Descriptor.of(DOCKER_CONFIG if docker else OCI_CONFIG, config_bytes)
    layer_type = DOCKER_LAYER_GZIP if docker else OCI_LAYER_GZIP
    layer_descs = tuple(Descriptor.of(layer_type, layer.data) for layer in layers)
    media_type = DOCKER_MANIFEST if docker else OCI_MANIFEST
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "config": config.to_json(),
        "layers": [d.to_json() for d in layer_descs],
    }
    blobs = {config.digest: config_bytes, **{layer.digest: layer.data for layer in layers}}
    return Image(
        manifest=canonical_json(doc),
        media_type=media_type,
        config=config,
        layers=layer_descs,
        blobs=blobs,
        platform=platform,
    )


def build_index(images: Sequence[Image], *, docker: bool = False) -> Index:
    """An OCI index (or, ``docker=True``, a Docker manifest list) of ``images``."""
    media_type = DOCKER_MANIFEST_LIST if docker else OCI_INDEX
    for image in images:
        expected = DOCKER_MANIFEST if docker else OCI_MANIFEST
        if image.media_type != expected:
            raise ValueError(f"{media_type} cannot list a {image.media_type}")
    doc = {
        "schemaVersion": 2,
        "mediaType": media_type,
        "manifests": [image.descriptor(with_platform=True).to_json() for image in images],
    }
    return Index(manifest=canonical_json(doc), media_type=media_type, children=tuple(images))


def build_referrer(
    subject: Descriptor,
    payload: bytes,
    *,
    artifact_type: str = COSIGN_SIGNATURE_ARTIFACT,
    payload_media_type: str = COSIGN_SIMPLESIGNING,
) -> Image:
    """An OCI 1.1 artifact (e.g. a signature) whose ``subject`` is ``subject``.

    It is an image manifest with ``artifactType``, the empty config and one layer, the form
    cosign and notation push (the artifact manifest media type never made it into the spec).
    """
    config = Descriptor.of(OCI_EMPTY, EMPTY_JSON)
    layer = Descriptor.of(payload_media_type, payload)
    # A subject descriptor carries no platform, whatever the subject is.
    subject = Descriptor(subject.media_type, subject.digest, subject.size)
    doc = {
        "schemaVersion": 2,
        "mediaType": OCI_MANIFEST,
        "artifactType": artifact_type,
        "config": config.to_json(),
        "layers": [layer.to_json()],
        "subject": subject.to_json(),
    }
    return Image(
        manifest=canonical_json(doc),
        media_type=OCI_MANIFEST,
        config=config,
        layers=(layer,),
        blobs={config.digest: EMPTY_JSON, layer.digest: payload},
        subject=subject,
        artifact_type=artifact_type,
    )


def cosign_signature(subject: Image, repository: str) -> Image:
    """A cosign-style signature of ``subject`` as pushed to ``registry.example/<repository>``:
    its simple-signing payload as the one layer, ``subject`` pointing at the image."""
    payload = canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": f"registry.example/{repository}"},
                "image": {"docker-manifest-digest": subject.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    return build_referrer(subject.descriptor(), payload)


# --- OCI image layout (for skopeo) ----------------------------------------------------------


def _blob_path(layout: Path, digest: str) -> Path:
    algorithm, hex_ = digest.split(":", 1)
    return layout / "blobs" / algorithm / hex_


def _write_blob(layout: Path, data: bytes) -> None:
    path = _blob_path(layout, sha256_digest(data))
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)


def write_oci_layout(directory: Path, tagged: Mapping[str, Manifest]) -> Path:
    """Write an OCI image layout holding ``tagged`` (tag -> image or index).

    The result is what ``skopeo copy oci:DIR:TAG docker://…`` reads. Returns ``directory``.
    """
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    entries = []
    for tag, manifest in sorted(tagged.items()):
        for image in manifest.children if isinstance(manifest, Index) else (manifest,):
            for data in image.blobs.values():
                _write_blob(directory, data)
            _write_blob(directory, image.manifest)
        _write_blob(directory, manifest.manifest)
        entry = manifest.descriptor().to_json()
        entry["annotations"] = {"org.opencontainers.image.ref.name": tag}
        entries.append(entry)
    index = {"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": entries}
    (directory / "index.json").write_bytes(canonical_json(index))
    return directory
