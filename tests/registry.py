"""Real components for tests, on 127.0.0.1 only: moto's S3 server and Debian's docker-registry.

Also used by ``scripts/make_sample_data.py``, so nothing here depends on pytest.

- :class:`MotoServer` runs ``moto_server`` (an S3 stand-in).
- :class:`Registry` runs ``docker-registry serve`` (distribution 2.8.2) on filesystem or S3
  storage and offers a tiny client for its HTTP API (urllib only).
- :func:`skopeo_copy` pushes an OCI image layout with the real client.
- :func:`populate` pushes the standard scenario and returns an :class:`Expected` describing
  exactly what the registry's storage then holds.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import TracebackType
from typing import Any, Mapping, NamedTuple, Sequence

import images
from images import (
    ALL_MANIFEST_TYPES,
    Descriptor,
    Image,
    Index,
    Manifest,
    sha256_digest,
)

LOOPBACK = "127.0.0.1"

# Dummy credentials: moto accepts anything, and real ones must never reach a test.
DUMMY_CREDENTIALS = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
}
REGION = "us-east-1"

# Variables that could point a child process at real AWS credentials or settings, or (for
# AWS_CA_BUNDLE) break the registry's S3 driver, which panics at start-up when it is set.
AWS_VARIABLES_TO_DROP = (
    "AWS_CA_BUNDLE",
    "AWS_PROFILE",
    "AWS_DEFAULT_PROFILE",
    "AWS_ROLE_ARN",
    "AWS_WEB_IDENTITY_TOKEN_FILE",
    "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
    "AWS_CONTAINER_CREDENTIALS_FULL_URI",
    "AWS_CONTAINER_AUTHORIZATION_TOKEN",
    "AWS_ENDPOINT_URL",
    "AWS_ENDPOINT_URL_S3",
)

START_TIMEOUT = 20.0


class ComponentError(RuntimeError):
    """A component (moto_server, docker-registry, skopeo) failed to start or to answer."""


# --- processes ------------------------------------------------------------------------------


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago (the kernel picks it)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((LOOPBACK, 0))
        return int(sock.getsockname()[1])


def isolated_env(extra: Mapping[str, str] | None = None) -> dict[str, str]:
    """``os.environ`` with dummy AWS credentials, no AWS profile/CA bundle, no proxies for
    loopback, plus ``extra``: the environment for every child process started by tests."""
    env = {k: v for k, v in os.environ.items() if k not in AWS_VARIABLES_TO_DROP}
    env.update(DUMMY_CREDENTIALS)
    # Make sure no credentials or config file from the machine is read.
    env["AWS_SHARED_CREDENTIALS_FILE"] = os.devnull
    env["AWS_CONFIG_FILE"] = os.devnull
    env["AWS_EC2_METADATA_DISABLED"] = "true"
    no_proxy = ",".join(filter(None, [env.get("NO_PROXY"), LOOPBACK, "localhost"]))
    env["NO_PROXY"] = env["no_proxy"] = no_proxy
    env.update(extra or {})
    return env


def _executable(name: str) -> str:
    """``name`` from the running interpreter's bin directory (the venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    if beside.exists():
        return str(beside)
    found = shutil.which(name)
    if found is None:
        raise ComponentError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Loopback requests must never go through a proxy configured in the environment.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _http_status(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers yet."""
    try:
        with _OPENER.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError, socket.timeout):
        return None


class _Process:
    """A child process whose output goes to a log file, stopped on exit."""

    def __init__(self, argv: Sequence[str], log_path: Path, env: Mapping[str, str]) -> None:
        self.log_path = log_path
        self._log = open(log_path, "ab")
        self.popen = subprocess.Popen(
            list(argv),
            stdout=self._log,
            stderr=subprocess.STDOUT,
            stdin=subprocess.DEVNULL,
            env=dict(env),
        )

    def wait_until(self, url: str, ok: set[int], what: str) -> None:
        """Poll ``url`` until it answers with a status in ``ok``; raise with the log tail if
        the process exits or time runs out."""
        deadline = time.monotonic() + START_TIMEOUT
        status = None
        while time.monotonic() < deadline:
            if self.popen.poll() is not None:
                raise ComponentError(
                    f"{what} exited with {self.popen.returncode} at start-up; "
                    f"log {self.log_path}:\n{_log_tail(self.log_path)}"
                )
            status = _http_status(url)
            if status in ok:
                return
            time.sleep(0.05)
        self.stop()
        raise ComponentError(
            f"{what} did not answer {url} within {START_TIMEOUT}s (last status {status}); "
            f"log {self.log_path}:\n{_log_tail(self.log_path)}"
        )

    def stop(self) -> None:
        if self.popen.poll() is None:
            self.popen.terminate()
            try:
                self.popen.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.popen.kill()
                self.popen.wait()
        self._log.close()


# --- moto -----------------------------------------------------------------------------------


class MotoServer:
    """``moto_server`` on 127.0.0.1:<free port>, as a context manager.

    >>> with MotoServer() as moto:
    ...     moto.client("s3").create_bucket(Bucket="b")
    """

    def __init__(self, log_dir: Path | None = None) -> None:
        self._log_dir = log_dir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: _Process | None = None
        self.port = 0

    @property
    def endpoint_url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    def start(self) -> "MotoServer":
        if self._log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="regstat-moto-")
            self._log_dir = Path(self._tmp.name)
        self.port = free_port()
        argv = [_executable("moto_server"), "-H", LOOPBACK, "-p", str(self.port)]
        self._process = _Process(argv, self._log_dir / "moto.log", isolated_env())
        # moto answers its own dashboard API once Flask is up.
        self._process.wait_until(f"{self.endpoint_url}/moto-api/", {200}, "moto_server")
        return self

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "MotoServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def client(self, service: str = "s3") -> Any:
        """A boto3 client for ``service`` on this server, with dummy credentials."""
        return aws_client(service, self.endpoint_url)

    def create_bucket(self, name: str) -> str:
        """Create bucket ``name`` (us-east-1 takes no location constraint); return it."""
        self.client("s3").create_bucket(Bucket=name)
        return name

    def list_keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object key under ``prefix`` with its size."""
        paginator = self.client("s3").get_paginator("list_objects_v2")
        out: dict[str, int] = {}
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = int(obj["Size"])
        return out


# --- docker-registry --------------------------------------------------------------------------


@dataclass(frozen=True)
class S3Storage:
    """Where a registry with the ``s3`` driver keeps its tree."""

    endpoint_url: str
    bucket: str
    rootdirectory: str | None = None  # e.g. "/regroot"; None keeps the tree at the bucket root

    @property
    def source(self) -> str:
        """The crawler's SOURCE for this storage: ``s3://BUCKET[/prefix]``."""
        prefix = (self.rootdirectory or "").strip("/")
        return f"s3://{self.bucket}" + (f"/{prefix}" if prefix else "")

    @property
    def key_prefix(self) -> str:
        """The key prefix of the tree (``""`` or ``"prefix/"``)."""
        prefix = (self.rootdirectory or "").strip("/")
        return prefix + "/" if prefix else ""

    def driver_config(self) -> dict[str, object]:
        config: dict[str, object] = {
            "accesskey": DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
            "secretkey": DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
            "region": REGION,
            "regionendpoint": self.endpoint_url,
            "bucket": self.bucket,
            "forcepathstyle": True,
            "secure": False,
            "v4auth": True,
        }
        if self.rootdirectory:
            config["rootdirectory"] = self.rootdirectory
        return config


class Registry:
    """``docker-registry serve`` on 127.0.0.1:<free port>, as a context manager.

    Storage is either a local directory (``root``, the directory that will hold
    ``docker/registry/v2``) or S3 (``s3``). Deletes are enabled, auth is off. ``schema1``
    enables pushing Docker schema 1 manifests (off by default, as in 2.8).
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        s3: S3Storage | None = None,
        workdir: Path | None = None,
        schema1: bool = False,
    ) -> None:
        if (root is None) == (s3 is None):
            raise ValueError("give exactly one of root= and s3=")
        self.root = root
        self.s3 = s3
        self.schema1 = schema1
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: _Process | None = None
        self.port = 0
        self.config_path: Path | None = None
        self.log_path: Path | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"http://{LOOPBACK}:{self.port}"

    @property
    def host(self) -> str:
        return f"{LOOPBACK}:{self.port}"

    @property
    def source(self) -> str:
        """The crawler's SOURCE: the storage root directory or ``s3://bucket[/prefix]``."""
        return str(self.root) if self.root is not None else self.s3.source  # type: ignore[union-attr]

    def config(self) -> dict[str, object]:
        """The registry configuration (written as JSON, which is valid YAML)."""
        if self.root is not None:
            driver: dict[str, object] = {"filesystem": {"rootdirectory": str(self.root)}}
        else:
            assert self.s3 is not None
            driver = {"s3": self.s3.driver_config()}
        config: dict[str, object] = {
            "version": "0.1",
            "log": {"level": "info"},
            "storage": {
                **driver,
                "delete": {"enabled": True},
                # The purger would delete our deliberately unfinished uploads one day.
                "maintenance": {"uploadpurging": {"enabled": False}},
            },
            "http": {"addr": f"{LOOPBACK}:{self.port}", "secret": "regstat-tests"},
        }
        if self.schema1:
            config["compatibility"] = {"schema1": {"enabled": True}}
        return config

    def start(self) -> "Registry":
        if self._workdir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="regstat-registry-")
            self._workdir = Path(self._tmp.name)
        self._workdir.mkdir(parents=True, exist_ok=True)
        if self.root is not None:
            self.root.mkdir(parents=True, exist_ok=True)
        # A port can be taken between free_port() and bind; retry a few times on that race.
        for attempt in range(3):
            self.port = free_port()
            self.config_path = self._workdir / "config.yml"
            self.config_path.write_text(json.dumps(self.config(), indent=2))
            self.log_path = self._workdir / "registry.log"
            self._process = _Process(
                ["docker-registry", "serve", str(self.config_path)],
                self.log_path,
                # isolated_env drops AWS_CA_BUNDLE: the s3 driver panics at start-up with it.
                isolated_env(),
            )
            try:
                self._process.wait_until(f"{self.url}/v2/", {200}, "docker-registry")
                self._check_storage()
                return self
            except ComponentError as error:
                if "address already in use" not in str(error) or attempt == 2:
                    self.stop()  # the error carries the log tail; the temp dir can go
                    raise
                self._process.stop()
                self._process = None
        raise AssertionError("unreachable")

    def _check_storage(self) -> None:
        """``/v2/`` answers without touching storage (it says 200 even when the bucket does
        not exist); the catalog does, so a misconfigured driver fails here, with its log."""
        status = _http_status(f"{self.url}/v2/_catalog?n=1")
        if status != 200:
            raise ComponentError(
                f"docker-registry answers /v2/ but its catalog gives {status}: storage is "
                f"unusable; log {self.log_path}:\n{_log_tail(self.log_path)}"  # type: ignore[arg-type]
            )

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> "Registry":
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    # -- HTTP API

    def request(
        self,
        method: str,
        path_or_url: str,
        *,
        data: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        expect: Sequence[int] = (200,),
    ) -> tuple[int, dict[str, str], bytes]:
        """One HTTP request; returns (status, headers, body), raising unless status is in
        ``expect``."""
        url = path_or_url if path_or_url.startswith("http") else self.url + path_or_url
        request = urllib.request.Request(url, data=data, method=method, headers=dict(headers or {}))
        try:
            with _OPENER.open(request, timeout=30) as response:
                status, got_headers, body = response.status, response.headers, response.read()
        except urllib.error.HTTPError as error:
            status, got_headers, body = error.code, error.headers, error.read()
        if status not in expect:
            raise ComponentError(
                f"{method} {url} -> {status}, expected {list(expect)}: {body[:500]!r}"
            )
        return status, {k.lower(): v for k, v in got_headers.items()}, body

    def _location(self, headers: Mapping[str, str]) -> str:
        location = headers["location"]
        return location if location.startswith("http") else self.url + location

    def start_upload(self, repo: str, data: bytes = b"") -> str:
        """Start a blob upload in ``repo`` and leave it in progress (after sending ``data``,
        if any). Returns the upload's uuid, the name of its ``_uploads/<uuid>`` directory."""
        _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        uuid = headers["docker-upload-uuid"]
        if data:
            self.request(
                "PATCH",
                self._location(headers),
                data=data,
                headers={"Content-Type": "application/octet-stream"},
                expect=(202,),
            )
        return uuid

    def put_blob(self, repo: str, data: bytes) -> str:
        """Upload ``data`` into ``repo`` monolithically (POST then PUT); return its digest."""
        digest = sha256_digest(data)
        _, headers, _ = self.request("POST", f"/v2/{repo}/blobs/uploads/", expect=(202,))
        location = self._location(headers)
        separator = "&" if "?" in location else "?"
        put_url = f"{location}{separator}digest={urllib.parse.quote(digest)}"
        _, headers, _ = self.request(
            "PUT",
            put_url,
            data=data,
            headers={"Content-Type": "application/octet-stream"},
            expect=(201,),
        )
        if headers.get("docker-content-digest") != digest:
            stored = headers.get("docker-content-digest")
            raise ComponentError(f"registry stored {stored}, sent {digest}")
        return digest

    def put_manifest(self, repo: str, reference: str, body: bytes, media_type: str) -> str:
        """PUT a manifest by tag or digest; return its digest (checked against the body)."""
        _, headers, _ = self.request(
            "PUT",
            f"/v2/{repo}/manifests/{reference}",
            data=body,
            headers={"Content-Type": media_type},
            expect=(201,),
        )
        digest = headers.get("docker-content-digest")
        if digest != sha256_digest(body):
            raise ComponentError(f"registry says {digest} for a manifest of {sha256_digest(body)}")
        return digest

    def delete_manifest(self, repo: str, digest: str) -> None:
        """DELETE a manifest by digest (the registry also drops tags pointing at it)."""
        self.request("DELETE", f"/v2/{repo}/manifests/{digest}", expect=(202,))

    def get_manifest(self, repo: str, reference: str) -> tuple[bytes, str, str]:
        """GET a manifest accepting every type; returns (body, media type, digest)."""
        _, headers, body = self.request(
            "GET",
            f"/v2/{repo}/manifests/{reference}",
            headers={"Accept": ", ".join(ALL_MANIFEST_TYPES)},
        )
        return body, headers.get("content-type", ""), headers.get("docker-content-digest", "")

    def catalog(self) -> list[str]:
        """Repository names from ``/v2/_catalog``."""
        _, _, body = self.request("GET", "/v2/_catalog?n=1000")
        return list(json.loads(body).get("repositories") or [])

    def tags(self, repo: str) -> list[str]:
        """Tag names of ``repo`` from ``/v2/<repo>/tags/list``."""
        _, _, body = self.request("GET", f"/v2/{repo}/tags/list")
        return sorted(json.loads(body).get("tags") or [])

    def push_image(self, repo: str, image: Image, reference: str | None = None) -> str:
        """Push ``image``'s blobs and manifest over the HTTP API (by tag, or by digest when
        ``reference`` is None); return the manifest digest."""
        for data in image.blobs.values():
            self.put_blob(repo, data)
        return self.put_manifest(repo, reference or image.digest, image.manifest, image.media_type)

    def push_index(self, repo: str, index: Index, reference: str | None = None) -> str:
        """Push an index's children by digest, then the index itself."""
        for child in index.children:
            self.push_image(repo, child)
        return self.put_manifest(repo, reference or index.digest, index.manifest, index.media_type)


