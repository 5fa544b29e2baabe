"""Secrets never leave regstat: every output of crawls done with known secrets, searched.

Crawls of the registry API with a Basic password and with bearer tokens (issued by the test
token service), of ACR's stand-in with its admin password, a scoped token, a refresh token
and an Entra ID token (through a stub az), of S3 and ECR on moto with a distinctive AWS secret key and session token;
successful ones, failing ones (wrong password, missing bucket, unreachable endpoint) and
incomplete ones (a registry that echoes the Authorization header it got in its error
bodies). Searched: stdout and stderr (with --json), every file of every snapshot (and the
Parquet tables decoded, since pages may be compressed), and the output of `regstat report`
in every format and of `regstat sql` in every format. Searched for: each secret, its base64
forms, the Basic header's base64, and the head and tail of each token (a message cut short
must not keep part of one).
"""

from __future__ import annotations

import base64
import json
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from support import images
from support.acr_components import PopulatedAcr
from support.api_components import Canned, FaultProxy, TokenServer
from support.auth_registries import PASSWORD, USER
from support.components import Registry, aws_client, free_port, isolated_env
from support.crawls import REPO_ROOT, api_crawl

from regstat.cli import main

SAMPLE = REPO_ROOT / "tests" / "scenario_tree"
AWS_SECRET = "regstat-aws-S3CR3T-key-9f1c2e7d0b"
AWS_SESSION = "regstat-aws-session-T0KEN-4a5b6c7d"
AWS_CREDENTIALS = {"AWS_ACCESS_KEY_ID": "AKIAREGSTATTEST0001", "AWS_SECRET_ACCESS_KEY": AWS_SECRET,
                   "AWS_SESSION_TOKEN": AWS_SESSION, "AWS_MAX_ATTEMPTS": "2"}  # fmt: skip


class Outputs:
    """Everything regstat wrote, by where it came from."""

    def __init__(self) -> None:
        self.found: list[tuple[str, bytes]] = []
        self.snapshots: list[Path] = []

    def run(self, name: str, result: subprocess.CompletedProcess[str], out: Path, codes: tuple[int, ...]) -> None:
        assert result.returncode in codes, f"{name}: exit {result.returncode}\n{result.stderr}"
        assert "Traceback" not in result.stderr, f"{name}:\n{result.stderr}"
        self.found += [(f"{name} stdout", result.stdout.encode()), (f"{name} stderr", result.stderr.encode())]
        if out.exists():
            self.snapshots.append(out)
            for path in sorted(p for p in out.rglob("*") if p.is_file()):
                self.found.append((str(path), path.read_bytes()))
                if path.suffix == ".parquet":
                    rows = pq.read_table(path).to_pylist()
                    self.found.append((f"{path} rows", json.dumps(rows, default=str).encode()))

    def analyse(self, tmp_path: Path) -> None:
        """`regstat report` in every format and `regstat sql` in every format, on every snapshot."""
        runner = CliRunner()
        for number, snapshot in enumerate(self.snapshots):
            commands = [["report", str(snapshot), "-f", fmt] for fmt in ("text", "json", "markdown", "html")]
            commands += [["sql", str(snapshot), "-f", fmt] for fmt in ("table", "csv", "json")]
            query = "SELECT e.*, i.* FROM errors AS e FULL JOIN snapshot_info AS i ON TRUE"
            commands += [["sql", str(snapshot), query, "-f", fmt] for fmt in ("table", "csv", "json")]
            saved = tmp_path / f"sql-{number}.parquet"
            commands.append(["sql", str(snapshot), query, "-f", "parquet", "-o", str(saved)])
            for argv in commands:
                result = runner.invoke(main, argv)
                assert result.exit_code == 0 and result.exception is None, (argv, result.output, result.exception)
                self.found += [(" ".join(argv), result.stdout.encode()),
                               (" ".join(argv) + " stderr", result.stderr.encode())]
            self.found += [(str(saved), saved.read_bytes()),
                           (f"{saved} rows", str(pq.read_table(saved).to_pylist()).encode())]

    def assert_free_of(self, secrets: Mapping[str, str]) -> None:
        assert len(self.found) > 50 and self.snapshots
        for what, secret in secrets.items():
            assert len(secret) >= 16, what  # long enough that a hit is no accident
            for where, data in self.found:
                assert secret.encode() not in data, f"{what} in {where}"


