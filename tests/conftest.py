"""Shared fixtures: one local Spark session and one demo model bundle per test session."""

from __future__ import annotations

import os
import sys

import pytest


def pytest_collection_modifyitems(config, items):
    """Tests marked ``sparknlp`` need the Spark NLP jar, pinned for Spark 3.5 only; tests marked ``torch``
    need the torch extra. Elsewhere (the Spark 4 legs, which install no torch) they are skipped, saying why."""
    import importlib.util

    import pyspark

    from pipelines.spark import jars

    skips = {}
    if "sparknlp" not in jars.pinned():
        skips["sparknlp"] = pytest.mark.skip(reason=f"needs the Spark NLP jar, which exists for Spark 3.5 only "
                                                    f"(this is PySpark {pyspark.__version__})")
    if importlib.util.find_spec("torch") is None:
        skips["torch"] = pytest.mark.skip(reason="needs torch (the torch extra), which is not installed here")
    for item in items:
        for marker, skip in skips.items():
            if item.get_closest_marker(marker) is not None:
                item.add_marker(skip)


@pytest.fixture(scope="session")
def spark(tmp_path_factory):
    from pyspark.sql import SparkSession

    from pipelines.spark import jars
    from pipelines.spark import session as sessions

    os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    # The real Spark NLP and Delta jars, fetched by `make jars` (Maven): the reference engine and the lake;
    # on Spark 4 only Delta (there is no Spark NLP jar for it: tests marked sparknlp are skipped there).
    builder = SparkSession.builder
    for key, value in sessions.library_conf(jars.pinned()).items():
        builder = builder.config(key, value)
    session = (
        builder.master("local[2,4]")  # 4 attempts per task: the fault tests need retries
        .appName("corpus-nlp-tests")
        .config("spark.ui.enabled", "false")
        .config("spark.ui.showConsoleProgress", "false")
        .config("spark.sql.shuffle.partitions", "2")
        # Delta rebuilds a table's state from its log in this many tasks (default 50): 2, as the shuffles, so
        # that a test's small commits and deletes take a second, not ten
        .config("spark.databricks.delta.snapshotPartitions", "2")
        .config("spark.sql.sources.partitionOverwriteMode", "dynamic")
        .config("spark.sql.execution.arrow.pyspark.enabled", "true")
        .config("spark.driver.memory", "2g")
        # the catalog's default database lives here, not in ./spark-warehouse of the checkout
        .config("spark.sql.warehouse.dir", str(tmp_path_factory.mktemp("spark-warehouse")))
        # Spark NLP 5.5.3 registers every ONNX model it imports with SparkContext.addFile under its file name
        # (model.onnx), and the tests import several into this one session; in local mode each model keeps the
        # ONNX session it opened at import, so replacing the registered file changes no model.
        .config("spark.files.overwrite", "true")
        .getOrCreate()
    )
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture(scope="session")
def demo_bundle(tmp_path_factory):
    """The demo model exactly as `corpus-nlp demo-model` builds it (random weights, sample-corpus vocab)."""
    from pipelines.model.demo import build_demo_model

    return build_demo_model(tmp_path_factory.mktemp("models") / "demo-bert")