# --- skopeo -----------------------------------------------------------------------------------

_SKOPEO_POLICY = {"default": [{"type": "insecureAcceptAnything"}]}


def skopeo_copy(
    layout: Path,
    layout_tag: str,
    registry: Registry,
    repo: str,
    tag: str,
    *,
    all_images: bool = False,
    format: str | None = None,
) -> None:
    """``skopeo copy oci:LAYOUT:TAG docker://REGISTRY/REPO:TAG``.

    ``format`` ("v2s2", "v2s1", "oci") converts the manifest; without it digests are
    preserved (``--preserve-digests`` makes skopeo fail rather than rewrite a manifest).
    """
    with tempfile.TemporaryDirectory(prefix="regstat-skopeo-") as tmp:
        policy = Path(tmp) / "policy.json"
        policy.write_text(json.dumps(_SKOPEO_POLICY))
        argv = ["skopeo", "--policy", str(policy), "copy", "--quiet", "--dest-tls-verify=false"]
        if all_images:
            argv.append("--all")
        if format is None:
            argv.append("--preserve-digests")
        else:
            argv += ["--format", format]
        argv += [f"oci:{layout}:{layout_tag}", f"docker://{registry.host}/{repo}:{tag}"]
        result = subprocess.run(argv, capture_output=True, text=True, env=isolated_env())
    if result.returncode != 0:
        raise ComponentError(f"{' '.join(argv)} failed ({result.returncode}):\n{result.stderr}")


