"""The SparkSession the job runs in: reuse the one that exists (spark-submit, Databricks), else build one."""

from __future__ import annotations

import contextlib
import functools
import os
import shutil
import subprocess
import sys
import warnings

from pipelines.spark import jvm_archive
from pipelines.config import SparkSettings
from pipelines.errors import CorpusNlpError

# Settings the native engine relies on, whoever built the session.
REQUIRED_CONF = {
    "spark.sql.sources.partitionOverwriteMode": "dynamic",  # a run replaces only the partitions it writes
    "spark.sql.execution.arrow.pyspark.enabled": "true",
}


# A run's JVM compiles (C2) whatever has run a few thousand times: in a cold annotate run of 129k tokens
# that is 25 CPU-s, mostly of code that is warm only while Spark starts (Java serialization, ASM, Janino,
# Hadoop Configuration), on the 2 cores the model needs. Three times the thresholds leaves those to C1
# and still compiles the per-row code (the Parquet and Arrow loops) within seconds. `benchmarks/jvm_cpu.py`
# and the README's performance section have the numbers.
SHORT_RUN_JIT = "-XX:CompileThresholdScaling=3"


LOG_LEVELS = ("ALL", "DEBUG", "INFO", "WARN", "ERROR", "FATAL", "OFF")


def log4j_config_path() -> str:
    """The bundled log4j2 configuration: Spark's JVM logs errors only, to stderr, in one short line each.
    A JVM the job starts gets it; for spark-submit pass it yourself (docs/running.md)."""
    from pipelines.resources import resources_dir

    return str(resources_dir() / "conf" / "log4j2.properties")


def set_log_level(spark, level: str) -> None:
    """Spark's log level from now on (``sc.setLogLevel``), as soon as the session exists: under spark-submit
    or Databricks, the JVM logged its start-up with its own configuration already."""
    try:
        spark.sparkContext.setLogLevel(level.upper())
    except Exception:  # Spark Connect has no SparkContext: its server decides
        pass


class EnvironmentProblem(CorpusNlpError):
    """Something outside the project (Java, permissions) that the user must fix."""


def check_java() -> str:
    """The ``java -version`` text of the Java that Spark will start; a clear error if it is unusable."""
    java = shutil.which("java", path=os.path.join(os.environ["JAVA_HOME"], "bin")) if os.environ.get("JAVA_HOME") \
        else shutil.which("java")
    if java is None:
        raise EnvironmentProblem("Java was not found: install Java 17 or newer (e.g. `apt-get install openjdk-17-jre`) "
                                 "or set JAVA_HOME")
    out = subprocess.run([java, "-version"], capture_output=True, text=True).stderr
    version = out.split('"')[1] if '"' in out else "0"
    major = int(version.split(".")[0]) if version.split(".")[0].isdigit() else 0
    if major < 17:
        raise EnvironmentProblem(f"Java {version} found at {java}; Spark 4 needs Java 17 or newer: install it and "
                                 "point JAVA_HOME at it")
    return out


DELTA_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def library_conf(names: list[str], master: str = "") -> dict[str, str]:
    """Spark settings that put the JVM libraries ``names`` ("sparknlp", "delta") on a new session:
    their jar files (``pipelines.spark.jars``) and, for Delta, :func:`delta_conf`."""
    from pipelines.spark import jars

    conf = {"spark.jars": ",".join(p for name in names for p in jars.jar_paths(name))} if names else {}
    if "delta" in names:
        conf.update(delta_conf(master))
    return conf


def delta_conf(master: str) -> dict[str, str]:
    """Delta's SQL extension and catalog. On a ``local`` ``master``, Delta rebuilds a table's state from its
    log in as many tasks as there are cores, not its default 50 (``snapshotPartitions``): a run's first read
    of each table then costs ~1 s less on 2 cores (docs/running.md)."""
    conf = dict(DELTA_CONF)
    if is_local_master(master):
        conf["spark.databricks.delta.snapshotPartitions"] = str(local_cores(master))
    return conf


def is_local_master(master: str) -> bool:
    """``local``, ``local[N]``, ``local[*]``: tasks in the driver's one JVM; not ``local-cluster[...]``, whose
    executors are processes of their own, as on a cluster."""
    return master == "local" or master.startswith("local[")


def local_cores(master: str) -> int:
    """The cores a ``local``, ``local[N]`` or ``local[*]`` master runs tasks on."""
    if not master.startswith("local["):
        return 1
    threads = master[len("local["):].split("]")[0].split(",")[0]  # local[N,maxFailures]
    if threads == "*":
        return os.cpu_count() or 1
    return max(1, int(threads)) if threads.isdigit() else 1


def executor_python(settings: SparkSettings) -> str:
    """The executors' Python for a session we start: ``spark.pyspark.python`` from the config (e.g.
    ``./env/bin/python`` inside the ``spark.archives`` that ``corpus-nlp pack-env`` wrote), else
    ``$PYSPARK_PYTHON``, else this Python. PySpark itself reads only the environment variable; spark-submit
    is what turns the setting into it."""
    return settings.conf.get("spark.pyspark.python") or os.environ.get("PYSPARK_PYTHON") or sys.executable


