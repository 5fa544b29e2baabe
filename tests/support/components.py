"""Real components for tests, on 127.0.0.1 only: moto's S3 server and Debian's docker-registry.

Also used by ``scripts/make_sample_data.py``, so nothing here depends on pytest.

- :class:`MotoServer` runs ``moto_server`` (an S3 stand-in); :func:`aws_client` talks to it.
- :class:`Registry` runs ``docker-registry serve`` (distribution 2.8.2) on filesystem or S3
  storage and offers a tiny client for its HTTP API (urllib only).
- :func:`isolated_env` is the environment of every child process: dummy AWS credentials.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from .images import ALL_MANIFEST_TYPES, Image, Index, sha256_digest

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


def find_executable(name: str) -> str | None:
    """``name`` from the running interpreter's bin directory (the venv), else from PATH."""
    beside = Path(sys.executable).parent / name
    return str(beside) if beside.exists() else shutil.which(name)


def _executable(name: str) -> str:
    found = find_executable(name)
    if found is None:
        raise ComponentError(f"{name} not found next to {sys.executable} or on PATH")
    return found


def _log_tail(path: Path, lines: int = 30) -> str:
    try:
        return "\n".join(path.read_text(errors="replace").splitlines()[-lines:])
    except OSError:
        return "(no log)"


# Loopback requests must never go through a proxy configured in the environment. Test
# registries serving TLS use throwaway certificates: this client does not verify them.
_OPENER = urllib.request.build_opener(
    urllib.request.ProxyHandler({}), urllib.request.HTTPSHandler(context=ssl._create_unverified_context())
)


def _http_status(url: str) -> int | None:
    """The HTTP status of GET ``url``, or None when nothing answers yet."""
    try:
        with _OPENER.open(url, timeout=2) as response:
            return int(response.status)
    except urllib.error.HTTPError as error:
        return int(error.code)
    except (urllib.error.URLError, ConnectionError, TimeoutError):
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


class _Service:
    """A process the tests start, with the temporary directory it may own."""

    _process: _Process | None = None
    _tmp: tempfile.TemporaryDirectory[str] | None = None

    def stop(self) -> None:
        if self._process is not None:
            self._process.stop()
            self._process = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None


class MotoServer(_Service):
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

    def start(self) -> MotoServer:
        if self._log_dir is None:
            self._tmp = tempfile.TemporaryDirectory(prefix="regstat-moto-")
            self._log_dir = Path(self._tmp.name)
        self.port = free_port()
        argv = [_executable("moto_server"), "-H", LOOPBACK, "-p", str(self.port)]
        self._process = _Process(argv, self._log_dir / "moto.log", isolated_env())
        # moto answers its own dashboard API once Flask is up.
        self._process.wait_until(f"{self.endpoint_url}/moto-api/", {200}, "moto_server")
        return self

    def __enter__(self) -> MotoServer:
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

    def upload_tree(self, name: str, root: Path, prefix: str) -> Any:
        """Create bucket ``name`` holding the files of the storage tree ``root`` (its
        ``docker/`` directory) under ``prefix/``; return the S3 client."""
        s3 = self.client("s3")
        s3.create_bucket(Bucket=name)
        for path in (root / "docker").rglob("*"):
            if path.is_file():
                s3.put_object(Bucket=name, Key=f"{prefix}/{path.relative_to(root)}", Body=path.read_bytes())
        return s3

    def list_keys(self, bucket: str, prefix: str = "") -> dict[str, int]:
        """Every object key under ``prefix`` with its size."""
        paginator = self.client("s3").get_paginator("list_objects_v2")
        out: dict[str, int] = {}
        for page in paginator.paginate(Bucket=bucket, Prefix=prefix):
            for obj in page.get("Contents", []):
                out[obj["Key"]] = int(obj["Size"])
        return out


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


class Registry(_Service):
    """``docker-registry serve`` on 127.0.0.1:<free port>, as a context manager.

    Storage is either a local directory (``root``, the directory that will hold
    ``docker/registry/v2``) or S3 (``s3``). Deletes are enabled. ``schema1`` enables pushing
    Docker schema 1 manifests (off by default, as in 2.8). ``auth`` is the registry's ``auth``
    configuration (``{"htpasswd": {...}}`` or ``{"token": {...}}``); off by default. ``tls``
    (certificate, key) serves HTTPS. A registry
    with auth can share ``root`` with one without, which is how tests fill it: this class's
    HTTP client and skopeo send no credentials.
    """

    def __init__(
        self,
        *,
        root: Path | None = None,
        s3: S3Storage | None = None,
        workdir: Path | None = None,
        schema1: bool = False,
        auth: Mapping[str, object] | None = None,
        tls: tuple[Path, Path] | None = None,
    ) -> None:
        if (root is None) == (s3 is None):
            raise ValueError("give exactly one of root= and s3=")
        self.root = root
        self.s3 = s3
        self.schema1 = schema1
        self.auth = dict(auth) if auth else None
        self.tls = tls  # (certificate, key): serve HTTPS
        self._workdir = workdir
        self._tmp: tempfile.TemporaryDirectory[str] | None = None
        self._process: _Process | None = None
        self.port = 0
        self.config_path: Path | None = None
        self.log_path: Path | None = None

    # -- lifecycle

    @property
    def url(self) -> str:
        return f"{'https' if self.tls else 'http'}://{LOOPBACK}:{self.port}"

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
        if self.auth:
            config["auth"] = self.auth
        if self.tls:
            config["http"]["tls"] = {"certificate": str(self.tls[0]), "key": str(self.tls[1])}  # type: ignore[index]
        return config

    def start(self) -> Registry:
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
                # With auth, /v2/ answers 401 to us: that is the registry up and asking.
                up = {200, 401} if self.auth else {200}
                self._process.wait_until(f"{self.url}/v2/", up, "docker-registry")
                if not self.auth:
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

    def __enter__(self) -> Registry:
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
