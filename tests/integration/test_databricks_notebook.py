"""notebooks/annotate_corpus.py, unchanged, on the test session through a Databricks source-format runner:
widgets set as a job would, NER on, the lake registered as tables, the session's settings given back."""

from pathlib import Path

import pytest
from lake_helpers import write_corpus
from notebook_runner import run_notebook

from pipelines.spark.session import session_conf

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "annotate_corpus.py"
CORPUS = {"de": [("de-1", "Angela Merkel besuchte Berlin."), ("de-2", "Die Katze schläft.")],
          "en": [("en-1", "John Smith works for Acme in London.")]}
OVERWRITE_MODE = "spark.sql.sources.partitionOverwriteMode"


@pytest.fixture(scope="module")
def ner_dir(demo_bundle, tmp_path_factory):
    """An NER model over the demo embeddings (the demo NER model: NumPy, no torch); one epoch is enough to have
    one (not a good one)."""
    from pipelines.ner.demo import build_demo_ner

    return build_demo_ner(tmp_path_factory.mktemp("ner") / "ner", demo_bundle.path, epochs=1, log=None).path


def test_notebook_runs_unchanged_with_ner_and_tables_and_leaves_the_session_as_it_was(
        spark, tmp_path, demo_bundle, ner_dir):
    corpus = write_corpus(tmp_path / "corpus", CORPUS)
    spark.sql(f"CREATE DATABASE notebook_test LOCATION '{tmp_path / 'warehouse'}'")
    spark.conf.set(OVERWRITE_MODE, "static")  # the user's own setting; the job needs dynamic while it runs
    try:
        before = session_conf(spark)
        run = run_notebook(NOTEBOOK, spark, widgets={
            "input": str(corpus), "output": str(tmp_path / "lake"), "database": "notebook_test",
            "model": str(demo_bundle.path), "ner": str(ner_dir), "incremental": "true"})
        after = session_conf(spark)
    finally:
        spark.conf.set(OVERWRITE_MODE, "dynamic")
    assert after == before  # nothing the job set stays on the session

    assert any("%pip install" in note for note in run.notes)
    result = run.namespace["result"]
    assert result.manifest["status"] == "committed" and result.manifest["ner"] is not None
    assert set(result.catalog_tables) == {"token_embeddings", "quarantine", "entities"}
    tokens = spark.table("notebook_test.token_embeddings")
    assert tokens.count() == result.read(spark).count() == len(run.displayed[0]) > 0
    assert {"ner", "chunk"} <= set(tokens.columns)
    entities = spark.table("notebook_test.entities")
    assert sum(r["count"] for r in run.displayed[1]) == entities.count()
    assert {r.doc_id for r in run.displayed[2]} == {"de-1", "de-2", "en-1"}  # the stages one by one
    spark.sql("DROP DATABASE notebook_test CASCADE")


def test_runner_refuses_what_it_cannot_run(spark, tmp_path):
    """The runner is strict: a magic it does not know, or a widget no cell defined, fails the run."""
    from notebook_runner import WidgetNotDefined

    notebook = tmp_path / "nb.py"
    notebook.write_text("# Databricks notebook source\nx = 1\n\n# COMMAND ----------\n\n# MAGIC %scala\n# MAGIC 1\n")
    with pytest.raises(ValueError, match=r"cell 2: magic %scala is not supported"):
        run_notebook(notebook, spark)
    notebook.write_text("# Databricks notebook source\ndbutils.widgets.get('input')\n")
    with pytest.raises(WidgetNotDefined):
        run_notebook(notebook, spark)
    notebook.write_text("print('no header')\n")
    with pytest.raises(ValueError, match="not a Databricks source notebook"):
        run_notebook(notebook, spark)