def _descriptor_from_json(doc: Mapping[str, Any]) -> Descriptor:
    platform = doc.get("platform")
    return Descriptor(
        media_type=doc["mediaType"],
        digest=doc["digest"],
        size=int(doc["size"]),
        platform=images.Platform(platform["os"], platform["architecture"], platform.get("variant"))
        if platform
        else None,
        artifact_type=doc.get("artifactType"),
    )


def adopt_stored(model: Image, stored: bytes) -> Image:
    """``model`` with its manifest bytes replaced by ``stored`` (what skopeo actually pushed
    after converting it), once the stored manifest is checked to describe the same content.

    skopeo serialises a converted manifest its own way (Go field order), so its digest cannot
    be predicted; everything it points at must still match the model exactly.
    """
    doc = json.loads(stored)
    checks = {
        "mediaType": (doc.get("mediaType"), model.media_type),
        "config": (_descriptor_from_json(doc["config"]), model.config),
        "layers": (tuple(_descriptor_from_json(d) for d in doc["layers"]), model.layers),
    }
    for what, (got, want) in checks.items():
        if got != want:
            raise ComponentError(f"pushed manifest's {what} is {got}, expected {want}")
    return replace(model, manifest=stored)


def check_stored(registry: Registry, repo: str, reference: str, model: Manifest) -> None:
    """Read ``repo:reference`` back and require the exact bytes and type of ``model``."""
    body, media_type, digest = registry.get_manifest(repo, reference)
    if (body, media_type, digest) != (model.manifest, model.media_type, model.digest):
        raise ComponentError(
            f"{repo}:{reference} holds {digest} ({media_type}), expected {model.digest} "
            f"({model.media_type})"
        )


