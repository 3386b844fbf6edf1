"""The lake's Delta operations through Spark SQL and the reader (no delta-spark Python package): which
folders are tables, and a delete as one commit that carries the run id."""

import json

import pytest

from pipelines.store.delta_sql import USER_METADATA
from pipelines.store.lake import Lake


def test_a_table_is_a_folder_with_a_commit(spark, tmp_path):
    (tmp_path / "empty").mkdir()
    (tmp_path / "killed" / "_delta_log").mkdir(parents=True)  # what a first write killed before its commit leaves
    spark.range(2).write.parquet(str(tmp_path / "parquet"))
    spark.range(2).write.format("delta").save(str(tmp_path / "committed"))
    lake = Lake(spark, str(tmp_path))
    assert {t: lake.has(t) for t in ("missing", "empty", "killed", "parquet", "committed")} == \
           {"missing": False, "empty": False, "killed": False, "parquet": False, "committed": True}


def test_a_corrupt_commit_is_an_error_not_a_missing_table(spark, tmp_path):
    log = tmp_path / "t" / "_delta_log"
    log.mkdir(parents=True)
    (log / "00000000000000000000.json").write_text("not a commit\n")
    with pytest.raises(Exception):  # a lake that reads as empty would be written over
        Lake(spark, str(tmp_path)).has("t")


def test_delete_rows_is_one_commit_with_the_run_id_and_leaves_the_session_as_it_was(spark, tmp_path):
    path = tmp_path / "t"
    spark.range(5).write.format("delta").save(str(path))
    lake = Lake(spark, str(tmp_path))
    spark.conf.set(USER_METADATA, "the notebook's own")
    try:
        lake.delete_rows("t", "id IN (1, 3)", "run-7")
        assert spark.conf.get(USER_METADATA) == "the notebook's own"
    finally:
        spark.conf.unset(USER_METADATA)
    lake.delete_rows("t", "id = 4", "run-8")
    assert spark.conf.get(USER_METADATA, None) is None

    assert sorted(r.id for r in spark.read.format("delta").load(str(path)).collect()) == [0, 2]
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").orderBy("version").collect()
    assert [(h.version, h.operation, h.userMetadata and json.loads(h.userMetadata)) for h in history] == [
        (0, "WRITE", None), (1, "DELETE", {"corpus_nlp_run_id": "run-7"}), (2, "DELETE", {"corpus_nlp_run_id": "run-8"})]