def is_connect(spark) -> bool:
    """Whether ``spark`` is a Spark Connect client session (no SparkContext, no JVM on this side)."""
    return type(spark).__module__.startswith("pyspark.sql.connect")


def default_parallelism(spark) -> int:
    """The cores Spark schedules on (``SparkContext.defaultParallelism``). A Connect client has no
    SparkContext: there, the partitions of a plain ``range``, which Spark sizes by that same number."""
    if not is_connect(spark):
        return spark.sparkContext.defaultParallelism
    from pyspark.sql import functions as F

    return spark.range(1 << 16).select(F.spark_partition_id().alias("p")).agg(F.max("p")).first()[0] + 1


def one_executor(spark) -> bool:
    """Whether the session's tasks all run in one executor (a ``local`` master), so that what the executor's
    Python workers share reaches every task. Under Connect, the server's ``spark.master`` where it lets the
    client read it; unknown counts as a cluster."""
    if not is_connect(spark):
        return is_local_master(spark.sparkContext.master)
    try:
        return is_local_master(spark.conf.get("spark.master", None) or "")
    except Exception:  # noqa: BLE001 - a server that refuses the read: assume a cluster
        return False


def num_partitions(df) -> int:
    """How many tasks a pass over ``df`` runs. A Connect client cannot ask the plan: it runs a job that
    reads no column (on a persisted frame, the cache; on files, their row counts)."""
    if not is_connect(df.sparkSession):
        return df.rdd.getNumPartitions()
    from pyspark.sql import functions as F

    last = df.select(F.spark_partition_id().alias("p")).agg(F.max("p")).first()[0]
    return 0 if last is None else last + 1


def collect_arrow(df):
    """``df``'s rows on the driver as one ``pyarrow.Table``, through Arrow where this PySpark can (4.x's
    ``toArrow``; 3.5's classic ``_collect_as_arrow``, which ``toPandas`` uses): binary columns arrive as
    buffers, not a Python object per value (about half the time of ``collect()`` on 300 MB of vectors)."""
    import pyarrow as pa

    if hasattr(df, "toArrow"):
        return df.toArrow()
    from pyspark.sql.pandas.types import to_arrow_schema

    schema = to_arrow_schema(df.schema)
    if hasattr(df, "_collect_as_arrow"):
        batches = df._collect_as_arrow()
        return pa.Table.from_batches(batches) if batches else schema.empty_table()
    return pa.Table.from_pylist([r.asDict() for r in df.collect()], schema=schema)  # a 3.5 Connect client


class ConnectUnavailable(CorpusNlpError):
    """spark.remote is set, and this Python cannot be a Spark Connect client as asked."""


def connect_session(settings: SparkSettings, libraries: list[str]):
    """A Spark Connect session for ``spark.remote``: ``sc://host:port`` (a server someone runs: it brings
    its own jars and settings), or ``local``/``local[N]``: PySpark 4 starts a Connect server in this
    process, with the jars of ``libraries`` (the way to test the Connect path on one machine)."""
    from pyspark.sql import SparkSession

    remote = settings.remote
    try:
        import grpc  # noqa: F401  (pyspark[connect]'s client needs it)
        from pyspark.sql.connect.session import SparkSession as _ConnectSession  # noqa: F401
    except ImportError as e:
        raise ConnectUnavailable(f"spark.remote {remote}: this Python lacks the Spark Connect client ({e.name}): "
                                 "pip install 'corpus-nlp[connect]'") from None
    builder = SparkSession.builder.remote(remote)
    if remote.startswith("local"):
        import pyspark

        if int(pyspark.__version__.split(".")[0]) < 4:
            raise ConnectUnavailable(f"spark.remote {remote} starts a local Spark Connect server, which needs "
                                     f"PySpark 4 (this is {pyspark.__version__}): use sc://host:port")
        check_java()
        os.environ["PYSPARK_PYTHON"] = executor_python(settings)
        server = {"spark.driver.memory": settings.driver_memory, "spark.ui.showConsoleProgress": "false",
                  "spark.driver.extraJavaOptions": " ".join(filter(None, [
                      f"-Dlog4j2.configurationFile={log4j_config_path()}",
                      settings.conf.get("spark.driver.extraJavaOptions")])),
                  **{k: v for k, v in settings.conf.items() if k != "spark.driver.extraJavaOptions"},
                  **_with_user_jars(library_conf(libraries), settings)}
        for key, value in server.items():
            builder = builder.config(key, value)
    with warnings.catch_warnings():  # the client sets the server's settings again and warns on each static one
        warnings.filterwarnings("ignore", message="Failed to set", category=UserWarning)
        spark = builder.getOrCreate()
    return configure(spark, settings)