def push_schema1(registry: Registry, layout: Path, layout_tag: str, repo: str, tag: str) -> bytes:
    """Push an OCI layout image as Docker schema 1 (skopeo ``--format v2s1``); return the
    manifest bytes the registry stored.

    Needs ``Registry(schema1=True)``: distribution 2.8 otherwise answers 500 "manifest schema
    v1 unsupported". The registry stores the JWS *payload* (the manifest without its
    ``signatures``) and re-signs it with its own key when serving it, so the stored blob is
    smaller than what ``GET`` returns, and the digest is that payload's.
    """
    skopeo_copy(layout, layout_tag, registry, repo, tag, format="v2s1")
    served, media_type, digest = registry.get_manifest(repo, tag)
    if media_type != images.DOCKER_SCHEMA1_SIGNED:
        raise ComponentError(f"{repo}:{tag} is served as {media_type}")
    payload = schema1_payload(served)
    if sha256_digest(payload) != digest:
        raise ComponentError(f"schema 1 payload hashes to {sha256_digest(payload)}, not {digest}")
    return payload


def schema1_payload(signed: bytes) -> bytes:
    """The signed payload of a schema 1 JWS manifest (libtrust's "pretty JWS" form): the
    body up to ``formatLength`` followed by the decoded ``formatTail`` of a signature."""
    import base64

    protected = json.loads(signed)["signatures"][0]["protected"]
    header = json.loads(base64.urlsafe_b64decode(protected + "=" * (-len(protected) % 4)))
    tail = header["formatTail"]
    return signed[: header["formatLength"]] + base64.urlsafe_b64decode(tail + "=" * (-len(tail) % 4))


# --- what a registry holds ----------------------------------------------------------------------
# Row types name their fields after the snapshot's columns (docs/snapshot.md), so a test can
# select exactly these columns from a snapshot table and compare sets of tuples.


class RepositoryRow(NamedTuple):
    repository: str
    complete: bool = True
    error_count: int = 0


class TagRow(NamedTuple):
    repository: str
    tag: str
    digest: str


class ManifestRow(NamedTuple):
    repository: str
    digest: str
    media_type: str
    artifact_type: str | None
    config_media_type: str | None
    size: int
    subject_digest: str | None
    status: str = "ok"


class DescriptorRow(NamedTuple):
    repository: str
    manifest_digest: str
    role: str
    position: int
    digest: str
    media_type: str | None
    size: int
    platform: str | None
    artifact_type: str | None


class BlobRow(NamedTuple):
    digest: str
    size: int
    stored: bool = True


class RepositoryBlobRow(NamedTuple):
    repository: str
    digest: str


class UploadRow(NamedTuple):
    repository: str
    uuid: str
    size: int  # bytes sent; only the filesystem driver keeps them as a `data` file


ROW_TYPES: dict[str, type] = {
    "repositories": RepositoryRow,
    "tags": TagRow,
    "manifests": ManifestRow,
    "descriptors": DescriptorRow,
    "blobs": BlobRow,
    "repository_blobs": RepositoryBlobRow,
    "uploads": UploadRow,
}


