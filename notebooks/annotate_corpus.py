# Databricks notebook source
# MAGIC %md
# MAGIC # corpus-nlp: annotate a corpus from a notebook
# MAGIC
# MAGIC Runs the same job as `corpus-nlp annotate` on this notebook's Spark session. Set the widgets to a
# MAGIC Parquet corpus partitioned like `lang=de/`, a lake path, and a model bundle built with
# MAGIC `corpus-nlp prepare-model` (e.g. on a Unity Catalog volume). No Spark NLP jar is needed for the
# MAGIC `native` engine.

# COMMAND ----------

# MAGIC %pip install /Workspace/Repos/<you>/corpus-nlp

# COMMAND ----------

dbutils.widgets.text("input", "/Volumes/main/corpora/raw/news")
dbutils.widgets.text("output", "/Volumes/main/corpora/lake/news")
dbutils.widgets.text("model", "/Volumes/main/models/mbert")
dbutils.widgets.dropdown("incremental", "true", ["true", "false"])

# COMMAND ----------

from pipelines.config import parse_config
from pipelines.job import run_annotate

config = parse_config({
    "input": {"path": dbutils.widgets.get("input")},
    "output": {"path": dbutils.widgets.get("output")},
    "model": {"bundle": dbutils.widgets.get("model"), "build_demo_if_missing": False},
    "incremental": dbutils.widgets.get("incremental") == "true",
})
result = run_annotate(config, spark=spark)
result.manifest["counts"]

# COMMAND ----------

tokens = result.read(spark)  # the lake is Delta by default (output.format)
display(tokens.limit(20))

# COMMAND ----------

# MAGIC %md
# MAGIC The stages also work one by one, as in Spark NLP:

# COMMAND ----------

from pyspark.ml import Pipeline
from pipelines import BertEmbeddings, DocumentAssembler, SentenceDetector, Tokenizer

pipeline = Pipeline(stages=[
    DocumentAssembler().setInputCol("text").setOutputCol("document"),
    SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
    Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
    BertEmbeddings.loadSavedModel(dbutils.widgets.get("model")).setInputCols(["sentence", "token"]).setOutputCol("embeddings"),
])
sample = spark.read.parquet(dbutils.widgets.get("input")).limit(10)
display(pipeline.fit(sample).transform(sample).select("doc_id", "token.result", "embeddings.embeddings"))
