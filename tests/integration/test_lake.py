"""The lake tells the truth: odd partition layouts, state read from the lake, re-runs, conflicts, failures.

Each test builds its corpus as real Parquet files the way other tools lay them out (pyarrow, Hive-style
directories written by hand) and checks what the lake holds afterwards, read back through Delta.
"""

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from lake_helpers import files_per_partition, job_config, manifests, read_table, start_cli_run, write_corpus

from pipelines.run.dry_run import dry_run
from pipelines.errors import JobError, RunInProgress
from pipelines.run.faults import HOLD_TASKS_UNTIL
from pipelines.run.job import run_annotate
from pipelines.store.lake import Lake
from pipelines.store.state import Partition


def write_rows(path: Path, rows: list[tuple], text_type=pa.string()) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table({"doc_id": [r[0] for r in rows], "text": [r[1] for r in rows]},
                            schema=pa.schema([("doc_id", pa.string()), ("text", text_type)])), path)


def manifest(result) -> dict:
    return json.loads(Path(result.manifest_path).read_text())


def where_docs_are(spark, lake: Path) -> dict[str, set[str]]:
    """doc id -> the tables that hold it."""
    found: dict[str, set[str]] = {}
    for table in ("token_embeddings", "quarantine"):
        for r in read_table(spark, lake / table).select("doc_id").distinct().collect():
            found.setdefault(r.doc_id, set()).add(table)
    return found


def test_zero_padded_partition_values_keep_their_spelling_and_incremental_state(spark, tmp_path, demo_bundle):
    corpus = tmp_path / "corpus"
    write_rows(corpus / "day=2024-01-05" / "hour=01" / "p.parquet", [("a", "Eins."), ("b", "Zwei.")])
    write_rows(corpus / "day=2024-01-05" / "hour=10" / "p.parquet", [("c", "Zehn.")])
    cfg = job_config(tmp_path / "lake", corpus, demo_bundle.path, incremental=True)
    first = manifest(run_annotate(cfg, spark=spark))
    assert first["status"] == "committed" and first["counts"]["annotated_rows"] == 3
    tokens = read_table(spark, tmp_path / "lake" / "token_embeddings")
    assert {(r.day, r.hour) for r in tokens.select("day", "hour").distinct().collect()} == {
        ("2024-01-05", "01"), ("2024-01-05", "10")}
    again = manifest(run_annotate(cfg, spark=spark))
    assert again["input"]["skipped_as_done"] == 2 and again["input"]["annotated_partitions"] == []
    write_rows(corpus / "day=2024-01-05" / "hour=01" / "q.parquet", [("d", "Neu.")])
    only = manifest(run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path, incremental=True,
                                            partitions=["hour=01"]), spark=spark))
    assert [p["values"] for p in only["input"]["annotated_partitions"]] == [{"day": "2024-01-05", "hour": "01"}]
    assert set(where_docs_are(spark, tmp_path / "lake")) == {"a", "b", "c", "d"}


def test_partition_values_spark_escapes_and_null_partitions(spark, tmp_path, demo_bundle):
    corpus = tmp_path / "corpus"
    write_rows(corpus / "src=a%3Ab" / "p.parquet", [("x1", "Colon source.")])  # Spark's spelling of "a:b"
    write_rows(corpus / "src=__HIVE_DEFAULT_PARTITION__" / "p.parquet", [("n1", "No source."), ("n2", "Zwei.")])
    cfg = job_config(tmp_path / "lake", corpus, demo_bundle.path, incremental=True)
    first = manifest(run_annotate(cfg, spark=spark))
    assert first["status"] == "committed" and first["counts"]["input_rows"] == 3 == first["counts"]["annotated_rows"]
    tokens = read_table(spark, tmp_path / "lake" / "token_embeddings")
    assert {r.src for r in tokens.select("src").distinct().collect()} == {"a:b", None}
    # The null partition's rows change: n2 becomes empty text. It must move, not be in both tables.
    write_rows(corpus / "src=__HIVE_DEFAULT_PARTITION__" / "p.parquet", [("n1", "No source."), ("n2", "")])
    second = manifest(run_annotate(cfg, spark=spark))
    assert [p["values"] for p in second["input"]["annotated_partitions"]] == [{"src": None}]
    assert where_docs_are(spark, tmp_path / "lake") == {
        "x1": {"token_embeddings"}, "n1": {"token_embeddings"}, "n2": {"quarantine"}}
    assert manifest(run_annotate(cfg, spark=spark))["input"]["skipped_as_done"] == 2