def _with_user_jars(conf: dict[str, str], settings: SparkSettings) -> dict[str, str]:
    if "spark.jars" in conf and settings.conf.get("spark.jars"):
        conf = {**conf, "spark.jars": conf["spark.jars"] + "," + settings.conf["spark.jars"]}
    return conf


def get_spark(settings: SparkSettings | None = None, libraries: list[str] | None = None):
    from pyspark import SparkContext
    from pyspark.sql import SparkSession

    settings = settings or SparkSettings()
    if settings.remote:
        return connect_session(settings, libraries or [])
    active = SparkSession.getActiveSession()
    archive, java_options = jvm_archive.ArchivePlan(""), []
    if active is None and os.environ.get("PYSPARK_GATEWAY_PORT") is None:
        # We start the JVM ourselves: local run or CLI. Under spark-submit the master comes from there.
        java_version = check_java()
        if settings.short_run_jvm and SparkContext._gateway is None:  # Java options only reach a new JVM
            archive = jvm_archive.plan(java_version, settings.conf)
            java_options = [SHORT_RUN_JIT, archive.java_option]
        os.environ["PYSPARK_PYTHON"] = executor_python(settings)
        builder = (
            SparkSession.builder.master(settings.master)
            .appName(settings.app_name)
            .config("spark.driver.memory", settings.driver_memory)
            .config("spark.ui.showConsoleProgress", "false")
        )
    else:
        builder = SparkSession.builder.appName(settings.app_name)
    for key, value in _runtime_conf(settings).items():
        builder = builder.config(key, value)
    if active is None and os.environ.get("PYSPARK_GATEWAY_PORT") is None and SparkContext._gateway is None:
        # Jars reach only a JVM we start; under spark-submit they come from --jars (see README).
        for key, value in _with_user_jars(library_conf(libraries or [], settings.master), settings).items():
            if key != "spark.databricks.delta.snapshotPartitions" or key not in settings.conf:  # the user's stands
                builder = builder.config(key, value)
    if active is None and os.environ.get("PYSPARK_GATEWAY_PORT") is None and SparkContext._gateway is None:
        # A JVM we start logs by our file from its first line (Spark's own start-up INFO/WARN lines included).
        java_options.append(f"-Dlog4j2.configurationFile={log4j_config_path()}")
    if java_options:  # before the user's own Java options: on a repeated flag the JVM takes the last
        options = " ".join(filter(None, [*java_options, settings.conf.get("spark.driver.extraJavaOptions")]))
        builder = builder.config("spark.driver.extraJavaOptions", options)
    spark = builder.getOrCreate()
    set_log_level(spark, settings.log_level)
    jvm_archive.finish_at_exit(spark, archive)
    return configure(spark, settings)


def _runtime_conf(settings: SparkSettings) -> dict[str, str]:
    return {**REQUIRED_CONF, "spark.sql.execution.arrow.maxRecordsPerBatch": str(settings.arrow_batch_rows),
            **settings.conf}


def configure(spark, settings: SparkSettings | None = None):
    """Apply the job's session settings to a session someone else built (getOrCreate ignores them)."""
    settings = settings or SparkSettings()
    if "log_level" in settings.model_fields_set:  # a session we did not build keeps its level unless asked
        set_log_level(spark, settings.log_level)
    for key, value in _runtime_conf(settings or SparkSettings()).items():
        try:
            spark.conf.set(key, value)
        except Exception:  # a static setting of a running session: keep what it has
            pass
    return spark


def session_conf(spark) -> dict[str, str]:
    """The session's settings as ``SET`` lists them (every one set on it, by its builder or since)."""
    return {row["key"]: row["value"] for row in spark.sql("SET").collect()}


@contextlib.contextmanager
def temporary_conf(spark, settings: dict[str, str]):
    """Spark settings for the duration of a block; the session's own values are restored afterwards."""
    before = {key: spark.conf.get(key, None) for key in settings}
    for key, value in settings.items():
        spark.conf.set(key, value)
    try:
        yield
    finally:
        for key, value in before.items():
            if value is None:
                spark.conf.unset(key)
            else:
                spark.conf.set(key, value)


def restores_session_conf(run):
    """``run(config, spark=None)``, where a session passed in (a notebook's) gets its settings back afterwards."""

    @functools.wraps(run)
    def wrapper(config, spark=None):
        if spark is None:
            return run(config, None)
        with conf_restored(spark):
            return run(config, spark)

    return wrapper


@contextlib.contextmanager
def conf_restored(spark):
    """Give a borrowed session (a notebook's) its settings back when the job is done with it: whatever
    the job set (:func:`configure`, or any setting a step sets on the way) is reset or unset."""
    before = session_conf(spark)
    try:
        yield spark
    finally:
        after = session_conf(spark)
        for key in after.keys() | before.keys():
            if after.get(key) == before.get(key):
                continue
            try:
                if key in before:
                    spark.conf.set(key, before[key])
                else:
                    spark.conf.unset(key)
            except Exception:  # a static setting cannot have changed; nothing else is expected here
                pass