def forms(name: str, secret: str) -> dict[str, str]:
    """A secret and its base64 forms (standard and URL-safe, unpadded)."""
    encoded = base64.b64encode(secret.encode()).decode()
    return {name: secret, f"{name} base64": encoded.rstrip("="),
            f"{name} base64url": encoded.translate(str.maketrans("+/", "-_")).rstrip("=")}


def token_forms(number: int, token: str) -> dict[str, str]:
    return {**forms(f"token {number}", token), f"token {number} head": token[:32], f"token {number} tail": token[-32:]}


def echo_authorization(repository: str) -> Any:
    """A registry that refuses one repository and echoes what it got: the Authorization
    header, and the pair in it when it is Basic, once it gets one."""

    def respond(method: str, path: str, headers: Mapping[str, str]) -> Canned | None:
        sent = headers.get("Authorization", "")
        if not path.startswith(f"/v2/{repository}/") or not sent:
            return None  # the registry answers, with its challenge when nothing was sent
        scheme, _, value = sent.partition(" ")
        pair = base64.b64decode(value).decode() if scheme == "Basic" else ""
        message = f"denied: you sent {sent!s} ({pair})"
        body = json.dumps({"errors": [{"code": "DENIED", "message": message}]}).encode()
        return 403, {"Content-Type": "application/json"}, body

    return respond


@pytest.fixture
def echoing(htpasswd_registry: Registry, token_registry: Registry) -> Iterator[tuple[FaultProxy, FaultProxy]]:
    """Proxies that echo credentials for apps/web: in front of Basic, and of bearer auth."""
    with FaultProxy(htpasswd_registry.url) as basic, FaultProxy(token_registry.url) as bearer:
        basic.respond = bearer.respond = echo_authorization("apps/web")  # type: ignore[attr-defined]
        yield basic, bearer  # type: ignore[misc]


@pytest.mark.registry
def test_registry_secrets_never_appear(
    htpasswd_registry: Registry,
    token_registry: Registry,
    token_server: TokenServer,
    echoing: tuple[FaultProxy, FaultProxy],
    tmp_path: Path,
) -> None:
    outputs = Outputs()
    basic, bearer = echoing
    for name, url, password, codes in [
        ("basic", htpasswd_registry.url, PASSWORD, (0,)),
        ("basic-wrong", htpasswd_registry.url, PASSWORD + "-wrong", (4,)),
        ("basic-echo", basic.url, PASSWORD, (3,)),
        ("bearer", token_registry.url, PASSWORD, (0,)),
        ("bearer-wrong", token_registry.url, PASSWORD + "-wrong", (4,)),
        ("bearer-echo", bearer.url, PASSWORD, (3,)),
    ]:
        out = tmp_path / name
        outputs.run(name, api_crawl(url, out, "--json", password=password), out, codes)
    # The registries did echo the secrets, and regstat recorded what they said.
    echoed = [json.loads((tmp_path / n / "snapshot.json").read_text())["errors"] for n in ("basic-echo", "bearer-echo")]
    assert all(e and {x["kind"] for x in e} == {"denied"} and "***" in e[0]["message"] for e in echoed), echoed
    outputs.analyse(tmp_path)
    secrets = {**forms("password", PASSWORD), **forms("basic pair", f"{USER}:{PASSWORD}")}
    for number, token in enumerate(token_server.tokens()):
        secrets.update(token_forms(number, token))
    assert len(token_server.tokens()) >= 6
    outputs.assert_free_of(secrets)