def test_flat_corpus_whose_rows_change_between_runs(spark, tmp_path, demo_bundle):
    corpus = tmp_path / "corpus"
    write_rows(corpus / "part-0.parquet", [("a", "Erste Fassung."), ("b", "Bleibt.")])
    cfg = job_config(tmp_path / "lake", corpus, demo_bundle.path)
    run_annotate(cfg, spark=spark)
    write_rows(corpus / "part-0.parquet", [("a", None), ("c", "Neu.")])  # a emptied, b gone, c new
    m = manifest(run_annotate(cfg, spark=spark))
    assert m["status"] == "committed" and m["input"]["partition_columns"] == []
    assert where_docs_are(spark, tmp_path / "lake") == {"a": {"quarantine"}, "c": {"token_embeddings"}}


def test_incremental_state_is_what_the_lake_holds(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [("de-1", "Der Hund.")], "fr": [("fr-1", "Le chien.")]})
    lake = tmp_path / "lake"
    mine = job_config(lake, corpus, demo_bundle.path, incremental=True)
    run_annotate(mine, spark=spark)
    # Another pipeline (mean pooling) overwrites lang=de: the next incremental run must redo it.
    other = job_config(lake, corpus, demo_bundle.path, partitions=["lang=de"], stages__embeddings__pooling="mean")
    run_annotate(other, spark=spark)
    redo = manifest(run_annotate(mine, spark=spark))
    assert [p["values"] for p in redo["input"]["annotated_partitions"]] == [{"lang": "de"}]
    # A file rewritten in place under the same name (new content, new size and time) is redone too.
    time.sleep(0.01)
    write_corpus(corpus, {"fr": [("fr-1", "Le chien dort."), ("fr-2", "Un autre.")]})
    rewritten = manifest(run_annotate(mine, spark=spark))
    assert [p["values"] for p in rewritten["input"]["annotated_partitions"]] == [{"lang": "fr"}]
    assert where_docs_are(spark, lake) == {"de-1": {"token_embeddings"}, "fr-1": {"token_embeddings"},
                                           "fr-2": {"token_embeddings"}}
    # Settings that do not change the output do not redo anything.
    faster = job_config(lake, corpus, demo_bundle.path, incremental=True, stages__embeddings__batch_size=3,
                        spark__arrow_batch_rows=7, stages__embeddings__max_tokens_per_chunk=100)
    assert manifest(run_annotate(faster, spark=spark))["input"]["skipped_as_done"] == 2


