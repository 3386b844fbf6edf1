"""Spark Connect as a driver (Databricks serverless and shared clusters): the CLI with ``spark.remote`` and the
notebook, against a real Spark Connect server of its own process, write the lake a classic driver writes
for the same config, row for row; ``spark.remote: local[N]`` starts a server in the job's own process; the
sparknlp engine is refused in one line. Needs PySpark 4 with the connect extra (the Python 3.12 leg)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from connect_server import connect_server, connect_supported
from lake_helpers import JOB_CORPUS, assert_same_table, job_config, read_table, write_corpus

from pipelines.spark.session import DELTA_CONF

pytestmark = pytest.mark.skipif(connect_supported() is not None, reason=str(connect_supported()))
HERE = Path(__file__).resolve().parent


@pytest.fixture(scope="module")
def connect_url(tmp_path_factory):
    from pipelines.spark.jars import jar_paths

    with connect_server(tmp_path_factory.mktemp("connect-server"), jar_paths("delta"), DELTA_CONF) as url:
        yield url


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """The job tests' corpus, plus a row whose bytes are not UTF-8 (a row error, reported by its worker), and
    sentences that repeat (computed once, shipped to the server's executors: sentence reuse)."""
    root = write_corpus(tmp_path_factory.mktemp("corpus"), JOB_CORPUS)
    texts = pa.array([b"Gut.", b"Kaputt \xff\xfe hier.", "Привет, мир. Это тест.".encode(),
                      "Это тест. Привет, мир.".encode()], pa.binary())
    (root / "lang=bad").mkdir()
    pq.write_table(pa.table({"doc_id": ["ok-1", "broken", "ru-1", "ru-2"], "text": texts.cast(pa.string(), safe=False)}),
                   root / "lang=bad" / "part-00000.parquet")
    return root


def _cli(config: dict, tmp_path: Path, *args: str) -> subprocess.CompletedProcess:
    from pipelines.spark.jars import cache_root

    path = tmp_path / f"config-{len(list(tmp_path.glob('config-*')))}.yaml"
    path.write_text(yaml.safe_dump(config), encoding="utf-8")
    env = {**os.environ, "CORPUS_NLP_CACHE_DIR": str(tmp_path / "cache"), "CORPUS_NLP_JARS_DIR": str(cache_root()),
           "PYSPARK_PYTHON": sys.executable}
    return subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "annotate", "--config", str(path), "--log-format",
                           "json", "--show", "0", *args], env=env, capture_output=True, text=True)


def _summary(proc) -> dict:
    assert proc.returncode == 0, proc.stderr[-3000:]
    return json.loads(proc.stdout.strip().splitlines()[-1])


def _manifest(path: str) -> dict:
    return json.loads(Path(path).read_text())


def test_cli_on_a_connect_server_writes_the_lake_a_classic_driver_writes(spark, connect_url, corpus, demo_bundle,
                                                                          tmp_path):
    config = {"spark": {"remote": connect_url},
              "input": {"path": str(corpus)}, "output": {"path": str(tmp_path / "connect-lake")},
              # a URI: fetched and checked by the client, shipped to the server as a session artifact
              "model": {"bundle": demo_bundle.path.as_uri(), "build_demo_if_missing": False},
              # the repeated sentences computed once, from the lake's sentence cache on later runs
              "reuse": {"sentences": "lake"}}
    summary = _summary(_cli(config, tmp_path))
    connect = _manifest(summary["manifest"])
    assert connect["status"] == "committed" and connect["spark"]["driver"] == "connect"
    assert list((tmp_path / "cache" / "models" / "fetched").glob("*.tar"))  # the archive that was shipped

    classic = run_annotate_classic(spark, tmp_path / "classic-lake", corpus, demo_bundle.path)
    assert classic["spark"]["driver"] == "classic"
    for table, order in (("token_embeddings", ("doc_id", "token_index")), ("quarantine", ("doc_id",))):
        assert_same_table(spark, tmp_path / "connect-lake" / table, tmp_path / "classic-lake" / table, order)
    def counted(manifest):  # the embedder's own counters include its seconds
        return {k: v for k, v in manifest["counts"].items() if k != "embedder"}

    assert counted(connect) == counted(classic)
    assert connect["counts"]["quarantined_by_reason"]["error"] == 1  # the broken row, reported by its worker
    (broken,) = read_table(spark, tmp_path / "connect-lake" / "quarantine").where("doc_id = 'broken'").collect()
    assert broken.error.startswith("UnicodeDecodeError (read)")
    # reuse.sentences lake: every distinct sentence went through the model once, in the shared pass (and into
    # the lake's sentence cache), and every occurrence was served from the file shipped to the server
    # (classic: reuse off, every occurrence through the model)
    reuse = connect["reuse"]
    assert reuse["repeated_sentences"] == 2 and reuse["cache_added"] == reuse["distinct_sentences"] > 2, reuse
    assert reuse["served_from_run"] == reuse["sentences_seen"] == reuse["sentences"] and reuse["computed_in_pass"] == 0
    assert 0 < reuse["wordpieces_computed"] < classic["embedder"]["pieces"]
    assert connect["progress"][-1]["tokens"] == connect["counts"]["tokens"]
    # the shuffle bytes come from the driver's status store, which a Connect client cannot read: null, and why
    assert connect["shuffle"]["total_bytes"] is None and "Spark Connect" in connect["shuffle"]["note"]
    assert classic["shuffle"]["total_bytes"] > classic["shuffle"]["model_pass_bytes"] > 0

    dry = json.loads(_cli({**config, "incremental": True}, tmp_path, "--dry-run").stdout.strip().splitlines()[-1])
    assert (dry["event"], dry["to_do"], dry["already_done"]) == ("dry_run", 0, connect["input"]["selected_partitions"])
    assert dry["fingerprint"] == connect["fingerprint"]

    # spark.remote: local[2] starts a Connect server in the job's own process; the lake's state says done
    again = _summary(_cli({**config, "spark": {"remote": "local[2]"}, "incremental": True}, tmp_path))
    assert (again["status"], again["partitions_annotated"], again["partitions_already_done"]) == \
           ("committed", 0, connect["input"]["selected_partitions"])
    assert _manifest(again["manifest"])["spark"]["driver"] == "connect"