@dataclass
class Expected:
    """Exactly what a populated registry's storage holds, table by table.

    ``names`` maps the scenario's symbolic names (``"web_old"``, ``"signature"``,
    ``"unreferenced_blob"``, ``"upload"``, …) to digests or upload uuids, so tests can talk
    about a particular object without recomputing it.
    """

    repositories: set[RepositoryRow] = field(default_factory=set)
    tags: set[TagRow] = field(default_factory=set)
    manifests: set[ManifestRow] = field(default_factory=set)
    descriptors: set[DescriptorRow] = field(default_factory=set)
    blobs: set[BlobRow] = field(default_factory=set)
    repository_blobs: set[RepositoryBlobRow] = field(default_factory=set)
    uploads: set[UploadRow] = field(default_factory=set)
    names: dict[str, str] = field(default_factory=dict)

    def table(self, name: str) -> set[tuple[Any, ...]]:
        """The rows of table ``name``."""
        return getattr(self, name)  # type: ignore[no-any-return]

    def to_json(self) -> dict[str, Any]:
        """A JSON-able dict: each table a sorted list of {column: value} objects."""
        out: dict[str, Any] = {
            "format": "regstat.tests.expected/1",
            "names": dict(sorted(self.names.items())),
        }
        for name in ROW_TYPES:
            rows = sorted(self.table(name), key=_sort_key)
            out[name] = [row._asdict() for row in rows]
        return out

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> "Expected":
        tables = {name: {row_type(**row) for row in doc[name]} for name, row_type in ROW_TYPES.items()}
        return cls(**tables, names=dict(doc["names"]))


class Populated(NamedTuple):
    """A registry holding the standard scenario, and what its storage holds."""

    registry: "Registry"
    expected: Expected


def _sort_key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    # None sorts before everything, without comparing None with str.
    return tuple((value is not None, value) for value in row)


class _Recorder:
    """Builds an :class:`Expected` while the scenario is pushed, mirroring what the registry
    does to its storage (links, overwritten tags, deletions that leave blobs behind)."""

    def __init__(self) -> None:
        self.repositories: set[str] = set()
        self.tags: dict[tuple[str, str], str] = {}
        self.manifests: dict[tuple[str, str], ManifestRow] = {}
        self.descriptors: dict[tuple[str, str], list[DescriptorRow]] = {}
        self.blobs: dict[str, int] = {}
        self.links: set[RepositoryBlobRow] = set()
        self.uploads: set[UploadRow] = set()
        self.names: dict[str, str] = {}

    def blob(self, repo: str, data: bytes) -> str:
        """A blob uploaded into ``repo``: stored once registry-wide, linked into ``repo``."""
        digest = sha256_digest(data)
        self.repositories.add(repo)
        self.blobs[digest] = len(data)
        self.links.add(RepositoryBlobRow(repo, digest))
        return digest

    def image(self, repo: str, image: Image) -> str:
        """An image manifest put into ``repo`` after its blobs were uploaded there."""
        for data in image.blobs.values():
            self.blob(repo, data)
        rows = [self._descriptor(repo, image.digest, "config", 0, image.config)]
        rows += [self._descriptor(repo, image.digest, "layer", i, d) for i, d in enumerate(image.layers)]
        if image.subject is not None:
            rows.append(self._descriptor(repo, image.digest, "subject", 0, image.subject))
        return self._manifest(repo, image, image.config.media_type, rows)

    def index(self, repo: str, index: Index) -> str:
        """An index put into ``repo`` after its children were put there by digest."""
        for child in index.children:
            self.image(repo, child)
        rows = [
            self._descriptor(repo, index.digest, "manifest", i, d)
            for i, d in enumerate(index.child_descriptors)
        ]
        return self._manifest(repo, index, None, rows)

    def schema1(self, repo: str, payload: bytes, layers: Mapping[str, bytes]) -> str:
        """A Docker schema 1 manifest (stored as its JWS payload) and its layers.

        Schema 1 layers have no media type or size of their own: the descriptor's size is
        the stored blob's, and positions follow ``fsLayers`` as stored (newest layer first).
        """
        for data in layers.values():
            self.blob(repo, data)
        digest = sha256_digest(payload)
        fs_layers = [entry["blobSum"] for entry in json.loads(payload)["fsLayers"]]
        rows = [
            DescriptorRow(repo, digest, "layer", i, d, None, self.blobs[d], None, None)
            for i, d in enumerate(fs_layers)
        ]
        self.blobs[digest] = len(payload)
        self.manifests[(repo, digest)] = ManifestRow(
            repo, digest, images.DOCKER_SCHEMA1_SIGNED, None, None, len(payload), None
        )
        self.descriptors[(repo, digest)] = rows
        return digest

    def tag(self, repo: str, tag: str, digest: str) -> None:
        self.tags[(repo, tag)] = digest

    def delete(self, repo: str, digest: str) -> None:
        """A manifest deleted through the API: its revision link and every tag pointing at it
        go; its blob and its config and layers stay stored and linked (until a GC)."""
        del self.manifests[(repo, digest)]
        del self.descriptors[(repo, digest)]
        for key in [k for k, v in self.tags.items() if k[0] == repo and v == digest]:
            del self.tags[key]

    def upload(self, repo: str, uuid: str, size: int) -> None:
        self.repositories.add(repo)
        self.uploads.add(UploadRow(repo, uuid, size))

    def expected(self) -> Expected:
        return Expected(
            repositories={RepositoryRow(r) for r in self.repositories},
            tags={TagRow(r, t, d) for (r, t), d in self.tags.items()},
            manifests=set(self.manifests.values()),
            descriptors={row for rows in self.descriptors.values() for row in rows},
            blobs={BlobRow(d, size) for d, size in self.blobs.items()},
            repository_blobs=set(self.links),
            uploads=set(self.uploads),
            names=dict(self.names),
        )

    def _descriptor(
        self, repo: str, manifest: str, role: str, position: int, d: Descriptor
    ) -> DescriptorRow:
        platform = str(d.platform) if d.platform is not None else None
        return DescriptorRow(
            repo, manifest, role, position, d.digest, d.media_type, d.size, platform, d.artifact_type
        )

    def _manifest(
        self, repo: str, m: Manifest, config_type: str | None, rows: list[DescriptorRow]
    ) -> str:
        self.repositories.add(repo)
        self.blobs[m.digest] = m.size  # a manifest is itself a stored blob (not linked)
        artifact_type = m.artifact_type if isinstance(m, Image) else None
        subject = m.subject.digest if isinstance(m, Image) and m.subject else None
        self.manifests[(repo, m.digest)] = ManifestRow(
            repo, m.digest, m.media_type, artifact_type, config_type, m.size, subject
        )
        self.descriptors[(repo, m.digest)] = rows
        return m.digest