def test_a_setting_that_changes_the_schema_is_refused_before_any_model_work(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [("de-1", "Der Hund.")]})
    run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path, output__embedding_dtype="float16"),
                 spark=spark)
    # float16 and int8 are both binary columns: Delta would take int8 rows into a float16 table silently
    for dtype in ("int8", "float32"):
        other = job_config(tmp_path / "lake", corpus, demo_bundle.path, output__embedding_dtype=dtype)
        with pytest.raises(JobError, match=f"lake .* stores its embeddings as float16 .* output.embedding_dtype "
                                           f"{dtype} changes the token_embeddings table's column type") as e:
            run_annotate(other, spark=spark)
        assert "\n" not in str(e.value)
        with pytest.raises(JobError, match="stores its embeddings as float16"):  # as its dry run says
            dry_run(other, spark=spark)
    runs = [json.loads(p.read_text()) for p in (tmp_path / "lake" / "_runs").glob("*.json")]
    assert [m["status"] for m in runs] == ["committed"]  # refused before it started: no failed run to record

    # The CLI refuses before Spark starts: without Java, a run that started Spark would fail on that instead.
    (tmp_path / "f32.yaml").write_text(yaml.safe_dump({
        "input": {"path": str(corpus)}, "output": {"path": str(tmp_path / "lake")},
        "model": {"bundle": str(demo_bundle.path), "build_demo_if_missing": False}}))
    no_java = {k: v for k, v in os.environ.items() if k != "JAVA_HOME"}
    no_java["PATH"] = os.pathsep.join(d for d in no_java["PATH"].split(os.pathsep) if not (Path(d) / "java").exists())
    proc = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "annotate", "--config", str(tmp_path / "f32.yaml")],
                          env=no_java, capture_output=True, text=True)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert proc.stderr.startswith(f"Error: lake {tmp_path / 'lake'} stores its embeddings as float16"), proc.stderr


def test_plain_parquet_lake_keeps_working(spark, tmp_path, demo_bundle):
    corpus = tmp_path / "corpus"
    write_rows(corpus / "hour=01" / "p.parquet", [("a", "Eins."), ("b", "Zwei.")])
    cfg = job_config(tmp_path / "lake", corpus, demo_bundle.path, output__format="parquet", incremental=True)
    run_annotate(cfg, spark=spark)
    write_rows(corpus / "hour=01" / "p.parquet", [("a", "Eins."), ("b", " ")])
    m = manifest(run_annotate(cfg, spark=spark))
    assert m["status"] == "committed" and not (tmp_path / "lake" / "token_embeddings" / "_delta_log").exists()
    assert (tmp_path / "lake" / "token_embeddings" / "hour=01").is_dir()
    assert where_docs_are(spark, tmp_path / "lake") == {"a": {"token_embeddings"}, "b": {"quarantine"}}


def test_output_inside_the_input_is_refused_before_any_work(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [("de-1", "Der Hund.")]})
    with pytest.raises(JobError, match="lies inside the input path"):
        run_annotate(job_config(corpus / "lake", corpus, demo_bundle.path), spark=spark)


def test_corrupt_mismatched_or_incomplete_input_files_fail_the_run_in_one_line(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [("de-1", "Der Hund.")], "fr": [("fr-1", "Le chien.")]})
    good = (corpus / "lang=fr" / "part-00000.parquet").read_bytes()
    (corpus / "lang=fr" / "part-00001.parquet").write_bytes(good[: len(good) // 2])  # truncated copy
    lake = tmp_path / "lake"
    with pytest.raises(JobError, match=r"input file .*lang=fr/part-00001\.parquet is not a .*Parquet file") as e:
        run_annotate(job_config(lake, corpus, demo_bundle.path), spark=spark)
    assert "\n" not in str(e.value)
    (corpus / "lang=fr" / "part-00001.parquet").unlink()
    pq.write_table(pa.table({"doc_id": ["fr-9"], "text": [42]}), corpus / "lang=fr" / "part-00002.parquet")
    with pytest.raises(JobError, match=r"part-00002\.parquet stores column 'text' as int64, but .* as string"):
        run_annotate(job_config(lake, corpus, demo_bundle.path), spark=spark)
    (corpus / "lang=fr" / "part-00002.parquet").unlink()
    pq.write_table(pa.table({"doc_id": ["fr-8"], "body": ["Le texte est ailleurs."]}), corpus / "lang=fr" / "p3.parquet")
    with pytest.raises(JobError, match=r"p3\.parquet has no column 'text' \(its columns: doc_id, body\)"):
        run_annotate(job_config(lake, corpus, demo_bundle.path), spark=spark)
    # local input files are checked before Spark starts, so these runs never began: no manifest to mark
    assert list((lake / "_runs").glob("*.json")) == []


def test_a_second_run_on_a_busy_lake_refuses_in_one_line_naming_the_first(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [(f"de-{i}", f"Satz {i}. Noch einer.") for i in range(200)]})
    lake = tmp_path / "lake"
    release = tmp_path / "release"  # the other run's token pass waits for it: it stays busy while this one starts
    cfg = job_config(lake, corpus, demo_bundle.path, spark__master="local[1]",
                     spark__conf={HOLD_TASKS_UNTIL: str(release)})
    other = start_cli_run(tmp_path / "other.yaml", cfg)
    try:
        holding = None
        while holding is None and other.poll() is None:  # its lease is held once it knows what it writes
            holding = next((m for m in manifests(lake) if m.get("lease", {}).get("state") == "held"), None)
            time.sleep(0.2)
        assert holding is not None, other.communicate()[1][-2000:]
        assert holding["lease"]["partitions"] is None  # it creates the lake's tables: it holds the whole lake
        with pytest.raises(RunInProgress, match=f"run {holding['run_id']} .* is writing to .*\\(the whole lake\\)"):
            run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True), spark=spark)
    finally:
        release.touch()
        out, err = other.communicate()
    assert other.returncode == 0, err[-2000:]
    statuses = sorted(m["status"] for m in manifests(lake))
    assert statuses == ["committed", "failed"]


