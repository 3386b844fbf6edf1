"""The JVM class archive: written when the first local run exits, mapped by the JVMs that follow.

Each run is its own Python process (the archive is written as a JVM exits), with its own cache dir.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

RUN = textwrap.dedent("""
    import sys
    from pipelines.config import SparkSettings
    from pipelines.spark.session import get_spark

    log = sys.argv[1]
    conf = {"spark.ui.enabled": "false", "spark.driver.extraJavaOptions": f"-Xlog:class+load=info:file={log}"}
    spark = get_spark(SparkSettings(master="local[1]", conf=conf))
    assert spark.range(100).selectExpr("sum(id)").first()[0] == 4950
    print("JAVA_OPTIONS", spark.sparkContext.getConf().get("spark.driver.extraJavaOptions"))
""")


def run_local_job(cache: Path, class_log: Path) -> str:
    env = {**os.environ, "CORPUS_NLP_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("PYSPARK_GATEWAY_PORT", None)
    done = subprocess.run([sys.executable, "-c", RUN, str(class_log)], env=env, cwd=ROOT, capture_output=True,
                          text=True)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_first_run_writes_the_archive_and_the_next_one_maps_it(tmp_path):
    cache = tmp_path / "cache"
    first = run_local_job(cache, tmp_path / "first.log")
    archives = list((cache / "jvm").glob("*.jsa"))
    assert len(archives) == 1 and archives[0].stat().st_size > 0
    assert "-XX:ArchiveClassesAtExit=" in first
    assert not list((cache / "jvm").glob("*.part"))  # moved into place once the JVM had exited

    second = run_local_job(cache, tmp_path / "second.log")
    assert f"-XX:SharedArchiveFile={archives[0]}" in second
    loaded = (tmp_path / "second.log").read_text()
    # Spark's own classes come out of the archive this project wrote ("top" layer over the JDK's own).
    assert any("org.apache.spark" in line and "shared objects file (top)" in line for line in loaded.splitlines())
    assert "shared objects file (top)" not in (tmp_path / "first.log").read_text()