def run_annotate_classic(spark, lake: Path, corpus: Path, bundle) -> dict:
    from pipelines.run.job import run_annotate

    return run_annotate(job_config(lake, corpus, bundle, reuse__sentences="off"), spark=spark).manifest


def test_notebook_runs_unchanged_on_a_connect_session(spark, connect_url, demo_bundle, tmp_path):
    out = tmp_path / "notebook.json"
    corpus = write_corpus(tmp_path / "corpus", {k: JOB_CORPUS[k] for k in ("de", "zh")})  # the stage cells: no bad rows
    widgets = {"input": str(corpus), "output": str(tmp_path / "lake"), "database": "connect_notebook",
               "model": str(demo_bundle.path), "ner": "", "incremental": "true"}
    proc = subprocess.run([sys.executable, str(HERE / "connect_notebook.py"), connect_url, json.dumps(widgets), str(out)],
                          cwd=HERE, capture_output=True, text=True,
                          env={**os.environ, "PYTHONPATH": os.pathsep.join([str(HERE), os.environ.get("PYTHONPATH", "")])})
    assert proc.returncode == 0, proc.stderr[-3000:]
    got = json.loads(out.read_text())
    assert got["session_type"].startswith("pyspark.sql.connect")
    assert got["changed_settings"] == []  # the session gets its settings back
    manifest = got["manifest"]
    assert manifest["status"] == "committed" and manifest["spark"]["driver"] == "connect"
    assert set(got["catalog_tables"]) == {"token_embeddings", "quarantine"}
    assert got["catalog_token_rows"] == manifest["counts"]["tokens"] > 0
    assert len(got["displayed"][0]) == min(20, manifest["counts"]["tokens"])  # display(... .limit(20))
    assert {r["doc_id"] for r in got["displayed"][-1]} == {"de-1", "de-2", "zh-1"}  # the stages one by one
    tokens = read_table(spark, tmp_path / "lake" / "token_embeddings")
    assert tokens.count() == manifest["counts"]["tokens"]


def test_a_connect_client_sees_that_a_local_server_is_one_executor(connect_url):
    """reuse.sentences auto picks worker on one executor: a Connect client reads the server's master."""
    code = ("import sys; from pyspark.sql import SparkSession; from pipelines.spark.session import one_executor; "
            "spark = SparkSession.builder.remote(sys.argv[1]).getOrCreate(); print(type(spark).__module__, "
            "one_executor(spark))")
    proc = subprocess.run([sys.executable, "-c", code, connect_url], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split()[-2:] == ["pyspark.sql.connect.session", "True"]


def test_the_sparknlp_engine_is_refused_under_connect_in_one_line(tmp_path):
    proc = _cli({"engine": "sparknlp", "spark": {"remote": "sc://127.0.0.1:1"}}, tmp_path)
    assert proc.returncode == 2
    errors = [line for line in proc.stderr.splitlines() if "sparknlp" in line]
    assert len(errors) == 1 and "needs a classic Spark driver" in errors[0] and "engine: native" in errors[0]