@pytest.mark.parametrize("annotations", [False, True], ids=["token table", "annotations table"])
def test_rows_that_break_the_pipeline_go_to_quarantine_and_the_run_goes_on(spark, tmp_path, demo_bundle, annotations):
    corpus = tmp_path / "corpus"
    # Bytes that are not UTF-8 in a string column, as a careless writer leaves them.
    texts = pa.array([b"Gut.", b"Kaputt \xff\xfe hier.", b"Auch gut."], pa.binary()).cast(pa.string(), safe=False)
    (corpus / "lang=de").mkdir(parents=True)
    pq.write_table(pa.table({"doc_id": ["ok-1", "bad", "ok-2"], "text": texts}), corpus / "lang=de" / "p.parquet")
    result = run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path, output__annotations=annotations),
                          spark=spark)
    counts = manifest(result)["counts"]
    assert counts["input_rows"] == 3 and counts["annotated_rows"] == 2
    assert counts["quarantined_by_reason"] == {"error": 1}
    (row,) = read_table(spark, tmp_path / "lake" / "quarantine").collect()
    assert row.doc_id == "bad" and row.reason == "error" and row.error.startswith("UnicodeDecodeError (read)")
    assert where_docs_are(spark, tmp_path / "lake") == {"ok-1": {"token_embeddings"}, "bad": {"quarantine"},
                                                        "ok-2": {"token_embeddings"}}
    if annotations:
        written = read_table(spark, tmp_path / "lake" / "annotations")
        assert sorted(r.doc_id for r in written.select("doc_id").collect()) == ["ok-1", "ok-2"]
    with pytest.raises(JobError, match="too many failed rows: more than 0 rows failed") as e:
        run_annotate(job_config(tmp_path / "lake2", corpus, demo_bundle.path, policies__max_error_rows=0,
                                output__annotations=annotations), spark=spark)
    assert "\n" not in str(e.value)


def test_text_stored_as_binary_is_read_as_utf8(spark, tmp_path, demo_bundle):
    corpus = tmp_path / "corpus"
    write_rows(corpus / "lang=fr" / "p.parquet", [("b-1", "Le chien dort.".encode()), ("b-2", b"\xc3\x28")],
               text_type=pa.binary())
    result = run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path), spark=spark)
    assert where_docs_are(spark, tmp_path / "lake") == {"b-1": {"token_embeddings"}, "b-2": {"quarantine"}}
    tokens = [r.token for r in read_table(spark, tmp_path / "lake" / "token_embeddings").orderBy("token_index").collect()]
    assert tokens == ["Le", "chien", "dort", "."]
    assert manifest(result)["counts"]["quarantined_by_reason"] == {"error": 1}


