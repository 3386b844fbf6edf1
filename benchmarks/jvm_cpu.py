"""CPU the Spark JVM spends per annotate run: the share of the cores the Python workers do not get.

    python -m benchmarks.jvm_cpu [--sentences 1000] [--bundle models/bench-mbert-int8] [--reps 3]
                                 [--conf KEY=VALUE ...]

Runs the job ``--reps`` times in one Spark session (local[2]) on a generated corpus and prints, per run,
the wall time and the CPU seconds of the JVM process. The first run pays the cold JVM (JIT, code
generation); the later ones show the steady cost per run and per token. The int8 bundle keeps the runs
short; the JVM's work does not depend on the model's precision.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import psutil

from benchmarks import throughput as bench
from benchmarks.corpus import generate, write_parquet

ROOT = Path(__file__).resolve().parent.parent


def jvm_process() -> psutil.Process:
    java = [p for p in psutil.Process().children(recursive=True) if p.name() == "java"]
    if not java:
        raise RuntimeError("no JVM child process: is Spark running in local mode from this process?")
    return java[0]


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def main(argv: list[str] | None = None) -> None:
    from pipelines.run.job import run_annotate

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--sentences", type=int, default=1000)
    ap.add_argument("--bundle", default=str(ROOT / "models" / "bench-mbert-int8"))
    ap.add_argument("--reps", type=int, default=3)
    ap.add_argument("--work", default=str(ROOT / "out" / "jvm-cpu"))
    ap.add_argument("--conf", action="append", default=[], metavar="KEY=VALUE", help="extra Spark setting")
    a = ap.parse_args(argv)
    work = Path(a.work).resolve()
    settings = bench.Settings(sentences=a.sentences, tiny=False, work=work, models=ROOT / "models", out=work,
                              batch_size=32, max_batch_pieces=1024, arrow_batch_rows=256,
                              conf=dict(kv.split("=", 1) for kv in a.conf))
    bundle = Path(a.bundle).resolve()
    if not (bundle / "manifest.json").exists():
        raise SystemExit(f"no bundle at {bundle}: run `make bench` once (it builds models/bench-mbert*)")
    corpus = write_parquet(generate(a.sentences), work / f"corpus-{a.sentences}")
    spark = bench.fresh_spark(settings)
    jvm = jvm_process()
    for rep in range(a.reps):
        before, started = cpu_seconds(jvm), time.perf_counter()
        result = run_annotate(bench.job_config(settings, corpus, work / "lake", bundle), spark=spark)
        wall, cpu = time.perf_counter() - started, cpu_seconds(jvm) - before
        tokens = result.manifest["counts"]["tokens"]
        print(f"run {rep}: {wall:.1f} s wall, JVM {cpu:.1f} CPU s, {tokens:,} tokens "
              f"({1000 * cpu / tokens:.2f} JVM CPU ms per token)", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
