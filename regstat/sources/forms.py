"""The forms a crawl's SOURCE takes, and what to tell a user whose SOURCE has none of them.

People reach for the forms other tools take: skopeo's `docker://HOST/REPOSITORY:TAG`, a
bare host name as `docker pull` takes it, `http:/host` with a slash lost. regstat reads none
of these, and guessing would crawl something the user did not name, so it refuses (exit code
4, nothing written) with every form it reads and the one the user most likely meant.
"""

from __future__ import annotations

import os
from urllib.parse import urlsplit

from ..errors import SourceError
from ..model import is_registry_host

FORMS = (
    ("PATH, file://PATH", "a distribution registry's storage root (the directory holding docker/registry/v2)"),
    ("s3://BUCKET[/PREFIX]", "the same tree in S3"),
    ("https://HOST[:PORT]", "any registry, through the OCI Distribution API (-r names repositories)"),
    ("acr://NAME.azurecr.io", "Azure Container Registry, through its own API (also acr://HOST[:PORT])"),
    ("ecr://REGION", "AWS ECR"),
    ("oci:PATH", "an OCI image layout directory"),
)
# Schemes written SCHEME://…; oci: takes a path right after its colon.
SCHEMES = ("http", "https", "s3", "ecr", "acr", "file")
# Where Docker's short names (alpine, library/alpine, docker.io/…) live, as `docker pull` reads them.
DOCKER_HUB = "index.docker.io"
# Azure Container Registry's login servers in the public and sovereign clouds.
ACR_SUFFIXES = (".azurecr.io", ".azurecr.cn", ".azurecr.us")


def unrecognised(source: str) -> SourceError | None:
    """The error for a SOURCE of no form regstat reads, or a local path that does not exist;
    None when SOURCE has a form its opener checks further (a URL of a scheme regstat reads,
    oci:PATH, or a path that exists)."""
    scheme, separator, rest = source.partition("://")
    if (separator and scheme in SCHEMES and scheme != "file") or source.startswith("oci:"):
        return None
    authority = (rest if separator else source).partition("/")[0]
    if separator and scheme != "file":
        if "@" in authority:
            return _credentials()
        return _refusal(f"{source}: regstat does not read {scheme}:// sources", _likely_of_scheme(scheme, rest))
    if _exists(rest if separator else source):
        return None
    if "@" in authority:  # user:password@host
        return _credentials()
    bare_scheme, colon, after = source.partition(":")
    if not separator and colon and bare_scheme.lower() in SCHEMES:  # http:/host, https:host
        return _refusal(f"{source}: no such directory, nor a SOURCE form", _url(bare_scheme.lower(), after))
    host, _, path = source.partition("/")
    if not separator and is_registry_host(host):
        return _refusal(f"{source}: no such directory", _registry(host, path), f"if {host} is a registry, ")
    return _refusal(f"{source}: no such directory")


def _credentials() -> SourceError:
    # Never echo SOURCE: what comes before its @ may be a password.
    return _refusal("SOURCE holds credentials, which do not belong in it: use --username and --password-stdin")


def _refusal(problem: str, likely: str | None = None, condition: str = "") -> SourceError:
    forms = "\n".join(f"  {form:<24}{what}" for form, what in FORMS)
    guess = f"; {condition}try {likely}" if likely else ""
    return SourceError(f"{problem}{guess}\nSOURCE is one of:\n{forms}")


def _likely_of_scheme(scheme: str, rest: str) -> str | None:
    if scheme.lower() in SCHEMES:  # HTTPS://host, S3://bucket
        return _url(scheme.lower(), rest)
    if scheme == "docker":  # skopeo's image reference, read as Docker reads one
        first, slash, path = rest.partition("/")
        if slash and is_registry_host(first):
            return _registry(first, path)
        return _registry(DOCKER_HUB, rest if slash else f"library/{rest}")
    return None


def _url(scheme: str, rest: str) -> str:
    return f"file:///{rest.lstrip('/')}" if scheme == "file" else f"{scheme}://{rest.lstrip('/')}"


def _registry(host: str, path: str) -> str:
    """The registry SOURCE (and -r) for an image at HOST/PATH, PATH being
    REPOSITORY[:TAG][@DIGEST] or nothing."""
    path = path.strip("/")
    repository = path.partition("@")[0].partition(":")[0]  # a repository name holds neither
    if host in ("docker.io", "registry-1.docker.io"):
        host = DOCKER_HUB
    if host.endswith(ACR_SUFFIXES):  # ACR's own API sees more than the OCI one
        return f"acr://{host}" + (f" -r {repository}" if repository else "")
    from .registry_api.source import is_loopback  # here: only a suggestion needs the API source

    # Plain HTTP is what a registry on the loopback most likely speaks (and regstat allows it there).
    scheme = "http" if is_loopback(urlsplit(f"//{host}").hostname or host) else "https"
    if not repository:
        return f"{scheme}://{host}"
    whole = "" if repository == path else " (regstat crawls whole repositories, not single images)"
    return f"{scheme}://{host} -r {repository}{whole}"


def _exists(path: str) -> bool:
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return False
    except OSError:  # there, but not readable: its opener says so
        return True
    return True
