"""A SOURCE regstat does not read (another tool's form, a bare host, a lost slash, a path that
does not exist) is refused with exit code 4, nothing written, every SOURCE form listed and the
likely one named; a path that exists is read as a storage root, whatever it looks like."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from regstat.cli import main
from regstat.errors import EXIT_OK, EXIT_SOURCE
from regstat.sources.acr.source import parse_acr
from regstat.sources.registry_api.source import parse_location

SAMPLE = Path(__file__).resolve().parent / "scenario_tree"
FORMS = ("PATH, file://PATH", "s3://BUCKET[/PREFIX]", "https://HOST[:PORT]", "acr://NAME.azurecr.io", "ecr://REGION",
         "oci:PATH")


def refused(source: str, tmp_path: Path) -> str:
    """Crawl SOURCE; check the refusal (exit code 4, nothing written, every form listed) and
    return its first line."""
    out = tmp_path / "snap"
    result = CliRunner().invoke(main, ["crawl", source, "-o", str(out)])
    assert result.exit_code == EXIT_SOURCE, result.output
    assert not out.exists() and not list(tmp_path.glob(".snap*"))
    first, heading, *forms = result.stderr.splitlines()
    assert first.startswith("regstat: error: ") and heading == "SOURCE is one of:"
    assert [f.split("  ")[1] for f in forms] == list(FORMS)
    assert "Traceback" not in result.stderr
    return first


@pytest.mark.parametrize(
    "source, problem, likely",
    [
        ("docker://registry.example.com/ns/repo:tag", "regstat does not read docker:// sources",
         "try https://registry.example.com -r ns/repo (regstat crawls whole repositories, not single images)"),
        ("docker://registry.example.com:5000/ns/repo@sha256:" + "ab" * 32, "regstat does not read docker://",
         "try https://registry.example.com:5000 -r ns/repo (regstat crawls whole repositories"),
        ("docker://alpine:3.20", "regstat does not read docker://", "try https://index.docker.io -r library/alpine ("),
        ("docker://docker.io/library/alpine", "regstat does not read docker://",
         "try https://index.docker.io -r library/alpine"),
        ("registry.example.com", "registry.example.com: no such directory",
         "if registry.example.com is a registry, try https://registry.example.com"),
        ("registry.example.com:5000/foo", "registry.example.com:5000/foo: no such directory",
         "if registry.example.com:5000 is a registry, try https://registry.example.com:5000 -r foo"),
        ("localhost:5000", "no such directory", "try http://localhost:5000"),  # loopback: plain HTTP
        ("http:/x", "http:/x: no such directory, nor a SOURCE form", "try http://x"),
        ("https:registry.example.com", "nor a SOURCE form", "try https://registry.example.com"),
        ("s3:/bucket/prefix", "nor a SOURCE form", "try s3://bucket/prefix"),
        ("HTTPS://registry.example.com", "regstat does not read HTTPS://", "try https://registry.example.com"),
        ("ftp://registry.example.com/x", "ftp://registry.example.com/x: regstat does not read ftp:// sources", None),
        # An ACR's login server: its own API, which sees untagged manifests, times and locks.
        ("docker://myregistry.azurecr.io/team/app:v1", "regstat does not read docker://",
         "try acr://myregistry.azurecr.io -r team/app"),
        ("myregistry.azurecr.io", "no such directory", "if myregistry.azurecr.io is a registry, try acr://myregistry"),
    ],
)
def test_an_unrecognised_source_names_the_likely_form(source: str, problem: str, likely: str | None,
                                                      tmp_path: Path) -> None:
    first = refused(source, tmp_path)
    assert problem in first
    if likely is None:
        assert "try " not in first
    else:
        assert likely in first
        suggested = first.partition("try ")[2].split()[0]
        if suggested.startswith(("http://", "https://")):  # a SOURCE regstat reads (parsed, not contacted)
            assert parse_location(suggested, insecure=suggested.startswith("http://")) == suggested
        if suggested.startswith("acr://"):
            assert parse_acr(suggested, insecure=False) == suggested.replace("acr://", "https://")


@pytest.mark.parametrize("source", ["acr://myregistry.azurecr.io/team/app", "acr://", "acr://host:port",
                                    "acr://myregistry.azurecr.io?n=1"])
def test_an_acr_source_is_a_host_alone(source: str, tmp_path: Path) -> None:
    result = CliRunner().invoke(main, ["crawl", source, "-o", str(tmp_path / "snap")])
    assert result.exit_code == EXIT_SOURCE and "Traceback" not in result.stderr, result.output
    assert "acr://" in result.stderr and not (tmp_path / "snap").exists()


def test_a_path_that_does_not_exist_is_said_so(tmp_path: Path) -> None:
    missing = tmp_path / "registry-root"
    for source in (str(missing), f"file://{missing}", "relative/registry"):
        first = refused(source, tmp_path)
        assert first == f"regstat: error: {source}: no such directory", first


def test_credentials_in_a_source_are_never_echoed(tmp_path: Path) -> None:
    for source in ("docker://ci:s3cr3t-token@registry.example.com/ns/repo", "ci:s3cr3t-token@registry.example.com"):
        first = refused(source, tmp_path)
        assert "--username and --password-stdin" in first and "s3cr3t" not in first


def test_an_existing_path_is_a_storage_root_whatever_it_looks_like(tmp_path: Path) -> None:
    """A directory named like a host, or like a lost slash, is crawled as the path it is."""
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        for name in ("registry.example.com", "http:"):
            shutil.copytree(SAMPLE / "docker", tmp_path / name / "docker", symlinks=True)
        for source in ("registry.example.com", "http:"):
            result = CliRunner().invoke(main, ["crawl", source, "-o", str(tmp_path / f"snap-{source}")])
            assert result.exit_code == EXIT_OK, result.stderr
        (tmp_path / "not-a-root.example.com").mkdir()  # there, but not a storage root: its own message
        result = CliRunner().invoke(main, ["crawl", "not-a-root.example.com", "-o", str(tmp_path / "snap")])
        assert result.exit_code == EXIT_SOURCE and "not a registry storage root" in result.stderr
        assert "SOURCE is one of" not in result.stderr
    finally:
        os.chdir(cwd)
