"""The annotate job: partitioned Parquet corpus in, token embeddings (and annotations) in the lake out."""

from __future__ import annotations

import json
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from pipelines import native
from pipelines.config import JobConfig

TOKEN_TABLE = "token_embeddings"
ANNOTATIONS_TABLE = "annotations"
RUNS_DIR = "_runs"


class JobError(RuntimeError):
    """A problem with the job's inputs, phrased with what to do about it."""


@dataclass
class RunResult:
    run_id: str
    manifest_path: str
    tables: dict[str, str]
    manifest: dict = field(default_factory=dict)


# --- inputs ---------------------------------------------------------------------------------------
def _is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def _local(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def ensure_model(config: JobConfig) -> str:
    """The bundle directory to use, building the demo model first when the config allows it."""
    bundle = config.model.bundle
    if _is_local(bundle) and not (_local(bundle) / "manifest.json").exists():
        if not config.model.build_demo_if_missing:
            raise JobError(f"model bundle {bundle} not found: build it with `corpus-nlp prepare-model --from-dir "
                           f"CHECKPOINT --out {bundle}` (or `corpus-nlp demo-model --out {bundle}`)")
        from pipelines.model.demo import build_demo_model

        print(f"Model bundle {bundle} is missing: building the demo model (random weights) there...")
        build_demo_model(_local(bundle))
    return bundle


def read_corpus(spark, config: JobConfig):
    """The input rows and their partition columns; clear errors for a missing path or column."""
    settings = config.input
    path = settings.path
    if _is_local(path):
        local = _local(path)
        if not local.exists():
            raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
        if not any(local.rglob("*.parquet")):
            raise JobError(f"input path {path} holds no Parquet files: nothing to annotate")
    try:
        df = spark.read.option("basePath", path).parquet(path)
    except Exception as e:  # AnalysisException: path not found, not Parquet, ...
        raise JobError(f"cannot read Parquet corpus at {path}: {str(e).splitlines()[0]}") from e
    for role, col in (("text", settings.text_col), ("id", settings.id_col)):
        if col not in df.columns:
            key = "text_col" if role == "text" else "id_col"
            raise JobError(f"input {path} has no {role} column {col!r} (set input.{key}); its columns are: "
                           f"{', '.join(df.columns)}")
    return df, partition_columns(df, path)


def partition_columns(df, root: str) -> list[str]:
    """Hive-style partition columns (``lang=de/``) of the files under ``root``, outermost first."""
    files = df.inputFiles()
    if not files:
        return []
    relative = files[0].split(root.rstrip("/").split("://")[-1], 1)[-1]
    names = [seg.split("=", 1)[0] for seg in relative.strip("/").split("/")[:-1] if "=" in seg]
    return [n for n in names if n in df.columns]


# --- pipeline ------------------------------------------------------------------------------------
def build_stages(config: JobConfig, bundle: str, columns: list[str]):
    from pipelines.stages import BertEmbeddings, DocumentAssembler, SentenceDetector, Tokenizer

    s = config.stages
    detector = SentenceDetector(language=s.sentence_detector.language).setCustomBounds(
        s.sentence_detector.custom_bounds
    ).setUseCustomBoundsOnly(s.sentence_detector.use_custom_bounds_only).setMinLength(
        s.sentence_detector.min_length
    ).setMaxLength(s.sentence_detector.max_length)
    if s.sentence_detector.split_length:
        detector.setSplitLength(s.sentence_detector.split_length)
    if config.input.language_col and config.input.language_col in columns:
        detector.setLanguageCol(config.input.language_col)
    tokenizer = (
        Tokenizer().setTargetPattern(s.tokenizer.target_pattern).setExceptions(s.tokenizer.exceptions)
        .setCaseSensitiveExceptions(s.tokenizer.case_sensitive_exceptions).setSplitChars(s.tokenizer.split_chars)
        .setMinLength(s.tokenizer.min_length).setMaxLength(s.tokenizer.max_length)
    )
    if s.tokenizer.context_chars is not None:
        tokenizer.setContextChars(s.tokenizer.context_chars)
    embeddings = BertEmbeddings(
        modelPath=bundle, maxSentenceLength=s.embeddings.max_sentence_length, batchSize=s.embeddings.batch_size,
        pooling=s.embeddings.pooling, intraOpThreads=s.embeddings.intra_op_threads,
    )
    embeddings._sync_with_bundle()
    return [DocumentAssembler(inputCol=config.input.text_col), detector, tokenizer, embeddings]


def with_token_embeddings(stages, keep: list[str]):
    """``df.transform(with_token_embeddings(stages, ["doc_id", "lang"]))``: one row per token.

    Runs the fused native stages and flattens in the same Python pass, so the per-token annotation
    structs are never materialised in the JVM.
    """
    from pyspark.sql.types import ArrayType, FloatType, IntegerType, StringType, StructField, StructType

    from pipelines.stages import _check_inputs

    steps = [s._step() for s in stages]
    embeddings_col = steps[-1].output_col

    def flatten(batches):
        for rb in batches:
            columns = native.apply_steps(rb, steps)
            yield native.token_rows(columns, rb, embeddings_col, keep)

    def transform(df):
        _check_inputs(df, steps)
        kept = [df.schema[c] for c in keep]
        schema = StructType(kept + [
            StructField("sentence", IntegerType(), False), StructField("token_index", IntegerType(), False),
            StructField("begin", IntegerType(), False), StructField("end", IntegerType(), False),
            StructField("token", StringType(), False), StructField("embedding", ArrayType(FloatType(), False), False),
        ])
        return df.mapInArrow(flatten, schema)

    return transform


def tokens_from_annotations(annotations_df, keep: list[str], embeddings_col: str):
    """The token table derived from a written annotations table (when ``output.annotations`` is on)."""
    from pyspark.sql import functions as F

    exploded = annotations_df.select(*keep, F.posexplode(embeddings_col).alias("token_index", "a"))
    return exploded.select(
        *keep,
        F.col("a.metadata").getItem("sentence").cast("int").alias("sentence"),
        F.col("token_index").cast("int").alias("token_index"),
        F.col("a.begin").alias("begin"), F.col("a.end").alias("end"), F.col("a.result").alias("token"),
        F.col("a.embeddings").alias("embedding"),
    )


# --- the job -------------------------------------------------------------------------------------
def run_annotate(config: JobConfig, spark=None) -> RunResult:
    from pipelines.session import configure, get_spark
    from pipelines.stages import run_native_stages

    started = time.time()
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    spark = configure(spark, config.spark) if spark is not None else get_spark(config.spark)
    bundle_path = ensure_model(config)
    df, partitions = read_corpus(spark, config)
    id_col, text_col = config.input.id_col, config.input.text_col
    extra = [config.input.language_col] if config.input.language_col in df.columns and \
        config.input.language_col not in partitions else []
    df = df.select(id_col, text_col, *partitions, *extra)
    stages = build_stages(config, bundle_path, df.columns)
    bundle = stages[-1].bundle()
    keep = [id_col, *partitions]

    out = config.output.path.rstrip("/")
    tables = {TOKEN_TABLE: f"{out}/{TOKEN_TABLE}"}
    if config.output.annotations:
        tables[ANNOTATIONS_TABLE] = f"{out}/{ANNOTATIONS_TABLE}"
        annotated = run_native_stages(df, stages).drop(text_col, *extra)
        _write(annotated, tables[ANNOTATIONS_TABLE], partitions)
        written = spark.read.parquet(tables[ANNOTATIONS_TABLE])
        tokens = tokens_from_annotations(written, keep, stages[-1].getOutputCol())
    else:
        tokens = df.transform(with_token_embeddings(stages, keep))
    _write(tokens, tables[TOKEN_TABLE], partitions)

    input_partitions = [r.asDict() for r in df.select(*partitions).distinct().orderBy(*partitions).collect()] \
        if partitions else []
    counts = _counts(spark, df, tables[TOKEN_TABLE], id_col, partitions, input_partitions)
    manifest = {
        "run_id": run_id,
        "engine": config.engine,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "duration_s": round(time.time() - started, 3),
        "model": {
            "storage_ref": bundle.manifest.storage_ref,
            "kind": bundle.manifest.kind,
            "name": bundle.manifest.name,
            "precision": bundle.manifest.precision,
            "dimension": bundle.manifest.dimension,
            "bundle": str(bundle_path),
            **({"warning": "DEMO MODEL: random weights, the vectors carry no meaning"}
               if bundle.manifest.kind == "demo" else {}),
        },
        "input": {"path": config.input.path, "partition_columns": partitions, "partitions": input_partitions},
        "counts": counts,
        "tables": tables,
        "config": config.model_dump(mode="json"),
    }
    manifest_path = f"{out}/{RUNS_DIR}/{run_id}.json"
    write_text(spark, manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))
    return RunResult(run_id, manifest_path, tables, manifest)


