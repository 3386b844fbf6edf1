"""A class-data-sharing (AppCDS) archive for the local Spark JVMs corpus-nlp starts itself.

A cold Spark JVM parses and verifies the thousands of classes an annotate run touches (Spark SQL, Parquet,
Arrow, Hadoop) before it can use them; on our 2-core machines that is ~5 CPU-s of a cold run, taken
from the Python workers that run the model. Java 13+ can dump the classes a run loaded into an archive
at exit (``-XX:ArchiveClassesAtExit``) and map them ready-made in later JVMs
(``-XX:SharedArchiveFile``). ``python -m benchmarks.jvm_cpu --sentences 1000 --reps 2`` on a 2-core
Xeon: the cold run's JVM CPU 32.2 -> 27.4 CPU-s, its wall 40.9 -> 37.0 s; warm runs unchanged.

Only for JVMs this package launches (local mode, the CLI, notebooks without a session) with
``spark.short_run_jvm`` on; under spark-submit or Databricks the JVM already runs. The first run
writes the archive when its Python process exits (~15 s here, once); it is renamed into place only
after that JVM exited with status 0, because a JVM maps a truncated archive and dies with SIGBUS. An archive that does not fit the JVM
(another Java build, other jars) is refused by the JVM itself, which then starts without it.
"""

from __future__ import annotations

import atexit
import hashlib
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from pipelines.cache import cache_dir

ARCHIVE_DIR = "jvm"
_CLASSPATH_KEYS = ("jars", "classpath", "packages")  # Spark settings that change the classes a JVM loads
_QUIET = "-Xlog:cds=error,cds+dynamic=error"  # classes that cannot be archived are skipped, not reported


@dataclass(frozen=True)
class ArchivePlan:
    java_option: str  # for spark.driver.extraJavaOptions: map the archive, or write one at exit ("": neither)
    archive: Path | None = None
    part: Path | None = None  # where this run's JVM writes its archive at exit

    @property
    def writes(self) -> bool:
        return self.part is not None


def archive_key(java_version: str, conf: dict[str, str]) -> str:
    """What the archived classes depend on: the Java build, this PySpark and any extra jars."""
    import pyspark

    classpath = sorted((k, v) for k, v in conf.items() if any(s in k.lower() for s in _CLASSPATH_KEYS))
    text = "\n".join([java_version, pyspark.__version__, os.path.dirname(pyspark.__file__), repr(classpath)])
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


def plan(java_version: str, conf: dict[str, str]) -> ArchivePlan:
    directory = cache_dir() / ARCHIVE_DIR
    archive = directory / f"spark-{archive_key(java_version, conf)}.jsa"
    if archive.is_file():
        return ArchivePlan(f"-XX:SharedArchiveFile={archive} {_QUIET}", archive)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _drop_stale_parts(directory)
    except OSError:
        return ArchivePlan("")
    part = directory / f"{archive.name}.{os.getpid()}.part"
    return ArchivePlan(f"-XX:ArchiveClassesAtExit={part} {_QUIET}", archive, part)


def _drop_stale_parts(directory: Path, age_s: float = 3600.0) -> None:
    """Archives left half-written by runs that were killed before they could finish them."""
    for part in directory.glob("*.part"):
        if time.time() - part.stat().st_mtime > age_s:
            part.unlink(missing_ok=True)


def finish_at_exit(spark, archive_plan: ArchivePlan, timeout_s: float = 120.0) -> None:
    """When this process exits: stop Spark, let the JVM exit and write its archive, then move it in place."""
    if not archive_plan.writes:
        return
    proc = getattr(spark.sparkContext._gateway, "proc", None)
    if proc is None or proc.stdin is None:
        return

    def finish() -> None:
        print("corpus-nlp: saving the Spark JVM's class archive for faster starts (first run only, ~15 s)",
              file=sys.stderr, flush=True)
        try:
            spark.stop()
            proc.stdin.close()  # the gateway JVM exits (status 0) at end of input
            status = proc.wait(timeout=timeout_s)
        except Exception:  # never fail an exit over a cache
            status = None
        part = archive_plan.part
        if status == 0 and part.is_file() and part.stat().st_size > 0:
            os.replace(part, archive_plan.archive)
        else:
            part.unlink(missing_ok=True)

    atexit.register(finish)
