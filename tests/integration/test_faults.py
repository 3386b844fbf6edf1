"""Faults: a killed Python worker, a driver killed mid-write, and two executor JVMs give a clean run's lake."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml
from lake_helpers import assert_same_table, job_config, write_corpus

from pipelines.run.faults import KILL_WORKER_ONCE
from pipelines.run.job import run_annotate

ROOT = Path(__file__).resolve().parents[2]
CORPUS = {
    "de": [(f"de-{i}", f"Satz Nummer {i}. Noch ein Satz über München!") for i in range(40)],
    "zh": [(f"zh-{i}", f"第{i}句话。北京很大！") for i in range(40)],
    "en": [(f"en-{i}", f"Sentence {i}; the U.S. team won (again).") for i in range(40)],
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("fault-corpus"), CORPUS)


@pytest.fixture(scope="module")
def clean_lake(spark, tmp_path_factory, corpus, demo_bundle):
    lake = tmp_path_factory.mktemp("clean") / "lake"
    run_annotate(job_config(lake, corpus, demo_bundle.path, spark__arrow_batch_rows=16), spark=spark)
    return lake


def _run_cli(config_file: Path, extra=()):
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "annotate", "--config", str(config_file),
                           "--show", "0", *extra], env=env, capture_output=True, text=True, cwd=ROOT)


def _write_config(path: Path, config) -> Path:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    return path


def test_killed_python_worker_is_retried_and_the_output_equals_a_clean_run(spark, tmp_path, corpus, demo_bundle,
                                                                           clean_lake):
    marker = tmp_path / "worker-killed"
    spark.conf.set(KILL_WORKER_ONCE, str(marker))
    try:
        run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path, spark__arrow_batch_rows=16), spark=spark)
    finally:
        spark.conf.unset(KILL_WORKER_ONCE)
    assert marker.exists(), "the failure was never injected"
    assert_same_table(spark, tmp_path / "lake" / "token_embeddings", clean_lake / "token_embeddings")


def test_driver_killed_during_the_write_then_rerun_equals_a_clean_run(spark, tmp_path, corpus, demo_bundle, clean_lake):
    lake = tmp_path / "lake"
    cfg = job_config(lake, corpus, demo_bundle.path, spark__arrow_batch_rows=16, spark__master="local[2]",
                     spark__conf={"spark.corpusnlp.test.killDriverDuringWrite": "true"}, incremental=True)
    killed = _run_cli(_write_config(tmp_path / "killed.yaml", cfg))
    assert killed.returncode == -9, killed.stderr[-2000:]
    manifests = list((lake / "_runs").glob("*.json"))
    assert len(manifests) == 1 and '"status": "running"' in manifests[0].read_text()
    # The next scheduled run finds nothing committed, says what became of the killed run, and finishes the job.
    rerun = run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True), spark=spark)
    assert_same_table(spark, lake / "token_embeddings", clean_lake / "token_embeddings")
    killed_run = json.loads(manifests[0].read_text())
    assert killed_run["status"] == "abandoned" and "is gone" in killed_run["reason"]
    assert rerun.manifest["abandoned_runs_found"] == [killed_run["run_id"]]


def test_two_executor_jvms_give_the_same_output_as_local_mode(tmp_path, spark, corpus, demo_bundle, clean_lake):
    cfg = job_config(tmp_path / "lake", corpus, demo_bundle.path, spark__master="local-cluster[2,1,2048]",
                     spark__arrow_batch_rows=16)
    done = _run_cli(_write_config(tmp_path / "cluster.yaml", cfg))
    assert done.returncode == 0, done.stderr[-3000:]
    assert_same_table(spark, tmp_path / "lake" / "token_embeddings", clean_lake / "token_embeddings")