def _write(df, path: str, partitions: list[str]) -> None:
    writer = df.write.mode("overwrite")  # with partitionOverwriteMode=dynamic: only the partitions written
    if partitions:
        writer = writer.partitionBy(*partitions)
    writer.parquet(path)


def _counts(spark, df, token_path: str, id_col: str, partitions: list[str], touched: list[dict]) -> dict:
    from pyspark.sql import functions as F

    tokens = spark.read.parquet(token_path)
    if partitions and touched:
        cond = None
        for p in touched:
            c = None
            for k, v in p.items():
                term = F.col(k).isNull() if v is None else (F.col(k) == F.lit(v))
                c = term if c is None else c & term
            cond = c if cond is None else cond | c
        tokens = tokens.where(cond)
    stats = tokens.agg(F.count(F.lit(1)).alias("tokens"), F.countDistinct(id_col).alias("docs")).first()
    rows = df.count()
    return {
        "input_rows": rows,
        "rows_with_tokens": stats["docs"],
        "rows_without_tokens": rows - stats["docs"],  # null, empty or whitespace-only text
        "tokens": stats["tokens"],
    }


def write_text(spark, path: str, text: str) -> None:
    """Write a small file next to the tables, on a local disk or any Hadoop file system."""
    if _is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_suffix(".tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # atomic: a reader never sees half a manifest
        return
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    stream = hpath.getFileSystem(spark._jsc.hadoopConfiguration()).create(hpath, True)
    stream.write(bytearray(text.encode("utf-8")))
    stream.close()
