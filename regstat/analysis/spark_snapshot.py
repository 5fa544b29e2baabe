"""A snapshot at a URL the cluster's Spark reads (`report URL --engine spark`): file://, hdfs://,
s3a://, abfss://, gs://, and s3:// (EMR's own). Spark's Hadoop filesystems do the reading, on
the cluster's connectors and credentials: snapshot.json through Spark (a one-file text read),
whether the tables are there through the filesystem's listing, the tables themselves when
the engine binds them (Snapshot.table_glob). Nothing is downloaded to the driver's disk, and
the snapshot's checks are Snapshot.read's, as for a local directory.

Only the `spark` extra (pyspark) imports this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

from pyspark.sql import SparkSession

from ..snapshot import Snapshot
from .engine import SparkOptions
from .spark_session import start


def open_url(url: str, options: SparkOptions) -> Snapshot:
    """The snapshot at `url`, read by the Spark session `options` reaches."""
    parts = urlsplit(url)
    local = Path(unquote(parts.path)) if parts.scheme == "file" and parts.netloc in ("", "localhost") else None
    return Snapshot.read(url, _HadoopFiles(start(options), url.rstrip("/")), path=local, url=url)


class _HadoopFiles:
    """A snapshot's files at a URL, through Spark's Hadoop filesystem for its scheme (a URL
    Spark has no filesystem for fails here, as Spark says: spark_failure)."""

    def __init__(self, session: SparkSession, url: str) -> None:
        self._session = session
        self._url = url
        jvm: Any = session._jvm  # the Hadoop API is Java's alone
        self._path = jvm.org.apache.hadoop.fs.Path
        self._fs = self._path(url).getFileSystem(session._jsc.hadoopConfiguration())

    def is_dir(self) -> bool:
        path = self._path(self._url)
        return bool(self._fs.exists(path) and self._fs.getFileStatus(path).isDirectory())

    def read_metadata(self) -> str:
        metadata = f"{self._url}/snapshot.json"
        if not self._fs.exists(self._path(metadata)):
            raise FileNotFoundError(metadata)
        return str(self._session.read.text(metadata, wholetext=True).collect()[0][0])

    def has_parquet(self, table: str) -> bool:
        return bool(self._fs.globStatus(self._path(f"{self._url}/{table}/*.parquet")))
