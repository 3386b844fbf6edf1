"""What the JVM spends writing vectors to a Delta table, with and without parquet-mr's per-column settings
for the vector column (:func:`pipelines.store.lake.plain_columns_conf`: no dictionary attempt, no statistics).

    python -m benchmarks.vector_write [--rows 60000] [--reps 3]

Writes ``--rows`` rows of 768 random float32s (a token table's vector column, ~3 KB a row) to a new Delta
table, alternating without and with the settings in one Spark session (local[2]), and prints each write's
wall time and the JVM's CPU seconds. The first write pays the cold JVM: compare the later ones.
"""

from __future__ import annotations

import argparse
import json
import shutil
import tempfile
import time
from pathlib import Path

from benchmarks.jvm_cpu import jvm_process


def main(argv=None) -> dict:
    from pyspark.sql import SparkSession
    from pyspark.sql import functions as F

    from pipelines.spark.session import library_conf, temporary_conf
    from pipelines.store.lake import VECTOR_COLUMNS, plain_columns_conf

    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--rows", type=int, default=60_000)
    ap.add_argument("--reps", type=int, default=3)
    args = ap.parse_args(argv)
    builder = SparkSession.builder.master("local[2]").config("spark.ui.enabled", "false") \
        .config("spark.ui.showConsoleProgress", "false")
    for key, value in library_conf(["delta"], "local[2]").items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    work = Path(tempfile.mkdtemp(prefix="vector-write-"))
    try:
        spark.range(args.rows).repartition(4).select(
            (F.col("id") % 4).cast("string").alias("part"), F.lit("token").alias("token"),
            F.array(*[F.rand(i).cast("float") for i in range(768)]).alias("embedding")).write.parquet(str(work / "src"))
        rows, jvm = spark.read.parquet(str(work / "src")), jvm_process()
        results: dict[str, list] = {"without": [], "with": []}
        for _ in range(args.reps):
            for name, conf in (("without", {}), ("with", plain_columns_conf(VECTOR_COLUMNS))):
                shutil.rmtree(work / "out", ignore_errors=True)
                cpu, started = sum(jvm.cpu_times()[:2]), time.time()
                with temporary_conf(spark, conf):
                    rows.write.format("delta").partitionBy("part").save(str(work / "out"))
                results[name].append({"wall_s": round(time.time() - started, 2),
                                      "jvm_cpu_s": round(sum(jvm.cpu_times()[:2]) - cpu, 2)})
        print(json.dumps(results))
        return results
    finally:
        spark.stop()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