# --- the standard scenario ----------------------------------------------------------------------


def filler(seed: str, size: int) -> bytes:
    """``size`` deterministic, incompressible bytes (so layer sizes stay predictable)."""
    out = bytearray()
    counter = 0
    while len(out) < size:
        out += hashlib.sha256(f"{seed}:{counter}".encode()).digest()
        counter += 1
    return bytes(out[:size])


@dataclass(frozen=True)
class Scenario:
    """The images of the standard scenario, built in memory (see :func:`populate`)."""

    alpine: Image
    web_old: Image
    web_new: Image
    web_deleted: Image
    api_oci: Image  # pushed with `--format v2s2`; the registry holds a Docker schema 2 form
    api_docker: Image  # the Docker schema 2 model of api_oci (its manifest bytes are skopeo's)
    cli_index: Index
    cli_list: Index  # a Docker manifest list of Docker schema 2 images of the same content
    legacy: Image  # pushed as Docker schema 1, only when asked for
    unreferenced_blob: bytes
    upload_data: bytes


def standard_scenario() -> Scenario:
    """Build the standard scenario's images. Layers are a few KB; ``base`` is shared."""
    base = images.make_layer(
        {
            "etc/os-release": b"NAME=regstat-base\nVERSION_ID=3.19\n",
            "bin/busybox": filler("busybox", 3000),
        }
    )
    web1 = images.make_layer(
        {"srv/web/index.html": b"<h1>v1</h1>\n", "srv/web/app": filler("web1", 1500)}
    )
    web2 = images.make_layer(
        {"srv/web/index.html": b"<h1>v2</h1>\n", "srv/web/app": filler("web2", 1500)}
    )
    web_tmp = images.make_layer({"srv/web/debug": filler("web-debug", 1200)})
    api = images.make_layer({"srv/api/server": filler("api", 2000)})
    amd64 = images.Platform("linux", "amd64")
    arm64 = images.Platform("linux", "arm64", "v8")
    cli_layers = {
        amd64: images.make_layer({"usr/bin/cli": filler("cli-amd64", 1000)}),
        arm64: images.make_layer({"usr/bin/cli": filler("cli-arm64", 1000)}),
    }

    def cli(platform: images.Platform, docker: bool) -> Image:
        return images.build_image(
            [cli_layers[platform]], platform=platform, docker=docker, cmd=["/usr/bin/cli"]
        )

    return Scenario(
        alpine=images.build_image([base], labels={"name": "base"}),
        web_old=images.build_image([base, web1], labels={"name": "web", "version": "1"}),
        web_new=images.build_image([base, web2], labels={"name": "web", "version": "2"}),
        web_deleted=images.build_image([base, web_tmp], labels={"name": "web", "version": "debug"}),
        api_oci=images.build_image([base, api], labels={"name": "api"}),
        api_docker=images.build_image([base, api], labels={"name": "api"}, docker=True),
        cli_index=images.build_index([cli(amd64, False), cli(arm64, False)]),
        cli_list=images.build_index([cli(amd64, True), cli(arm64, True)], docker=True),
        legacy=images.build_image([base, images.make_layer({"opt/legacy": filler("legacy", 800)})]),
        unreferenced_blob=b"an uploaded blob that no manifest references\n" + filler("orphan", 500),
        upload_data=filler("upload", 700),
    )


def populate(registry: Registry, *, schema1: bool = False) -> Expected:
    """Push the standard scenario into ``registry`` and return what its storage then holds.

    - ``base/alpine``: one OCI image tagged ``3.19`` and ``latest`` (skopeo).
    - ``apps/web``: ``latest`` pushed, then overwritten by a newer image (also tagged ``v2``),
      leaving the old manifest untagged; an image pushed as ``tmp`` then deleted by digest
      (its config, layer and manifest blob stay stored and linked); a blob uploaded and
      referenced by nothing; an upload left in progress. Both images share ``base``'s layer.
    - ``apps/api``: ``v1`` pushed as Docker schema 2 (skopeo ``--format v2s2``), sharing the
      base layer; a cosign-style signature (OCI 1.1 ``subject`` + ``artifactType``) pushed by
      digest, as distribution 2.8 has no referrers API, and tagged ``sha256-<hex>.sig`` too.
    - ``tools/cli``: ``v1`` an OCI index for linux/amd64 and linux/arm64/v8 (skopeo ``--all``);
      ``v1-docker`` a Docker manifest list of the same content (HTTP API).
    - ``legacy/app`` (``schema1=True`` only, needs ``Registry(schema1=True)``): ``v1`` a
      Docker schema 1 image.
    """
    s = standard_scenario()
    rec = _Recorder()
    with tempfile.TemporaryDirectory(prefix="regstat-layout-") as tmp:
        layout = images.write_oci_layout(
            Path(tmp),
            {
                "alpine": s.alpine,
                "web-old": s.web_old,
                "web-new": s.web_new,
                "api": s.api_oci,
                "cli": s.cli_index,
                "legacy": s.legacy,
            },
        )
        _push_base(registry, layout, s, rec)
        _push_web(registry, layout, s, rec)
        _push_api(registry, layout, s, rec)
        _push_cli(registry, layout, s, rec)
        if schema1:
            _push_legacy(registry, layout, s, rec)
    return rec.expected()


