"""Manifest parsing: every known type, unknown types kept as they are, malformed bodies refused."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from regstat.errors import ManifestError
from regstat.model import MAX_MANIFEST_BYTES, MediaType, digest_of, is_digest, parse_manifest

A = "sha256:" + "a" * 64
B = "sha256:" + "b" * 64
C = "sha256:" + "c" * 64


def parse(document: object) -> object:
    body = json.dumps(document).encode()
    return parse_manifest(body, digest_of(body))


def test_oci_image_with_subject_and_artifact_type() -> None:
    m = parse(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.OCI_MANIFEST,
            "artifactType": "application/vnd.example.sig.v1",
            "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": A, "size": 2},
            "layers": [{"mediaType": "application/vnd.example.sig.v1+json", "digest": B, "size": 10}],
            "subject": {"mediaType": MediaType.OCI_MANIFEST, "digest": C, "size": 500},
        }
    )
    assert m.media_type == MediaType.OCI_MANIFEST
    assert m.artifact_type == "application/vnd.example.sig.v1"
    assert m.config_media_type == "application/vnd.oci.empty.v1+json"
    assert m.subject_digest == C
    assert [(d.role, d.position, d.digest, d.size) for d in m.descriptors] == [
        ("config", 0, A, 2),
        ("layer", 0, B, 10),
        ("subject", 0, C, 500),
    ]


def test_docker_manifest_list_platforms() -> None:
    m = parse(
        {
            "schemaVersion": 2,
            "mediaType": MediaType.DOCKER_MANIFEST_LIST,
            "manifests": [
                {"mediaType": MediaType.DOCKER_MANIFEST, "digest": A, "size": 7,
                 "platform": {"os": "linux", "architecture": "amd64"}},
                {"mediaType": MediaType.DOCKER_MANIFEST, "digest": B, "size": 8,
                 "platform": {"os": "linux", "architecture": "arm64", "variant": "v8"}},
            ],
        }
    )
    assert [(d.role, d.digest, d.platform) for d in m.descriptors] == [
        ("manifest", A, "linux/amd64"),
        ("manifest", B, "linux/arm64/v8"),
    ]


@pytest.mark.parametrize(
    "document, expected",
    [
        ({"schemaVersion": 2, "manifests": []}, MediaType.OCI_INDEX),
        ({"schemaVersion": 2, "config": {"digest": A, "size": 1}, "layers": []}, MediaType.OCI_MANIFEST),
    ],
)
def test_oci_media_type_inferred_when_omitted(document: dict, expected: str) -> None:
    assert parse(document).media_type == expected


def test_schema1_layers_have_no_size() -> None:
    m = parse({"schemaVersion": 1, "name": "x", "tag": "t", "fsLayers": [{"blobSum": A}, {"blobSum": A}],
               "signatures": []})
    assert m.media_type == MediaType.DOCKER_SCHEMA1_SIGNED
    assert [(d.role, d.position, d.digest, d.size) for d in m.descriptors] == [
        ("layer", 0, A, None),
        ("layer", 1, A, None),
    ]


def test_a_digest_named_twice_is_marked_repeated() -> None:
    # Analysis groups only repeated descriptors to count each reference once: a repeat left
    # unmarked would count a layer twice.
    schema1 = parse({"schemaVersion": 1, "name": "x", "tag": "t", "fsLayers": [{"blobSum": A}, {"blobSum": B},
                                                                            {"blobSum": A}], "signatures": []})
    assert [d.repeated for d in schema1.descriptors] == [True, False, True]
    layer = {"mediaType": "application/vnd.oci.image.layer.v1.tar", "size": 1}
    image = parse({
        "schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
        "config": {"mediaType": "application/vnd.oci.empty.v1+json", "digest": A, "size": 2},
        "layers": [{**layer, "digest": A}, {**layer, "digest": B}, {**layer, "digest": C}],
        "subject": {"mediaType": MediaType.OCI_MANIFEST, "digest": B, "size": 500},  # not a reference
    })
    assert [(d.role, d.digest, d.repeated) for d in image.descriptors] == [
        ("config", A, True), ("layer", A, True), ("layer", B, False), ("layer", C, False), ("subject", B, False),
    ]
    child = {"mediaType": MediaType.OCI_MANIFEST, "size": 3}
    index = parse({"schemaVersion": 2, "mediaType": MediaType.OCI_INDEX,
                   "manifests": [{**child, "digest": A}, {**child, "digest": B}, {**child, "digest": A}]})
    assert [d.repeated for d in index.descriptors] == [True, False, True]


def test_unknown_media_type_is_kept_and_marked() -> None:
    m = parse({"schemaVersion": 2, "mediaType": "application/vnd.oci.artifact.manifest.v1+json",
               "blobs": [{"digest": A, "size": 1}]})
    assert m.media_type == "application/vnd.oci.artifact.manifest.v1+json"
    assert m.status == "unknown_media_type"
    assert m.descriptors == ()


def test_unfamiliar_layer_types_parse_normally() -> None:
    m = parse({"schemaVersion": 2, "mediaType": MediaType.OCI_MANIFEST,
               "config": {"mediaType": "application/vnd.cncf.helm.config.v1+json", "digest": A, "size": 1},
               "layers": [{"mediaType": "application/vnd.cncf.helm.chart.content.v1.tar+gzip", "digest": B,
                           "size": 3}]})
    assert m.status == "ok" and len(m.descriptors) == 2


@pytest.mark.parametrize(
    "body, status",
    [
        (b"not json", "invalid"),
        (b"[1, 2]", "invalid"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", "layers": []}', "invalid"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json", '
         b'"manifests": [{"digest": "sha256:zz", "size": 1}]}', "invalid"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
         b'"config": {"digest": "' + A.encode() + b'", "size": -1}, "layers": []}', "invalid"),
        (b'{"schemaVersion": 2, "mediaType": "application/vnd.oci.image.manifest.v1+json", '
         b'"config": {"digest": "' + A.encode() + b'", "size": true}, "layers": []}', "invalid"),
        (b"[" * 100_000 + b"]" * 100_000, "invalid"),
    ],
)
def test_malformed_bodies_are_refused(body: bytes, status: str) -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(body, digest_of(body))
    assert caught.value.status == status


def test_digest_mismatch_and_size_limit() -> None:
    with pytest.raises(ManifestError) as caught:
        parse_manifest(b"{}", A)
    assert caught.value.status == "digest_mismatch"
    big = b" " * (MAX_MANIFEST_BYTES + 1)
    with pytest.raises(ManifestError) as caught:
        parse_manifest(big, digest_of(big))
    assert caught.value.status == "too_large"


@pytest.mark.parametrize("text", ["", "sha256:", "sha256:" + "A" * 64, "sha256:" + "a" * 63, "md5:" + "a" * 32,
                                  "sha256:" + "a" * 64 + "\n", " sha256:" + "a" * 64])
def test_bad_digests(text: str) -> None:
    assert not is_digest(text)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.text(max_size=20) | st.sampled_from([A, B, *MediaType.KNOWN]),
    lambda children: st.lists(children, max_size=4)
    | st.dictionaries(
        st.sampled_from(["schemaVersion", "mediaType", "config", "layers", "manifests", "subject", "digest",
                         "size", "platform", "os", "architecture", "fsLayers", "blobSum", "artifactType"]),
        children,
        max_size=6,
    ),
    max_leaves=30,
)


@settings(max_examples=400, deadline=None)
@given(json_values)
def test_fuzz_parser_never_crashes_and_never_drops_references(document: object) -> None:
    """Any JSON either parses into well-formed descriptors or is refused; nothing else escapes."""
    body = json.dumps(document).encode()
    try:
        m = parse_manifest(body, digest_of(body))
    except ManifestError as e:
        assert e.status == "invalid"
        return
    assert m.status in ("ok", "unknown_media_type")
    if m.status == "ok":
        assert m.media_type in MediaType.KNOWN
    for d in m.descriptors:
        assert is_digest(d.digest)
        assert d.size is None or d.size >= 0


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_fuzz_parser_on_arbitrary_bytes(body: bytes) -> None:
    try:
        parse_manifest(body, digest_of(body))
    except ManifestError as e:
        assert e.status == "invalid"