# --- file sizes ----------------------------------------------------------------------------------
def _rows_spread_over_tasks(spark, rows: int = 8000, tasks: int = 8):
    """Rows of two partitions in every one of ``tasks`` tasks, ~256 incompressible bytes each (like vectors)."""
    from pyspark.sql import functions as F

    return spark.range(rows).repartition(tasks).select(
        F.col("id"), F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("part"),
        F.array(*[F.rand(seed).cast("float") for seed in range(64)]).alias("vector"))


PARTS = [Partition((("part", "a"),), ""), Partition((("part", "b"),), "")]


def test_a_partition_gets_one_file_or_one_per_target_size_not_one_per_task(spark, tmp_path):
    rows = _rows_spread_over_tasks(spark)
    layouts = {}
    for target_mb in (0, 128, 0.25):
        lake = Lake(spark, str(tmp_path / f"lake-{target_mb}"), "delta", target_mb)
        lake.replace("t", rows, ["part"], PARTS, "run-1")
        assert lake.read("t").count() == 8000
        layouts[target_mb] = files_per_partition(spark, tmp_path / f"lake-{target_mb}" / "t")
    assert sorted(layouts[0]) == ["part=a", "part=b"]
    assert all(len(sizes) == 8 for sizes in layouts[0].values())  # 0: Spark's default, a file per task
    assert all(len(sizes) == 1 for sizes in layouts[128].values())  # each ~1 MiB partition: one file
    for sizes in layouts[0.25].values():  # ~1 MiB in files of at most about a quarter of it
        assert 2 <= len(sizes) <= 8 and max(sizes) <= 0.5 * 1024 * 1024, sizes


def test_a_plain_parquet_lake_gets_one_file_per_partition_too(spark, tmp_path):
    lake = Lake(spark, str(tmp_path / "lake"), "parquet", 128)
    lake.replace("t", _rows_spread_over_tasks(spark), ["part"], PARTS, "run-1")
    layout = files_per_partition(spark, tmp_path / "lake" / "t")
    assert {p: len(sizes) for p, sizes in layout.items()} == {"part=a": 1, "part=b": 1}


@pytest.mark.parametrize("fmt", ["delta", "parquet"])
def test_vectors_are_written_without_a_dictionary_or_statistics(spark, tmp_path, fmt):
    """parquet-mr would try a dictionary on every vector column chunk (and keep min/max of every float);
    these vectors repeat, so it would keep one here. The other columns keep theirs, and the settings do not
    outlive the write."""
    from pyspark.sql import functions as F

    from pipelines.spark.session import session_conf

    rows = spark.range(2000).select(
        F.when(F.col("id") % 2 == 0, "a").otherwise("b").alias("part"), F.lit("same").alias("token"),
        F.array(*[(F.col("id") % 3).cast("float") for _ in range(16)]).alias("embedding"))
    Lake(spark, str(tmp_path / "lake"), fmt, 128).replace("t", rows, ["part"], PARTS, "run-1")
    files = [pq.ParquetFile(f).metadata for f in sorted((tmp_path / "lake" / "t").rglob("*.parquet"))]
    chunks = [md.row_group(g).column(c) for md in files for g in range(md.num_row_groups)
              for c in range(md.row_group(g).num_columns)]
    vectors = [c for c in chunks if c.path_in_schema == "embedding.list.element"]
    tokens = [c for c in chunks if c.path_in_schema == "token"]
    assert len(vectors) == len(tokens) >= 2
    assert not any("DICTIONARY" in e for c in vectors for e in c.encodings)
    assert all(any("DICTIONARY" in e for e in c.encodings) and c.is_stats_set for c in tokens)
    writer = re.search(r"parquet-mr version (\d+)\.(\d+)", files[0].created_by)
    if (int(writer[1]), int(writer[2])) >= (1, 14):  # PySpark 4's; 1.13 (PySpark 3.5's) has no such setting
        assert not any(c.is_stats_set for c in vectors)
    assert not [k for k in session_conf(spark) if k.startswith("parquet.enable.dictionary")]
