"""Options that mean the same in every command, written once: --format/--output,
--memory-limit, --repository, --quiet, how to reach a source (crawl and apply-gc), and the
command class every command uses."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import sys

import click

from ..analysis import open_snapshot_url
from ..analysis.engine import ENGINES, EngineUnavailable, SparkOptions
from ..sources.acr.entra import KINDS as AZURE_CREDENTIALS
from ..shards import Shard
from ..sizes import parse_size
from ..snapshot import Snapshot, history
from ..snapshot.object_store import download_snapshot, is_object_url, is_url
from .edge import Command

Decorator = Callable[[Callable[..., Any]], Callable[..., Any]]


class SizeType(click.ParamType):
    """A size in bytes as people write it: 500MB, 2GiB, 1048576 (regstat.sizes.parse_size)."""

    name = "size"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> int:
        if isinstance(value, int):
            return value
        try:
            return parse_size(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SIZE = SizeType()


class ShardType(click.ParamType):
    """K/N: shard K of N (regstat.shards.Shard.parse)."""

    name = "shard"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Shard:
        if isinstance(value, Shard):
            return value
        try:
            return Shard.parse(str(value))
        except ValueError as e:
            self.fail(str(e), param, ctx)


SHARD = ShardType()


def command(name: str) -> Callable[[Callable[..., Any]], click.Command]:
    """A regstat command (edge.Command: errors mapped to their message and exit code)."""
    return click.command(name, cls=Command)


def format_options(formats: list[str], *, default: str | None = "text", help: str | None = None,
                   output_help: str = "Write to FILE (atomically, replacing it) instead of stdout; never "
                   "inside a snapshot or its local SOURCE.") -> Decorator:
    """-f/--format (its value in `fmt`) and -o/--output FILE."""

    def decorate(f: Callable[..., Any]) -> Callable[..., Any]:
        f = click.option("-o", "--output", metavar="FILE", help=output_help)(f)
        return click.option("-f", "--format", "fmt", type=click.Choice(formats), default=default,
                            show_default=default is not None, help=help)(f)

    return decorate


def memory_limit_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("--memory-limit", metavar="SIZE",
                        help="DuckDB memory limit, e.g. 4GB (spills to disk beyond it).")(f)


def engine_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """--engine, --spark-master and --spark-conf KEY=VALUE, given to the command as `engine`
    and `spark` (SparkOptions, or None for DuckDB)."""

    @functools.wraps(f)
    def run(*args: Any, engine: str, spark_master: str | None, spark_conf: tuple[str, ...], **kwargs: Any) -> Any:
        if engine != "spark" and (spark_master or spark_conf):
            raise click.UsageError("--spark-master and --spark-conf are for --engine spark")
        conf = {}
        for setting in spark_conf:
            key, equals, value = setting.partition("=")
            if not equals or not key.strip():
                raise click.BadParameter(f"{setting!r} is not KEY=VALUE", param_hint="--spark-conf")
            conf[key.strip()] = value
        spark = SparkOptions(spark_master or SparkOptions.master, conf) if engine == "spark" else None
        return f(*args, engine=engine, spark=spark, **kwargs)

    for option in reversed((
        click.option("--engine", type=click.Choice(ENGINES), default="duckdb", show_default=True,
                     help="Where the analysis runs: DuckDB in this process, or Spark (needs the spark extra: "
                     "pip install 'regstat[spark]', and Java 17), which also reads a SNAPSHOT at a URL: "
                     "hdfs://, s3a://, abfss://, gs://, file://, s3://."),
        click.option("--spark-master", metavar="URL",
                     help="With --engine spark: the master to run on, e.g. spark://host:7077, yarn. "
                     "[default: local[*]]"),
        click.option("--spark-conf", metavar="KEY=VALUE", multiple=True,
                     help="With --engine spark: a Spark setting (repeatable), e.g. spark.executor.memory=8g."),
    )):
        run = option(run)
    return run


def repository_option(help: str) -> Decorator:
    """-r/--repository GLOB, repeatable, into `repositories`: a full repository name or a
    pattern where `*` matches `/` too."""
    return click.option("-r", "--repository", "repositories", multiple=True, metavar="GLOB", help=help)


def quiet_option(f: Callable[..., Any]) -> Callable[..., Any]:
    return click.option("-q", "--quiet", is_flag=True,
                        help="Nothing on stderr unless something went wrong (no summary, no progress).")(f)


def source_options(f: Callable[..., Any]) -> Callable[..., Any]:
    """How to reach and log in to a source, as crawl and apply-gc take them: --endpoint-url,
    --username/--password-stdin, --insecure, --ca-file, --azure-credential, --azure-authority-host,
    --registry-id."""
    for option in reversed((
        click.option("--endpoint-url", metavar="URL",
                     help="S3 or ECR endpoint (MinIO, Ceph, moto). Default: AWS_ENDPOINT_URL, else AWS."),
        click.option("--username", metavar="NAME", help="Registry API: user for basic or token auth."),
        click.option("--password-stdin", is_flag=True,
                     help="Registry API: read the password (or token) from standard input."),
        click.option("--insecure", is_flag=True,
                     help="Registry API and ACR: allow plain HTTP (ACR: speak it) and skip TLS verification."),
        click.option("--ca-file", metavar="PEM", type=click.Path(exists=True, dir_okay=False),
                     help="Registry API and ACR: trust these CA certificates."),
        click.option("--azure-credential", type=click.Choice(AZURE_CREDENTIALS),
                     help="ACR: sign in with Microsoft Entra ID through azure-identity (pip install "
                     "'regstat[azure]'): default (DefaultAzureCredential), cli (az login), environment "
                     "(AZURE_CLIENT_ID, ...), workload-identity or managed-identity."),
        click.option("--azure-authority-host", metavar="HOST",
                     help="ACR with --azure-credential: the Entra host of a sovereign cloud "
                     "(login.chinacloudapi.cn, login.microsoftonline.us). Default: AZURE_AUTHORITY_HOST, "
                     "else login.microsoftonline.com."),
        click.option("--registry-id", metavar="ACCOUNT",
                     help="ECR: the registry (account id) to use. Default: the caller's."),
    )):
        f = option(f)
    return f


def read_password(username: str | None, password_stdin: bool) -> str | None:
    """The password --password-stdin reads; a usage error unless both or neither are given."""
    if username and not password_stdin:
        raise click.UsageError("--username needs --password-stdin (the password or token on standard input)")
    if password_stdin and not username:
        raise click.UsageError("--password-stdin needs --username")
    return sys.stdin.readline().rstrip("\r\n") if password_stdin else None
def open_snapshot(text: str, spark: SparkOptions | None = None) -> Snapshot:
    """SNAPSHOT as every command takes it: a snapshot directory, a history (its latest
    snapshot) or a selector in one (HISTORY@-1, HISTORY@2026-12-01; regstat.snapshot.history),
    or s3://BUCKET/PREFIX, downloaded (regstat.snapshot.object_store). With `spark` (--engine
    spark), any URL (s3:// too) is read by Spark itself (regstat.analysis.spark_snapshot);
    without it, a URL other than s3:// is a usage error."""
    if spark is not None and is_url(text):
        return open_snapshot_url(text, spark)
    if is_object_url(text):
        return Snapshot.open(download_snapshot(text))
    if is_url(text):
        raise EngineUnavailable(f"{text}: a snapshot at a URL is read by Spark: report and plan-gc read it with "
                                "--engine spark")
    return Snapshot.open(history.resolve(text))