def _push_base(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "base/alpine"
    skopeo_copy(layout, "alpine", registry, repo, "3.19")
    check_stored(registry, repo, "3.19", s.alpine)
    rec.names["base"] = rec.image(repo, s.alpine)
    rec.names["base_layer"] = s.alpine.layers[0].digest
    rec.tag(repo, "3.19", s.alpine.digest)
    # A second tag on the same manifest: a plain manifest PUT by tag.
    registry.put_manifest(repo, "latest", s.alpine.manifest, s.alpine.media_type)
    rec.tag(repo, "latest", s.alpine.digest)


def _push_web(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "apps/web"
    skopeo_copy(layout, "web-old", registry, repo, "latest")
    rec.names["web_old"] = rec.image(repo, s.web_old)
    rec.tag(repo, "latest", s.web_old.digest)
    skopeo_copy(layout, "web-new", registry, repo, "latest")
    check_stored(registry, repo, "latest", s.web_new)
    rec.names["web_new"] = rec.image(repo, s.web_new)
    rec.tag(repo, "latest", s.web_new.digest)
    registry.put_manifest(repo, "v2", s.web_new.manifest, s.web_new.media_type)
    rec.tag(repo, "v2", s.web_new.digest)

    registry.push_image(repo, s.web_deleted, "tmp")
    rec.names["web_deleted"] = rec.image(repo, s.web_deleted)
    rec.tag(repo, "tmp", s.web_deleted.digest)
    registry.delete_manifest(repo, s.web_deleted.digest)
    rec.delete(repo, s.web_deleted.digest)

    registry.put_blob(repo, s.unreferenced_blob)
    rec.names["unreferenced_blob"] = rec.blob(repo, s.unreferenced_blob)
    uuid = registry.start_upload(repo, s.upload_data)
    rec.upload(repo, uuid, len(s.upload_data))
    rec.names["upload"] = uuid


def _push_api(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "apps/api"
    skopeo_copy(layout, "api", registry, repo, "v1", format="v2s2")
    stored, media_type, _ = registry.get_manifest(repo, "v1")
    api = adopt_stored(s.api_docker, stored)
    rec.names["api_v1"] = rec.image(repo, api)
    rec.tag(repo, "v1", api.digest)

    # The identity is fixed (not the registry's random port) to keep sample_data stable.
    payload = images.canonical_json(
        {
            "critical": {
                "identity": {"docker-reference": "registry.example/apps/api"},
                "image": {"docker-manifest-digest": api.digest},
                "type": "cosign container image signature",
            },
            "optional": None,
        }
    )
    signature = images.build_referrer(api.descriptor(), payload)
    registry.push_image(repo, signature)  # by digest: untagged, found through `subject`
    rec.names["signature"] = rec.image(repo, signature)
    # cosign's tag-schema fallback for registries without a referrers API.
    fallback = "sha256-" + api.digest.split(":", 1)[1] + ".sig"
    registry.put_manifest(repo, fallback, signature.manifest, signature.media_type)
    rec.tag(repo, fallback, signature.digest)


def _push_cli(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "tools/cli"
    skopeo_copy(layout, "cli", registry, repo, "v1", all_images=True)
    check_stored(registry, repo, "v1", s.cli_index)
    for child in s.cli_index.children:
        check_stored(registry, repo, child.digest, child)
    rec.names["cli_index"] = rec.index(repo, s.cli_index)
    rec.tag(repo, "v1", s.cli_index.digest)

    registry.push_index(repo, s.cli_list, "v1-docker")
    rec.names["cli_list"] = rec.index(repo, s.cli_list)
    rec.tag(repo, "v1-docker", s.cli_list.digest)


def _push_legacy(registry: Registry, layout: Path, s: Scenario, rec: _Recorder) -> None:
    repo = "legacy/app"
    payload = push_schema1(registry, layout, "legacy", repo, "v1")
    layers = {d.digest: s.legacy.blobs[d.digest] for d in s.legacy.layers}
    rec.names["legacy"] = rec.schema1(repo, payload, layers)
    rec.tag(repo, "v1", rec.names["legacy"])


# --- checking a registry's storage against Expected ------------------------------------------------
# Not a crawler: it only looks at which link files and blob data exist (and reads tag links),
# to prove the fixtures push what Expected says, independently of regstat.

LAYOUT_PREFIX = "docker/registry/v2/"


class StorageView:
    """Read-only access to a registry's tree: paths are relative to ``docker/registry/v2``."""

    def files(self) -> dict[str, int]:
        """Every file (object) with its size."""
        raise NotImplementedError

    def read(self, path: str) -> bytes:
        raise NotImplementedError


class FilesystemView(StorageView):
    def __init__(self, root: Path) -> None:
        self.base = root / LAYOUT_PREFIX

    def files(self) -> dict[str, int]:
        return {
            p.relative_to(self.base).as_posix(): p.stat().st_size
            for p in self.base.rglob("*")
            if p.is_file()
        }

    def read(self, path: str) -> bytes:
        return (self.base / path).read_bytes()


class S3View(StorageView):
    def __init__(self, storage: S3Storage) -> None:
        self.storage = storage
        self.prefix = storage.key_prefix + LAYOUT_PREFIX
        self._client = aws_client("s3", storage.endpoint_url)

    def files(self) -> dict[str, int]:
        out: dict[str, int] = {}
        paginator = self._client.get_paginator("list_objects_v2")
        for page in paginator.paginate(Bucket=self.storage.bucket, Prefix=self.prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"][len(self.prefix) :]] = int(obj["Size"])
        return out

    def read(self, path: str) -> bytes:
        response = self._client.get_object(Bucket=self.storage.bucket, Key=self.prefix + path)
        return bytes(response["Body"].read())


def storage_view(registry: Registry) -> StorageView:
    """A view of ``registry``'s storage, whichever driver it uses."""
    if registry.root is not None:
        return FilesystemView(registry.root)
    assert registry.s3 is not None
    return S3View(registry.s3)


def aws_client(service: str, endpoint_url: str) -> Any:
    """A boto3 client for ``service`` at ``endpoint_url`` with the dummy credentials."""
    import boto3  # imported here: scripts that never use S3 need not load boto3

    return boto3.client(
        service,
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=DUMMY_CREDENTIALS["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=DUMMY_CREDENTIALS["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=DUMMY_CREDENTIALS["AWS_SESSION_TOKEN"],
    )


@dataclass
class _Observed:
    blobs: set[tuple[str, int]] = field(default_factory=set)
    revisions: set[tuple[str, str]] = field(default_factory=set)
    tags: set[tuple[str, str, str]] = field(default_factory=set)
    layers: set[tuple[str, str]] = field(default_factory=set)
    uploads: set[tuple[str, str]] = field(default_factory=set)
    upload_sizes: dict[tuple[str, str], int] = field(default_factory=dict)


def _observe(view: StorageView) -> _Observed:
    seen = _Observed()
    for path, size in view.files().items():
        parts = path.split("/")
        if parts[0] == "blobs" and parts[-1] == "data":
            seen.blobs.add((f"{parts[1]}:{parts[3]}", size))
        elif parts[0] == "repositories":
            _observe_repository_file(view, parts[1:], size, seen)
    return seen


def _observe_repository_file(view: StorageView, parts: list[str], size: int, seen: _Observed) -> None:
    for marker in ("_manifests", "_layers", "_uploads"):
        if marker in parts:
            at = parts.index(marker)
            repo, rest = "/".join(parts[:at]), parts[at + 1 :]
            break
    else:
        raise ComponentError(f"unexpected file in repositories/: {'/'.join(parts)}")
    if marker == "_layers" and rest[-1] == "link":
        seen.layers.add((repo, f"{rest[0]}:{rest[1]}"))
    elif marker == "_uploads":
        seen.uploads.add((repo, rest[0]))
        if rest[1:] == ["data"]:
            seen.upload_sizes[(repo, rest[0])] = size
    elif rest[0] == "revisions" and rest[-1] == "link":
        seen.revisions.add((repo, f"{rest[1]}:{rest[2]}"))
    elif rest[0] == "tags" and rest[2:] == ["current", "link"]:
        target = view.read("/".join(["repositories", *parts])).decode()
        seen.tags.add((repo, rest[1], target))


def verify_tree(view: StorageView, expected: Expected, *, upload_sizes: bool = True) -> None:
    """Raise ComponentError unless the tree holds exactly what ``expected`` says: blob data
    and sizes, revision, tag and layer links, and uploads (with their ``data`` sizes when
    ``upload_sizes``: the S3 driver keeps a partial upload as a multipart upload, not a file).
    """
    seen = _observe(view)
    want = _Observed(
        blobs={(b.digest, b.size) for b in expected.blobs},
        revisions={(m.repository, m.digest) for m in expected.manifests},
        tags=set(expected.tags),
        layers=set(expected.repository_blobs),
        uploads={(u.repository, u.uuid) for u in expected.uploads},
        upload_sizes={(u.repository, u.uuid): u.size for u in expected.uploads},
    )
    names = ["blobs", "revisions", "tags", "layers", "uploads"]
    if upload_sizes:
        names.append("upload_sizes")
    problems = []
    for name in names:
        got, exp = getattr(seen, name), getattr(want, name)
        if got != exp:
            problems.append(f"{name}: {got}, expected {exp}")
    if problems:
        raise ComponentError("storage differs from Expected:\n" + "\n".join(problems))


def verify_api(registry: Registry, expected: Expected) -> None:
    """Raise ComponentError unless the registry's catalog and tag lists match ``expected``."""
    problems = []
    repositories = sorted(r.repository for r in expected.repositories)
    if registry.catalog() != repositories:
        problems.append(f"catalog {registry.catalog()}, expected {repositories}")
    for repo in repositories:
        tags = sorted(t.tag for t in expected.tags if t.repository == repo)
        if registry.tags(repo) != tags:
            problems.append(f"{repo} tags {registry.tags(repo)}, expected {tags}")
    if problems:
        raise ComponentError("registry API differs from Expected:\n" + "\n".join(problems))


def verify_storage(registry: Registry, expected: Expected) -> None:
    """:func:`verify_tree` on the registry's storage, then :func:`verify_api`."""
    verify_tree(storage_view(registry), expected, upload_sizes=registry.root is not None)
    verify_api(registry, expected)
