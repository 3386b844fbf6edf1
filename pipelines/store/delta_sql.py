"""Delta Lake through Spark SQL and the DataFrame reader only.

Not through the ``delta`` Python package (delta-spark): its ``DeltaTable`` reaches the JVM through py4j,
so it needs a classic session (under Spark Connect, Delta's own Connect plugin), and pip pairs it with a
PySpark of its choosing, not with the Delta jars the session has. Spark SQL works on classic and Connect
sessions alike, with whichever Delta build the session was given (``pipelines.spark.jars``, or the runtime's).
"""

from __future__ import annotations

import os

from pipelines.spark.session import temporary_conf

from pipelines.store.remote_files import is_local, local_path

# Delta's errors for a path that holds no Delta table: a folder without a commit in its _delta_log (a
# first write killed before committing leaves one), an empty or plain Parquet folder, or no folder at all.
NO_TABLE = frozenset({"DELTA_TABLE_NOT_FOUND", "DELTA_MISSING_DELTA_TABLE", "PATH_NOT_FOUND"})
# Delta writes this session setting into the commit of a SQL statement (a writer has its own option).
USER_METADATA = "spark.databricks.delta.commitInfo.userMetadata"


def error_class(e: Exception) -> str | None:
    """The error class of a Spark error (``getCondition`` from PySpark 4.0, ``getErrorClass`` before)."""
    for getter in ("getCondition", "getErrorClass"):
        if hasattr(e, getter):
            return getattr(e, getter)()
    return None


def is_delta_table(spark, path: str) -> bool:
    """Whether ``path`` holds a Delta table with at least one commit (``DeltaTable.isDeltaTable``).

    The reader's schema loads the latest snapshot's metadata and runs no job (``DESCRIBE DETAIL`` would
    count the table's files)."""
    from pyspark.errors import AnalysisException

    try:
        spark.read.format("delta").load(path).schema  # noqa: B018  (Connect analyses only when asked)
    except AnalysisException as e:
        if error_class(e) in NO_TABLE:
            return False
        raise
    return True


def delete_where(spark, path: str, condition: str, user_metadata: str) -> None:
    """``DELETE FROM`` the table at ``path`` the rows ``condition`` (SQL) selects: one commit, with
    ``user_metadata`` in it; the session's own setting is restored afterwards."""
    with temporary_conf(spark, {USER_METADATA: user_metadata}):
        spark.sql(f"DELETE FROM delta.{quoted(absolute(path))} WHERE {condition}")


def absolute(path: str) -> str:
    """Delta takes only an absolute path as a table name (a relative one is "Unsupported data source type for
    direct query on files"); a local lake's is taken from the driver's working directory, which is the JVM's
    for a session this process started, as for the writer."""
    return os.path.abspath(local_path(path)) if is_local(path) else path


def quoted(path: str) -> str:
    """A path as a SQL identifier (``delta.`<path>```): backticks inside are doubled."""
    return "`" + path.replace("`", "``") + "`"
