"""Accounts of their own on moto's ECR, and pushing into them (no registry involved).

:func:`account` (a pytest fixture) assumes a role in a fresh AWS account through moto's STS;
moto keeps each account's ECR apart, so tests never see each other's images. The crawl's
credentials (environment) become that role's, and AWS_ENDPOINT_URL moto's, as a user's would.
:func:`push_scenario` puts the standard scenario's images there, as ECR would hold them.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field
from typing import Any

import pytest

from . import images
from .components import REGION, MotoServer
from .expected import BlobRow, Expected, _Recorder
from .images import Image, Index, sha256_digest
from .scenario import standard_scenario

_accounts = itertools.count(210_000_000_001)


@dataclass
class Account:
    """A fresh AWS account on moto: credentials of a role assumed in it, and its ECR."""

    moto: MotoServer
    account_id: str
    credentials: dict[str, str]
    client: Any
    repositories: set[str] = field(default_factory=set)

    def repository(self, name: str, registry_id: str | None = None) -> None:
        if name not in self.repositories:
            extra = {"registryId": registry_id} if registry_id else {}
            self.client.create_repository(repositoryName=name, **extra)
            self.repositories.add(name)

    def put(self, repo: str, manifest: bytes, media_type: str, tag: str | None = None,
            digest: str | None = None, registry_id: str | None = None) -> str:
        """put_image, always naming the digest (moto invents one otherwise)."""
        self.repository(repo, registry_id)
        digest = digest or sha256_digest(manifest)
        extra = {"imageTag": tag} if tag else {}
        self.client.put_image(repositoryName=repo, imageManifest=manifest.decode(), imageManifestMediaType=media_type,
                              imageDigest=digest, **extra)
        return digest

    def push_image(self, repo: str, image: Image, tag: str | None = None) -> str:
        # ECR checks that layers were uploaded; moto does not, and the crawler never reads
        # blobs, so only manifests are put.
        return self.put(repo, image.manifest, image.media_type, tag)

    def push_index(self, repo: str, index: Index, tag: str | None = None) -> str:
        """Children first, untagged (ECR wants them present), then the index."""
        for child in index.children:
            self.push_image(repo, child)
        return self.put(repo, index.manifest, index.media_type, tag)


@pytest.fixture
def account(moto_server: MotoServer, monkeypatch: pytest.MonkeyPatch) -> Account:
    """A fresh account whose credentials are the crawl's (environment), and moto its endpoint."""
    account_id = str(next(_accounts))
    sts = moto_server.client("sts")
    role = f"arn:aws:iam::{account_id}:role/regstat-crawler"
    credentials = sts.assume_role(RoleArn=role, RoleSessionName="regstat-tests")["Credentials"]
    creds = {
        "AWS_ACCESS_KEY_ID": credentials["AccessKeyId"],
        "AWS_SECRET_ACCESS_KEY": credentials["SecretAccessKey"],
        "AWS_SESSION_TOKEN": credentials["SessionToken"],
    }
    for name, value in creds.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SECURITY_TOKEN", raising=False)
    monkeypatch.setenv("AWS_ENDPOINT_URL", moto_server.endpoint_url)
    return Account(moto_server, account_id, creds, _client_as(moto_server.endpoint_url, creds))


def _client_as(endpoint_url: str, creds: dict[str, str]) -> Any:
    import boto3

    return boto3.client(
        "ecr",
        endpoint_url=endpoint_url,
        region_name=REGION,
        aws_access_key_id=creds["AWS_ACCESS_KEY_ID"],
        aws_secret_access_key=creds["AWS_SECRET_ACCESS_KEY"],
        aws_session_token=creds["AWS_SESSION_TOKEN"],
    )


def push_scenario(account: Account) -> Expected:
    """The standard scenario's images, as ECR would hold them; returns the snapshot's rows.

    - ``base/alpine``: one OCI image tagged ``3.19`` and ``latest``.
    - ``apps/web``: ``latest`` and ``v2`` on the new image; the old one untagged (as a moved
      tag leaves it in ECR); both share ``base``'s layer, as does ``apps/api``.
    - ``apps/api``: ``v1`` a Docker schema 2 image, and an untagged cosign-style signature
      whose ``subject`` is it (OCI 1.1 referrer, ``artifactType``).
    - ``tools/cli``: ``v1`` an OCI index of two untagged children (linux/amd64, linux/arm64/v8),
      ``v1-docker`` a Docker manifest list of two more.
    """
    s = standard_scenario()
    rec = _Recorder()

    account.push_image("base/alpine", s.alpine, "3.19")
    account.push_image("base/alpine", s.alpine, "latest")
    rec.image("base/alpine", s.alpine)
    rec.tag("base/alpine", "3.19", s.alpine.digest)
    rec.tag("base/alpine", "latest", s.alpine.digest)

    account.push_image("apps/web", s.web_old)  # untagged: see the module docstring
    account.push_image("apps/web", s.web_new, "latest")
    account.push_image("apps/web", s.web_new, "v2")
    rec.image("apps/web", s.web_old)
    rec.image("apps/web", s.web_new)
    rec.tag("apps/web", "latest", s.web_new.digest)
    rec.tag("apps/web", "v2", s.web_new.digest)

    account.push_image("apps/api", s.api_docker, "v1")
    rec.image("apps/api", s.api_docker)
    rec.tag("apps/api", "v1", s.api_docker.digest)
    payload = images.canonical_json({"critical": {"image": {"docker-manifest-digest": s.api_docker.digest}}})
    signature = images.build_referrer(s.api_docker.descriptor(), payload)
    account.push_image("apps/api", signature)
    rec.image("apps/api", signature)
    rec.names["signature"] = signature.digest

    for index, tag in ((s.cli_index, "v1"), (s.cli_list, "v1-docker")):
        account.push_index("tools/cli", index, tag)
        rec.index("tools/cli", index)
        rec.tag("tools/cli", tag, index.digest)
    rec.names["base_layer"] = s.alpine.layers[0].digest
    return ecr_view(rec.expected())


def ecr_view(expected: Expected) -> Expected:
    """What a crawl of ECR gives for what was pushed: no blob is seen stored, none linked."""
    expected.blobs = {BlobRow(row.digest, row.size, stored=False) for row in expected.blobs}
    expected.repository_blobs = set()
    return expected
