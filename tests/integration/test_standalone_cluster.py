"""A real standalone cluster: master and worker started in a clean environment (``env -i``: no virtualenv, no
PYTHONPATH), the job submitted with the packed executor environment (``--archives``) and the model bundle as a
``file:`` URI (fetched and checked by the driver, shipped to the executor, checked there); the lake equals a local
run's.

The packed environment is cached under ~/.cache/corpus-nlp/envs by the wheel's contents, so a test session
pays for it once per code version. On a shared 2-core machine (load ~5) the whole test took 163 s with the
environment packed afresh (setup 65 s, with the Spark session and the demo model), 87-91 s of it the test itself:
master and worker, the submitted job, the local run.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml
from lake_helpers import assert_same_table, job_config, write_corpus

from pipelines.run.job import run_annotate
from pipelines.store.lake import QUARANTINE_TABLE, TOKEN_TABLE
from pipelines.spark.session import log4j_config_path

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[2]
CORPUS = {
    "de": [("de-1", "Angela Merkel besuchte Paris. Danach flog sie nach Berlin."), ("de-2", "Ein kurzer Satz.")],
    "fr": [("fr-1", "Emmanuel Macron est à Berlin. Il parle."), ("fr-2", "   "), ("fr-3", None)],
}


def _java_home() -> str:
    if os.environ.get("JAVA_HOME"):
        return os.environ["JAVA_HOME"]
    return str(Path(os.path.realpath(shutil.which("java"))).parents[1])


def _spark_home() -> Path:
    import pyspark

    return Path(pyspark.__file__).parent


def _clean_env(**extra) -> dict:
    """What `env -i PATH=/usr/bin:/bin JAVA_HOME=...` leaves: no virtualenv, no Python path."""
    return {"PATH": "/usr/bin:/bin", "JAVA_HOME": _java_home(), **extra}


def _start(cmd: list[str], log: Path, ready: str) -> tuple[subprocess.Popen, re.Match]:
    """Start a daemon in its own process group; return once its log has the ``ready`` line (or it died)."""
    proc = subprocess.Popen(cmd, env=_clean_env(), stdout=log.open("w"), stderr=subprocess.STDOUT, cwd=log.parent,
                            start_new_session=True)
    while True:
        found = re.search(ready, log.read_text(errors="replace"))
        if found:
            return proc, found
        if proc.poll() is not None:
            raise AssertionError(f"{cmd[1]} exited ({proc.returncode}):\n{log.read_text(errors='replace')[-3000:]}")
        time.sleep(0.2)


def _stop(proc: subprocess.Popen) -> None:
    """The daemon and what it started (the executor JVM and its Python workers share its process group)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass
    proc.wait()


def _python_error(log: str) -> str:
    """The Python traceback in a Spark error, without the JVM's stack."""
    start = log.find("Traceback (most recent call last)")
    return log[start:log.find("\n\tat ", start)] if start >= 0 else ""


@pytest.fixture
def cluster(tmp_path):
    """A standalone master and one worker (2 cores, 2 GiB), on ephemeral ports, in a clean environment."""
    spark_class = str(_spark_home() / "bin" / "spark-class")
    started = []
    try:
        master, found = _start([spark_class, "org.apache.spark.deploy.master.Master", "--host", "127.0.0.1",
                                "--port", "0", "--webui-port", "0"], tmp_path / "master.log",
                               r"Starting Spark master at (spark://\S+)")
        started.append(master)
        url = found.group(1)
        (tmp_path / "work").mkdir()
        worker, _ = _start([spark_class, "org.apache.spark.deploy.worker.Worker", "--host", "127.0.0.1", "--port", "0",
                            "--webui-port", "0", "--cores", "2", "--memory", "2g", "--work-dir",
                            str(tmp_path / "work"), url], tmp_path / "worker.log", r"Successfully registered with master")
        started.append(worker)
        yield url
    finally:
        for proc in reversed(started):
            _stop(proc)
        for unpacked in (tmp_path / "work").glob("*/*/env"):  # ~550 MiB each; the executor logs stay
            shutil.rmtree(unpacked, ignore_errors=True)


@pytest.fixture(scope="module")
def packed_env(tmp_path_factory):
    from pipelines.tools.pack_env import pack_env

    return pack_env(tmp_path_factory.mktemp("env") / "corpus-nlp-env.tar.gz").path


def test_a_job_submitted_to_a_clean_standalone_cluster_writes_the_lake_of_a_local_run(
        spark, tmp_path, cluster, packed_env, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", CORPUS)
    model = Path(demo_bundle.path).as_uri()  # file:///...: read through Hadoop, shipped to the executor
    config = job_config(tmp_path / "cluster-lake", corpus, model, output__format="parquet", ner__model=None)
    config_file = tmp_path / "job.yaml"
    config_file.write_text(yaml.safe_dump(config.model_dump(mode="json")))

    submit = [str(_spark_home() / "bin" / "spark-submit"), "--master", cluster,
              "--archives", f"{packed_env}#env", "--conf", "spark.pyspark.python=./env/bin/python",
              "--conf", f"spark.pyspark.driver.python={sys.executable}",
              "--conf", "spark.executor.memory=1g", "--conf", "spark.task.maxFailures=1",
              "--driver-java-options", f"-Dlog4j2.configurationFile={log4j_config_path()}",
              str(ROOT / "jobs" / "annotate_corpus.py"), "--config", str(config_file), "--show", "0"]
    # The driver keeps the user's environment (this checkout's code); the executor gets only the archive.
    done = subprocess.run(submit, env=_clean_env(PYTHONPATH=str(ROOT), HOME=str(Path.home())), cwd=tmp_path,
                          capture_output=True, text=True)
    (tmp_path / "submit.log").write_text(done.stdout + done.stderr)
    assert done.returncode == 0, _python_error(done.stderr) or done.stderr[-4000:]

    manifests = [json.loads(p.read_text()) for p in (tmp_path / "cluster-lake" / "_runs").glob("*.json")]
    assert [m["status"] for m in manifests] == ["committed"]
    shipped = list((tmp_path / "work").rglob(".*.tar.verified"))
    assert len(shipped) == 1, "the executor did not check a shipped bundle"

    local = job_config(tmp_path / "local-lake", corpus, model, output__format="parquet", ner__model=None)
    run_annotate(local, spark=spark)
    counts = manifests[0]["counts"]
    assert counts["tokens"] > 0 and counts["quarantined_by_reason"] == {"blank_text": 1, "null_text": 1}, counts
    for table, order in ((TOKEN_TABLE, ("doc_id", "token_index")), (QUARANTINE_TABLE, ("doc_id",))):
        assert_same_table(spark, tmp_path / "cluster-lake" / table, tmp_path / "local-lake" / table, order)
