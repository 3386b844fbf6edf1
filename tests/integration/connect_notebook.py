"""``python connect_notebook.py URL WIDGETS_JSON OUT_JSON``: notebooks/annotate_corpus.py, unchanged, through
the Databricks source-format runner on a Spark Connect session (as on a serverless or shared cluster),
in a process of its own (a Connect client and a classic driver do not share one Python process). Writes
what the test checks to OUT_JSON."""

import json
import sys
from pathlib import Path

from notebook_runner import run_notebook
from pyspark.sql import SparkSession

from pipelines.spark.session import session_conf

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "annotate_corpus.py"

url, widgets, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
spark = SparkSession.builder.remote(url).getOrCreate()
if widgets.get("database"):  # a schema the workspace has, as in Unity Catalog
    spark.sql(f"CREATE DATABASE IF NOT EXISTS {widgets['database']}")
before = session_conf(spark)
run = run_notebook(NOTEBOOK, spark, widgets=widgets)
after = session_conf(spark)
result = run.namespace["result"]
out.write_text(json.dumps({
    "session_type": type(spark).__module__,
    "changed_settings": sorted(k for k in before.keys() | after.keys() if before.get(k) != after.get(k)),
    "manifest": result.manifest,
    "catalog_tables": result.catalog_tables,
    "catalog_token_rows": spark.table(result.catalog_tables["token_embeddings"]).count(),
    "displayed": [[row.asDict(recursive=True) for row in shown] for shown in run.displayed],
}, default=str))
