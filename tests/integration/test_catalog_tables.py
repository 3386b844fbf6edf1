"""Catalog tables: the corpus read from a table (``input.table``), the lake's tables registered in a
database (``output.database``), in the test session's own catalog (in memory, with Delta's catalog)."""

import json
from pathlib import Path

import pytest
from lake_helpers import job_config

from pipelines.run.dry_run import dry_run
from pipelines.run.job import JobError, run_annotate

ROWS = [("de-1", "Der Hund schläft.", "de"), ("de-2", "Die Katze auch!", "de"), ("fr-1", "Bonjour à tous.", "fr")]


@pytest.fixture
def database(spark, tmp_path, request):
    """A fresh database whose own folder lies in the test's tmp dir (not ./spark-warehouse)."""
    name = f"catalog_{request.node.name[5:25]}"
    spark.sql(f"CREATE DATABASE {name} LOCATION '{tmp_path / 'warehouse'}'")
    yield name
    spark.sql(f"DROP DATABASE {name} CASCADE")


def corpus_table(spark, database, location: Path, rows=ROWS, mode="errorifexists"):
    """A Delta table partitioned by lang, as a corpus often lives on a lakehouse."""
    df = spark.createDataFrame(rows, "doc_id string, text string, lang string")
    df.write.format("delta").mode(mode).partitionBy("lang").option("path", str(location)) \
        .saveAsTable(f"{database}.corpus")
    return f"{database}.corpus"


def annotated(result) -> list[str]:
    return [p["values"]["lang"] for p in json.loads(Path(result.manifest_path).read_text())["input"]
            ["annotated_partitions"]]


def test_corpus_from_a_table_and_the_lake_as_tables(spark, tmp_path, database, demo_bundle):
    table = corpus_table(spark, database, tmp_path / "corpus")
    cfg = job_config(tmp_path / "lake", tmp_path / "unused", demo_bundle.path, input={"table": table},
                     output__database=database, output__table_prefix="news_", incremental=True)

    first = run_annotate(cfg, spark=spark)
    assert annotated(first) == ["de", "fr"]
    names = {t: f"{database}.news_{t}" for t in ("token_embeddings", "quarantine")}
    assert first.catalog_tables == names and first.manifest["catalog_tables"] == names
    assert first.manifest["input"]["table"] == table and "path" not in first.manifest["input"]
    tokens = spark.table(names["token_embeddings"])
    lake = first.read(spark)
    assert tokens.count() == lake.count() > 0
    assert {r.doc_id for r in tokens.select("doc_id").distinct().collect()} == {"de-1", "de-2", "fr-1"}
    assert spark.table(names["quarantine"]).count() == 0

    corpus_table(spark, database, tmp_path / "corpus", [("fr-2", "Une nouvelle ligne.", "fr")], mode="append")
    plan = dry_run(cfg, spark)  # the appended file changes fr's signature only
    assert plan.input_path == f"table {table}"
    assert [(spec, why) for spec, _, why in plan.partitions] == [("lang=de", "done"), ("lang=fr", "changed files")]
    third = run_annotate(cfg, spark=spark)
    assert annotated(third) == ["fr"]
    # the registered name follows the lake: the new partition's tokens, the others kept
    ids = {r.doc_id for r in spark.table(names["token_embeddings"]).select("doc_id").distinct().collect()}
    assert ids == {"de-1", "de-2", "fr-1", "fr-2"}


def test_catalog_problems_are_one_line_before_any_write(spark, tmp_path, database, demo_bundle):
    corpus_table(spark, database, tmp_path / "corpus")
    with pytest.raises(JobError, match=rf"cannot read input table {database}\.nope: .*set input\.table"):
        run_annotate(job_config(tmp_path / "lake1", tmp_path / "unused", demo_bundle.path,
                                input={"table": f"{database}.nope"}), spark=spark)

    with pytest.raises(JobError, match=r"database no_such_db \(output\.database\) does not exist"):
        run_annotate(job_config(tmp_path / "lake2", tmp_path / "unused", demo_bundle.path,
                                input={"table": f"{database}.corpus"}, output__database="no_such_db"), spark=spark)
    assert not (tmp_path / "lake2" / "token_embeddings").exists()

    # a name already registered over another location is never repointed
    spark.sql(f"CREATE TABLE {database}.token_embeddings (x INT) USING DELTA LOCATION '{tmp_path / 'other'}'")
    with pytest.raises(JobError, match=rf"table {database}\.token_embeddings exists over .*other, not over this lake"):
        run_annotate(job_config(tmp_path / "lake3", tmp_path / "unused", demo_bundle.path,
                                input={"table": f"{database}.corpus"}, output__database=database), spark=spark)
