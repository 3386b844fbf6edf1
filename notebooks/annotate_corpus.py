# Databricks notebook source
# MAGIC %md
# MAGIC # corpus-nlp: annotate a corpus from a notebook
# MAGIC
# MAGIC Runs the same job as `corpus-nlp annotate` on this notebook's Spark session: BERT token embeddings and
# MAGIC named entities into a Delta lake, optionally registered as tables of a schema. Set the widgets:
# MAGIC - `input`: a Parquet corpus partitioned like `lang=de/`, or `input_table`: a table (`catalog.schema.table`)
# MAGIC - `output`: the lake's path; `database`: the schema to register its tables in (`catalog.schema`; empty: none).
# MAGIC   Unity Catalog registers tables over an external location (`s3://`, `abfss://`), not over a volume.
# MAGIC - `model` and `ner`: a model bundle (`corpus-nlp prepare-model`) and an NER model (`corpus-nlp train-ner`),
# MAGIC   e.g. on a volume; `ner` empty: no entities.
# MAGIC
# MAGIC The first cell installs the project from this Git folder (the notebook's working directory is its own
# MAGIC folder); or install the wheel instead: `%pip install /Volumes/.../corpus_nlp-0.1.0-py3-none-any.whl`.
# MAGIC The job's Spark settings hold while it runs; the session gets its own back afterwards. No Spark NLP jar is
# MAGIC needed for the `native` engine, and the runtime's own PySpark and Delta are used.

# COMMAND ----------

# MAGIC %pip install ..

# COMMAND ----------

dbutils.library.restartPython()

# COMMAND ----------

dbutils.widgets.text("input", "/Volumes/main/corpora/raw/news")
dbutils.widgets.text("input_table", "")
dbutils.widgets.text("output", "/Volumes/main/corpora/lake/news")
dbutils.widgets.text("database", "")
dbutils.widgets.text("model", "/Volumes/main/models/mbert")
dbutils.widgets.text("ner", "/Volumes/main/models/ner")
dbutils.widgets.dropdown("incremental", "true", ["true", "false"])

# COMMAND ----------

from pipelines import parse_config, run_annotate

input_table = dbutils.widgets.get("input_table").strip()
config = parse_config({
    "input": {"table": input_table} if input_table else {"path": dbutils.widgets.get("input")},
    "output": {"path": dbutils.widgets.get("output"), "database": dbutils.widgets.get("database").strip() or None},
    "model": {"bundle": dbutils.widgets.get("model"), "build_demo_if_missing": False},
    "ner": {"model": dbutils.widgets.get("ner").strip() or None},
    "incremental": dbutils.widgets.get("incremental") == "true",
}, source="widgets")
result = run_annotate(config, spark=spark)
print(result.manifest["status"], result.manifest["counts"])

# COMMAND ----------

# MAGIC %md
# MAGIC The tables: by their catalog names when `database` is set, else from the lake's paths.

# COMMAND ----------

def table(name):
    if name in result.catalog_tables:
        return spark.table(result.catalog_tables[name])
    return result.read(spark, name)


display(table("token_embeddings").limit(20))
if "entities" in result.tables:
    display(table("entities").groupBy("entity").count())

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
corpus = spark.table(input_table) if input_table else spark.read.parquet(dbutils.widgets.get("input"))
sample = corpus.limit(10)
display(pipeline.fit(sample).transform(sample).select("doc_id", "token.result", "embeddings.embeddings"))
