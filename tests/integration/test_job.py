"""The annotate job from config to lake: tables, partitions, run manifest, errors, CLI and spark-submit."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from chispa import assert_df_equality
from click.testing import CliRunner

from lake_helpers import (JOB_CORPUS as CORPUS, assert_same_table, files_per_partition, job_config, read_table,
                          write_corpus)

from pipelines.tools.cli import main
from pipelines.run.job import JobError, run_annotate
from pipelines.model.bundle import BundleError
from pipelines.run import layout
from pipelines.spark.session import default_parallelism, library_conf, log4j_config_path

ROOT = Path(__file__).resolve().parents[2]


def config(tmp_path, corpus_dir, bundle, **output):
    return job_config(tmp_path / "lake", corpus_dir, bundle, **{f"output__{k}": v for k, v in output.items()})


# corpus_dir and first_run (the one job run these tests share with test_report): tests/integration/conftest.py


def test_token_table_has_one_row_per_token_with_offsets_into_the_text(spark, first_run, demo_bundle):
    tokens = read_table(spark, first_run.tables["token_embeddings"])
    assert tokens.columns == ["doc_id", "sentence", "token_index", "begin", "end", "token", "embedding", "run_id",
                              "lang"]
    assert {r.run_id for r in tokens.select("run_id").distinct().collect()} == {first_run.run_id}
    texts = {d: t for rows in CORPUS.values() for d, t in rows}
    rows = tokens.collect()
    assert {r.doc_id for r in rows} == {"de-1", "de-2", "zh-1", "xx-4"}
    for r in rows:
        assert texts[r.doc_id][r.begin : r.end + 1] == r.token
        assert len(r.embedding) == demo_bundle.manifest.dimension
    de1 = sorted((r for r in rows if r.doc_id == "de-1"), key=lambda r: r.token_index)
    assert [r.token for r in de1] == ["Der", "Hund", "schläft", ".", "Die", "Katze", "auch", "!"]
    assert [r.sentence for r in de1] == [0, 0, 0, 0, 1, 1, 1, 1]
    assert [r.token_index for r in de1] == list(range(8))


def test_lake_is_partitioned_like_the_input(first_run):
    table = Path(first_run.tables["token_embeddings"])
    assert sorted(p.name for p in table.iterdir() if p.is_dir() and "=" in p.name) == ["lang=de", "lang=xx", "lang=zh"]


def test_run_manifest_accounts_for_every_row(spark, first_run, demo_bundle):
    manifest = json.loads(Path(first_run.manifest_path).read_text())
    assert Path(first_run.manifest_path).parent.name == "_runs"
    written = read_table(spark, first_run.tables["token_embeddings"]).count()
    assert written == 8 + 4 + 16 + 3  # de-1, de-2, zh-1 (one token per ideograph), xx-4 ("ok", "\x07", "🙂")
    assert manifest["status"] == "committed"
    embedder = manifest["counts"].pop("embedder")  # the workers' own counters: every token went through the model
    assert embedder["pieces"] >= written and embedder["model_calls"] >= 1 and embedder["model_seconds"] > 0
    assert embedder["padding_ratio"] == round(embedder["padded_pieces"] / embedder["pieces"], 4)
    assert embedder["pieces"] >= embedder["windows"] >= 1
    assert manifest["progress"][-1]["tokens"] == written  # the samples of the report's throughput plot end at all
    assert manifest["counts"] == {
        "input_rows": 7, "annotated_rows": 4, "rows_with_tokens": 4, "kept_empty_rows": 0, "quarantined_rows": 3,
        "quarantined_by_reason": {"blank_text": 1, "empty_text": 1, "null_text": 1}, "tokens": written}
    assert manifest["model"]["storage_ref"] == demo_bundle.manifest.storage_ref
    assert manifest["model"]["kind"] == "demo" and "DEMO MODEL" in manifest["model"]["warning"]
    assert [p["values"] for p in manifest["input"]["annotated_partitions"]] == [
        {"lang": "de"}, {"lang": "xx"}, {"lang": "zh"}]
    assert manifest["config"]["input"]["path"].endswith("corpus0") and manifest["duration_s"] > 0


def test_every_table_gets_a_few_files_per_partition_not_one_per_task(spark, first_run):
    # The model pass runs tasks_per_core x cores = 8 tasks, each holding one bucket of one partition
    # (pipelines.run.layout): the token table gets a file per bucket, the buckets of this tiny corpus cut
    # small enough to keep both cores busy. The small tables are gathered by the writer (REBALANCE).
    for table, path in first_run.tables.items():
        layout = files_per_partition(spark, path)
        assert layout, table
        if table == "token_embeddings":
            assert sum(map(len, layout.values())) <= 8 + len(layout), layout
        else:
            assert all(len(sizes) == 1 for sizes in layout.values()), (table, layout)


def test_each_bucket_gets_a_task_of_its_own_the_largest_first(spark):
    # pipelines.run.layout.clustered on 150 rows of three partitions, cut into 5, 1 and 2 buckets whose
    # estimated sizes are 20, 40 and 5: 8 tasks, each one bucket of one partition (a range partitioning
    # could merge two buckets into one task, or leave one empty), b's in task 0, a's in 1-5, c's in 6-7.
    from pyspark.sql import functions as F

    from pipelines.run.layout import clustered

    rows = [(lang, f"{lang}-{i}", i) for lang, n in (("a", 100), ("b", 40), ("c", 10)) for i in range(n)]
    df = spark.createDataFrame(rows, "lang string, doc_id string, _row long")
    tasks = clustered(df, ["lang"], "doc_id", [("a",), ("b",), ("c",)], [5, 1, 2], [20.0, 40.0, 5.0])
    assert "_row" not in tasks.columns and tasks.count() == 150
    held = {r.task: (r.langs, r.n) for r in tasks.groupBy(F.spark_partition_id().alias("task")).agg(
        F.collect_set("lang").alias("langs"), F.count("*").alias("n")).collect()}
    assert sorted(held) == list(range(8)) and tasks.rdd.getNumPartitions() == 8
    assert [held[t][0] for t in range(8)] == [["b"]] + [["a"]] * 5 + [["c"]] * 2
    assert held[0][1] == 40 and sum(held[t][1] for t in range(1, 6)) == 100
    # an unpartitioned input: its rows spread over its buckets, one a task
    whole = clustered(df, [], "doc_id", [()], [4])
    sizes = [r["n"] for r in whole.groupBy(F.spark_partition_id().alias("task")).agg(F.count("*").alias("n"))
             .orderBy("task").collect()]
    assert len(sizes) == 4 and sum(sizes) == 150 and min(sizes) > 0, sizes


def test_the_task_keys_hash_as_spark_hashes_ints(spark):
    import numpy as np
    from pyspark.sql import functions as F

    from pipelines.run.layout import spark_int_hash

    values = [0, 1, -1, 2**31 - 1, -2**31] + np.random.default_rng(7).integers(-2**31, 2**31, 500).tolist()
    df = spark.createDataFrame([(v,) for v in values], "v int").select("v", F.hash("v").alias("h"))
    spark_hashes = {r.v: r.h for r in df.collect()}
    assert [spark_hashes[v] for v in values] == spark_int_hash(np.array(values)).tolist()


def _token_bytes(path) -> int:
    return sum(f.stat().st_size for f in Path(path).rglob("*.parquet"))


def test_the_vectors_are_not_shuffled_and_files_keep_to_the_target_size(spark, tmp_path, demo_bundle):
    # ~0.6 MiB of token rows a partition (128 float32 dimensions), files of a quarter MiB wanted
    words = "Der Hund schläft im Garten und die Katze sitzt auf dem Dach des alten Hauses"
    texts = {lang: [(f"{lang}-{i}", f"{words} {i}. " * 4) for i in range(80)] for lang in ("de", "fr")}
    corpus = write_corpus(tmp_path / "corpus", texts)
    clustered = run_annotate(job_config(tmp_path / "clustered", corpus, demo_bundle.path,
                                        output__target_file_mb=0.25), spark=spark)
    rebalanced = run_annotate(job_config(tmp_path / "rebalanced", corpus, demo_bundle.path,
                                         output__target_file_mb=0.25, spark__tasks_per_core=0), spark=spark)
    assert_same_table(spark, clustered.tables["token_embeddings"], rebalanced.tables["token_embeddings"])
    vectors = _token_bytes(clustered.tables["token_embeddings"])
    assert vectors > 1024 * 1024
    # the model pass shuffles the text only; the output's REBALANCE shuffles every vector
    assert clustered.manifest["shuffle"]["model_pass_bytes"] < vectors / 10, clustered.manifest["shuffle"]
    assert rebalanced.manifest["shuffle"]["model_pass_bytes"] > vectors / 2, rebalanced.manifest["shuffle"]
    total = clustered.manifest["shuffle"]["total_bytes"]
    assert total >= sum(v for k, v in clustered.manifest["shuffle"].items() if k != "total_bytes")
    # a file per bucket: as many as the partition's estimated output holds target files
    per_byte = layout.output_bytes_per_text_byte(clustered.manifest["model"]["dimension"], "float32")
    buckets = layout.bucket_counts([sum(len(t.encode()) for _, t in texts[lang]) * per_byte for lang in texts],
                                   0.25 * 1024 * 1024, 4 * default_parallelism(spark))
    files = files_per_partition(spark, clustered.tables["token_embeddings"])
    assert [len(files[f"lang={lang}"]) for lang in texts] == buckets and min(buckets) >= 2, (files, buckets)
    assert max(max(sizes) for sizes in files.values()) <= 0.6 * 1024 * 1024, files


def test_rerun_replaces_only_the_partitions_it_writes(spark, tmp_path, corpus_dir, demo_bundle):
    lake_config = config(tmp_path, corpus_dir, demo_bundle.path)
    run_annotate(lake_config, spark=spark)
    update = write_corpus(tmp_path / "update", {"de": [("de-9", "Neu hier.")]})
    run_annotate(config(tmp_path, update, demo_bundle.path), spark=spark)
    tokens = read_table(spark, str(tmp_path / "lake" / "token_embeddings"))
    by_lang = {r.lang: sorted(set(r.ids)) for r in tokens.groupBy("lang").agg({"doc_id": "collect_list"})
               .withColumnRenamed("collect_list(doc_id)", "ids").collect()}
    assert by_lang == {"de": ["de-9"], "zh": ["zh-1"], "xx": ["xx-4"]}
    quarantined = read_table(spark, str(tmp_path / "lake" / "quarantine"))
    assert sorted(r.doc_id for r in quarantined.collect()) == ["xx-1", "xx-2", "xx-3"]
    assert len(list((tmp_path / "lake" / "_runs").glob("*.json"))) == 2


def test_annotations_table_gives_the_same_token_table(spark, tmp_path, corpus_dir, demo_bundle, first_run):
    result = run_annotate(config(tmp_path, corpus_dir, demo_bundle.path, annotations=True), spark=spark)
    annotations = read_table(spark, result.tables["annotations"])
    assert set(annotations.columns) == {"doc_id", "lang", "document", "sentence", "token", "embeddings", "run_id"}
    ours = read_table(spark, result.tables["token_embeddings"]).drop("run_id").orderBy("doc_id", "token_index")
    direct = read_table(spark, first_run.tables["token_embeddings"]).drop("run_id").orderBy("doc_id", "token_index")
    assert_df_equality(ours, direct, ignore_nullable=True)


def test_missing_input_path(spark, tmp_path, demo_bundle):
    with pytest.raises(JobError, match="does not exist: point input.path"):
        run_annotate(config(tmp_path, tmp_path / "nowhere", demo_bundle.path), spark=spark)


def test_missing_text_column_lists_the_columns(spark, tmp_path, demo_bundle):
    part = tmp_path / "c" / "lang=de"
    part.mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": ["a"], "body": ["x"]}), part / "p.parquet")
    with pytest.raises(JobError, match=r"no text column 'text' \(set input.text_col\); its columns are: doc_id, body"):
        run_annotate(config(tmp_path, tmp_path / "c", demo_bundle.path), spark=spark)


def test_missing_and_corrupt_bundles(spark, tmp_path, corpus_dir, demo_bundle):
    with pytest.raises(JobError, match="model bundle .* not found: build it with `corpus-nlp prepare-model"):
        run_annotate(config(tmp_path, corpus_dir, tmp_path / "no-model"), spark=spark)
    corrupt = tmp_path / "corrupt"
    subprocess.run(["cp", "-r", str(demo_bundle.path), str(corrupt)], check=True)
    onnx = corrupt / "model.onnx"
    data = bytearray(onnx.read_bytes())
    data[len(data) // 2] ^= 0xFF
    onnx.write_bytes(bytes(data))
    with pytest.raises(BundleError, match="model.onnx"):
        run_annotate(config(tmp_path, corpus_dir, corrupt), spark=spark)


def test_cli_reports_errors_without_a_traceback(tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("input:\n  txt_col: body\n")
    result = CliRunner().invoke(main, ["annotate", "--config", str(bad)])
    assert result.exit_code == 2
    assert "unknown key 'input.txt_col' (did you mean 'text_col'?)" in result.output
    assert "Traceback" not in result.output


def test_cli_and_spark_submit_give_the_same_lake(spark, tmp_path, corpus_dir, demo_bundle, first_run):
    args = ["--config", str(ROOT / "conf" / "local.yaml"), "--input", str(corpus_dir),
            "--model", str(demo_bundle.path), "--no-ner"]
    cli = CliRunner().invoke(main, ["annotate", *args, "--output", str(tmp_path / "cli"), "--show", "0"])
    assert cli.exit_code == 0, cli.output
    assert "tokens 31" in cli.output and "quarantined 3 (blank_text 1, empty_text 1, null_text 1)" in cli.output
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable, "PYSPARK_DRIVER_PYTHON": sys.executable}
    submit = Path(sys.executable).parent / "spark-submit"
    delta = [arg for key, value in library_conf(["delta"]).items()
             for arg in (["--jars", value] if key == "spark.jars" else ["--conf", f"{key}={value}"])]
    proc = subprocess.run(
        [str(submit), "--master", "local[2]", "--conf", "spark.ui.enabled=false", *delta,
         "--driver-java-options", f"-Dlog4j2.configurationFile={log4j_config_path()}",  # as the README says
         str(ROOT / "jobs" / "annotate_corpus.py"),
         *args, "--output", str(tmp_path / "submit"), "--show", "0"],
        env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    # Spark's start-up INFO/WARN lines are off: stderr is empty. Not a log line: the notice Java itself prints
    # for the Vector API module Spark 4.2's launcher adds (no setting turns it off).
    jvm_notice = "WARNING: Using incubator modules: jdk.incubator.vector"
    assert [line for line in proc.stderr.splitlines() if line != jvm_notice] == [], proc.stderr[-3000:]
    # What the job says it does, phase by phase, then its summary: spark-submit's Python runner merges the
    # driver's stderr (where the notes and progress lines go) into its stdout.
    said = [line for line in proc.stdout.splitlines() if not line.startswith("annotating:")]
    assert said[:4] == ["annotating 4 rows into the token_embeddings table...", "writing the quarantine table...",
                        "reading the counts back from the lake...", ""], proc.stdout[-3000:]
    assert said[4].startswith("run ") and " committed in " in said[4]
    reference = read_table(spark, first_run.tables["token_embeddings"]).drop("run_id").orderBy("doc_id", "token_index")
    for lake in ("cli", "submit"):
        got = read_table(spark, str(tmp_path / lake / "token_embeddings")).drop("run_id").orderBy("doc_id", "token_index")
        assert_df_equality(got, reference, ignore_nullable=True)


# engine: sparknlp (with and without its jars): tests/integration/test_sparknlp_engine.py


def test_float16_embeddings_halve_the_vectors_and_decode_to_the_float32_ones(spark, tmp_path, corpus_dir,
                                                                            demo_bundle, first_run):
    import numpy as np

    from pipelines.annotate.tables import decode_float16

    result = run_annotate(config(tmp_path, corpus_dir, demo_bundle.path, embedding_dtype="float16"), spark=spark)
    half = {(r.doc_id, r.token_index): r.embedding for r in read_table(spark, result.tables["token_embeddings"]).collect()}
    full = {(r.doc_id, r.token_index): r.embedding for r in read_table(spark, first_run.tables["token_embeddings"]).collect()}
    assert half.keys() == full.keys()
    dim = demo_bundle.manifest.dimension
    for key, value in half.items():
        assert isinstance(value, (bytes, bytearray)) and len(value) == 2 * dim
        np.testing.assert_allclose(decode_float16(value), np.asarray(full[key]), rtol=1e-3, atol=1e-3)