@pytest.mark.registry
def test_acr_secrets_never_appear(populated_acr: PopulatedAcr, tmp_path: Path) -> None:
    acr_standin = populated_acr.standin
    outputs = Outputs()
    scoped_password = "scoped-S3CR3T-password-5e6f7a8b9c"
    acr_standin.scoped_token("ci-reader", scoped_password, ["apps/web"], catalog=True)
    refresh = acr_standin.refresh_token()
    stub = acr_standin.az_stub(tmp_path / "az")
    entra = {"PATH": f"{stub}:{isolated_env()['PATH']}"}
    admin, password = acr_standin.admin_username, acr_standin.admin_password
    for name, user, secret, args, env, codes in [
        ("admin", admin, password, [], {}, (0,)),
        ("admin-wrong", admin, password + "-wrong", [], {}, (4,)),
        ("scoped", "ci-reader", scoped_password, [], {}, (3,)),  # other repositories: denied
        ("refresh", "00000000-0000-0000-0000-000000000000", refresh, [], {}, (0,)),
        ("entra", None, None, ["--azure-credential", "cli"], entra, (0,)),
    ]:
        out = tmp_path / name
        argv = [sys.executable, "-m", "regstat", "crawl", acr_standin.source, "-o", str(out), "--insecure",
                "--json", *args]
        argv += ["--username", user, "--password-stdin"] if user else []
        result = subprocess.run(argv, input=f"{secret}\n" if secret else "", capture_output=True, text=True,
                                env=isolated_env({"DOCKER_CONFIG": str(tmp_path / "none"), **env}), cwd=REPO_ROOT,
                                timeout=120)
        outputs.run(name, result, out, codes)
    outputs.analyse(tmp_path)
    secrets = {**forms("admin password", password), **forms("admin pair", f"{admin}:{password}"),
               **forms("scoped password", scoped_password), **token_forms(0, refresh),
               **token_forms(1, acr_standin.entra_token),
               # Every token the stand-in signs (refresh and access tokens) starts so.
               "a token's header": refresh.partition(".")[0]}
    outputs.assert_free_of(secrets)


@pytest.mark.s3
def test_aws_secrets_never_appear(moto_server: Any, tmp_path: Path) -> None:
    outputs = Outputs()
    s3 = moto_server.client("s3")
    bucket = moto_server.create_bucket(f"credentials-{free_port()}")
    for path in (SAMPLE / "docker").rglob("*"):
        if path.is_file():
            s3.put_object(Bucket=bucket, Key=f"reg/{path.relative_to(SAMPLE)}", Body=path.read_bytes())
    s3.put_object(Bucket=bucket, Key="reg/docker/registry/v2/repositories/apps/web/_manifests/tags/x/current/link",
                  Body=b"garbage")
    image = images.build_image([images.make_layer({"etc/motd": b"credentials\n"})])
    ecr = aws_client("ecr", moto_server.endpoint_url)
    ecr.create_repository(repositoryName=f"credentials/app-{bucket}")
    ecr.put_image(repositoryName=f"credentials/app-{bucket}", imageManifest=image.manifest.decode(),
                  imageManifestMediaType=image.media_type, imageDigest=image.digest, imageTag="v1")  # fmt: skip
    dead = f"http://127.0.0.1:{free_port()}"
    for name, source, endpoint, codes in [
        ("s3", f"s3://{bucket}/reg", moto_server.endpoint_url, (3,)),  # the garbage link: an error recorded
        ("s3-no-bucket", f"s3://{bucket}-missing/reg", moto_server.endpoint_url, (4,)),
        ("s3-unreachable", f"s3://{bucket}/reg", dead, (4,)),
        ("ecr", "ecr://us-east-1", moto_server.endpoint_url, (0, 3)),
        ("ecr-unreachable", "ecr://us-east-1", dead, (4,)),
    ]:
        out = tmp_path / name
        outputs.run(name, _aws_crawl(source, out, endpoint), out, codes)
    assert len(outputs.snapshots) == 2
    outputs.analyse(tmp_path)
    outputs.assert_free_of({**forms("secret key", AWS_SECRET), **forms("session token", AWS_SESSION)})


def _aws_crawl(source: str, out: Path, endpoint: str) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "regstat", "crawl", source, "-o", str(out), "--json", "--endpoint-url", endpoint]
    return subprocess.run(argv, capture_output=True, text=True, env=isolated_env(AWS_CREDENTIALS), cwd=REPO_ROOT,
                          timeout=120)  # fmt: skip
