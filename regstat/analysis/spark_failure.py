"""Spark's failures as regstat errors: one line each, never a Java stack trace.

pyspark raises Spark's errors as its own exception classes (pyspark.errors: AnalysisException,
IllegalArgumentException, PySparkRuntimeError, ...) or, for what it does not convert (a failed
job, a missing filesystem connector), as py4j's Py4JJavaError, whose text is the whole Java
stack trace with its causes. `spark_failure` turns either into a SparkFailure saying the
error's condition (UNABLE_TO_ACQUIRE_MEMORY, ...) or, without one, its Java class, the first
line of its message, and a hint where one is known. It recognises them by their module, so
that the CLI's edge can ask without importing pyspark.
"""

from __future__ import annotations

import re

from ..errors import RegstatError

# A Java exception's class and an error condition opening its message: the line of the cause
# that says what went wrong (a failed job's names its task's).
_CONDITION = re.compile(r"(?:([A-Za-z_$][\w$]*(?:\.[\w$]+)*): )?(\[[A-Z][A-Z0-9_]*(?:\.[A-Z0-9_]+)*\] .*)")
_JAVA_CLASS = re.compile(r"^(?:[a-z_$][\w$]*\.)+([A-Z][\w$]*): ")
_SQLSTATE = re.compile(r"\s*SQLSTATE: \w+;?\s*$")

MEMORY_HINT = ("Spark ran out of memory: give it more, e.g. --spark-conf spark.driver.memory=8g, the memory "
               "that does the work in local mode, or spark.executor.memory on a cluster")
HINTS = (
    (re.compile(r"UNABLE_TO_ACQUIRE_MEMORY|OutOfMemoryError|Java heap space"), MEMORY_HINT),
    (re.compile(r"JAVA_GATEWAY_EXITED"),
     "Spark could not start: it needs Java 17, on PATH or at JAVA_HOME, and JVM settings it accepts"),
    (re.compile(r"No FileSystem for scheme|UnsupportedFileSystemException|ClassNotFoundException: .*FileSystem"),
     "the URL's filesystem needs its connector on the driver and the executors: hadoop-aws for s3a://, "
     "hadoop-azure for abfss://, the GCS connector for gs://, EMR for s3:// (docs/spark.md)"),
    (re.compile(r"Answer from Java side is empty|Error while (sending|receiving)|Py4JNetworkError"),
     "Spark's driver JVM died, most often out of memory: " + MEMORY_HINT.split(": ", 1)[1]),
)


class SparkFailure(RegstatError):
    """A Spark session or job failed; the message is one line."""


def spark_failure(error: BaseException) -> SparkFailure | None:
    """`error` as a SparkFailure if pyspark or py4j raised it, else None."""
    if not type(error).__module__.startswith(("pyspark.", "py4j.")):
        return None
    try:
        text = str(error)
    except Exception:  # noqa: BLE001 - str() of a captured error may call into a JVM that died
        text = ""
    line = first_line(text) or type(error).__name__
    hint = next((hint for pattern, hint in HINTS if pattern.search(text[:20_000]) or pattern.search(
        type(error).__name__)), None)
    return SparkFailure(f"Spark failed: {line.rstrip('.')}; {hint}" if hint else f"Spark failed: {line}")


def first_line(text: str) -> str:
    """What an error's text says went wrong, in one line: the first line of its message or of
    a Java cause with an error condition, else of its deepest Java cause, else its first line."""
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    # Py4JJavaError: "An error occurred while calling o48.x." then ": <Java error>", its frames
    # ("at ..."), and "Caused by: <Java error>" for each cause.
    causes = [line.removeprefix(": ").removeprefix("Caused by: ") for line in lines
              if line.startswith((": ", "Caused by: "))]
    for line in causes or lines[:1]:
        if found := _CONDITION.search(line):
            java_class, message = found.groups()
            return _short(f"{java_class.rsplit('.', 1)[-1]}: {message}" if java_class else message)
    if causes:
        return _short(causes[-1])
    return _short(lines[0]) if lines else ""


def _short(line: str) -> str:
    """A line without its Java package and SQLSTATE."""
    return _SQLSTATE.sub("", _JAVA_CLASS.sub(lambda m: f"{m.group(1)}: ", line))
