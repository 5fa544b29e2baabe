"""Starting Spark for regstat (regstat.analysis.spark, spark_snapshot): the session's settings,
and a quiet driver.

Spark's driver logs through log4j2 on stderr, WARN and up by default, and says at start which
configuration it uses: lines that `-q` and a cron job's mail do not want. Unless the user has
a log configuration of their own, the driver's JVM gets regstat's (spark-log4j2.properties:
errors only), through SPARK_SUBMIT_OPTS, which spark-submit adds to the driver's command line
in client mode (pyspark's): unlike `spark.driver.extraJavaOptions` given with --conf, it
replaces no value of the cluster's spark-defaults.conf. pyspark's own Python loggers of a
failed query are silenced too: regstat reports the failure itself (spark_failure).

Only the `spark` extra (pyspark) imports this module.
"""

from __future__ import annotations

import os
import re
import tempfile
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

from pyspark.logger import PySparkLogger
from pyspark.sql import SparkSession

from .engine import SparkOptions

# Settings every session gets unless --spark-conf says otherwise: times in UTC (as snapshots
# store them), no web UI or progress bars on the terminal, Arrow strings as DuckDB's, no
# constraint propagation (an insert's union of two checkpointed tables fails in it, and an
# iterated step gains nothing from it).
DEFAULTS = {
    "spark.sql.constraintPropagation.enabled": "false",
    "spark.sql.session.timeZone": "UTC",
    "spark.ui.enabled": "false",
    "spark.ui.showConsoleProgress": "false",
    "spark.sql.execution.arrow.useLargeVarTypes": "false",
    # Spark makes its (here unused) warehouse directory on start, by default in the working
    # directory, which a cron job's may not be, or should not be littered.
    "spark.sql.warehouse.dir": os.path.join(tempfile.gettempdir(), "regstat-spark-warehouse"),
}

LOG_CONFIG = Path(__file__).with_name("spark-log4j2.properties")
SUBMIT_OPTIONS = "SPARK_SUBMIT_OPTS"
# Where a user names a log configuration for the driver: a JVM option, or a file Spark puts on
# the driver's classpath from its configuration directory.
_LOG_OPTION = re.compile(r"-Dlog4j2?\.configuration(File)?=")
_JAVA_OPTIONS = ("spark.driver.extraJavaOptions", "spark.driver.defaultJavaOptions")
_LOG_FILES = ("log4j2.properties", "log4j2.xml", "log4j2.yaml", "log4j2.yml", "log4j2.json")
# pyspark logs each failed query's error on stderr, as JSON, before raising it.
_QUERY_LOGGERS = ("SQLQueryContextLogger", "DataFrameQueryContextLogger")


def start(options: SparkOptions) -> SparkSession:
    """The Spark session `options` reaches: the running one, if there is one (a notebook's, a
    test's: its settings that can change are set), else a new one, started quietly."""
    builder = SparkSession.builder.master(options.master).appName("regstat")
    for key, value in {**DEFAULTS, **options.conf}.items():
        builder = builder.config(key, value)
    for name in _QUERY_LOGGERS:
        PySparkLogger.getLogger(name).disabled = True
    with _driver_options(options.conf):
        return builder.getOrCreate()


def has_own_log_config(conf: Mapping[str, str], environ: Mapping[str, str]) -> bool:
    """Whether the user configures the driver's log: in --spark-conf's or SPARK_SUBMIT_OPTS's
    JVM options, or with a log4j2 file in Spark's configuration directory."""
    options = [conf.get(key, "") for key in _JAVA_OPTIONS] + [environ.get(SUBMIT_OPTIONS, "")]
    if any(_LOG_OPTION.search(option) for option in options):
        return True
    spark_home = environ.get("SPARK_HOME")
    conf_dir = environ.get("SPARK_CONF_DIR") or (os.path.join(spark_home, "conf") if spark_home else "")
    return bool(conf_dir) and any(Path(conf_dir, name).is_file() for name in _LOG_FILES)


@contextmanager
def _driver_options(conf: Mapping[str, str]) -> Iterator[None]:
    """SPARK_SUBMIT_OPTS with regstat's log configuration added, while a driver may start."""
    before = os.environ.get(SUBMIT_OPTIONS)
    if not has_own_log_config(conf, os.environ):
        os.environ[SUBMIT_OPTIONS] = f"{before or ''} -Dlog4j2.configurationFile={LOG_CONFIG.as_uri()}".strip()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop(SUBMIT_OPTIONS, None)
        else:
            os.environ[SUBMIT_OPTIONS] = before

