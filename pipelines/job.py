"""The annotate job: partitioned Parquet corpus in, token embeddings (and annotations) in the lake out.

Every input row ends in exactly one place: the ``token_embeddings`` table (through its tokens), the
``quarantine`` table (with its reason), or, under ``policies.empty_text: keep``, the count of kept
empty documents. The run manifest records the counts and the job fails when they do not add up.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from urllib.parse import urlparse

from pipelines import sparknlp_engine, state, tables
from pipelines.config import JobConfig
from pipelines.text.sentences import VISIBLE_CHAR_REGEX

TOKEN_TABLE = "token_embeddings"
ANNOTATIONS_TABLE = "annotations"
QUARANTINE_TABLE = "quarantine"
ENTITIES_TABLE = "entities"
RUNS_DIR = "_runs"
# Test-only failure injection (tests/integration/test_faults.py); never set them in production.
KILL_WORKER_ONCE = "spark.corpusnlp.test.killWorkerOnce"
KILL_DRIVER_DURING_WRITE = "spark.corpusnlp.test.killDriverDuringWrite"


class JobError(RuntimeError):
    """A problem with the job's inputs or outputs, phrased with what to do about it."""


@dataclass
class RunResult:
    run_id: str
    manifest_path: str
    tables: dict[str, str]
    manifest: dict = field(default_factory=dict)


# --- paths ---------------------------------------------------------------------------------------
def _is_local(path: str) -> bool:
    return urlparse(path).scheme in ("", "file")


def _local(path: str) -> Path:
    return Path(urlparse(path).path if path.startswith("file:") else path)


def _hadoop_fs(spark, path: str):
    jvm = spark._jvm
    hpath = jvm.org.apache.hadoop.fs.Path(path)
    return hpath.getFileSystem(spark._jsc.hadoopConfiguration()), hpath


def write_text(spark, path: str, text: str) -> None:
    """Write a small file next to the tables, on a local disk or any Hadoop file system."""
    if _is_local(path):
        target = _local(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # atomic: a reader never sees half a manifest
        return
    fs, hpath = _hadoop_fs(spark, path)
    stream = fs.create(hpath, True)
    stream.write(bytearray(text.encode("utf-8")))
    stream.close()


def read_manifests(spark, runs_dir: str) -> list[dict]:
    texts = []
    if _is_local(runs_dir):
        local = _local(runs_dir)
        texts = [p.read_text(encoding="utf-8") for p in sorted(local.glob("*.json"))] if local.exists() else []
    else:
        fs, hpath = _hadoop_fs(spark, runs_dir)
        if fs.exists(hpath):
            for status in fs.listStatus(hpath):
                if status.getPath().getName().endswith(".json"):
                    stream = fs.open(status.getPath())
                    texts.append(spark._jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
                    stream.close()
    manifests = []
    for t in texts:
        try:
            manifests.append(json.loads(t))
        except json.JSONDecodeError:  # a manifest cut short by a crash: that run committed nothing
            continue
    return manifests


def _delete_dir(spark, path: str) -> None:
    if _is_local(path):
        shutil.rmtree(_local(path), ignore_errors=True)
    else:
        fs, hpath = _hadoop_fs(spark, path)
        fs.delete(hpath, True)


def check_output_writable(path: str) -> None:
    if not _is_local(path):
        return  # remote stores report their own permission errors at write time
    target = _local(path)
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise JobError(f"output path {path} is not writable ({e.strerror}): choose another output.path / "
                       "--output, or fix its permissions") from e


# --- inputs --------------------------------------------------------------------------------------
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


def ensure_ner(config: JobConfig, bundle: str) -> str | None:
    """The NER directory to use (None: no NER), training the demo NER model when the config allows it."""
    ner = config.ner.model or None  # "" (--no-ner) turns NER off too
    if not ner or not _is_local(ner) or (_local(ner) / "ner.json").exists():
        return ner
    if not config.ner.build_demo_if_missing:
        raise JobError(f"NER model {ner} not found: train one with `corpus-nlp train-ner --config "
                       f"conf/train_ner.yaml --model {bundle} --out {ner}`, or unset ner.model")
    try:
        import torch  # noqa: F401  (training only; annotating never needs it)
    except ImportError:
        raise JobError(f"NER model {ner} is missing and training the demo one needs PyTorch: "
                       "`pip install -e '.[torch]'` (CPU build), or unset ner.model to annotate without NER") from None
    from pipelines.ner.demo import build_demo_ner

    print(f"NER model {ner} is missing: training the demo NER model on the bundled NER sample...")
    build_demo_ner(_local(ner), bundle)
    return ner


def read_corpus(spark, config: JobConfig):
    """The input rows (with their file and row position) and partition columns; clear errors."""
    settings = config.input
    path = settings.path
    if _is_local(path):
        local = _local(path)
        if not local.exists():
            raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
        if not any(local.rglob("*.parquet")):
            raise JobError(f"input path {path} holds no Parquet files: nothing to annotate (check the path, "
                           "or that the corpus was written as Parquet)")
    try:
        df = spark.read.option("basePath", path).parquet(path)
    except Exception as e:  # AnalysisException: path not found, not Parquet, ...
        raise JobError(f"cannot read Parquet corpus at {path}: {str(e).splitlines()[0]}") from e
    for role, col in (("text", settings.text_col), ("id", settings.id_col)):
        if col not in df.columns:
            key = "text_col" if role == "text" else "id_col"
            raise JobError(f"input {path} has no {role} column {col!r} (set input.{key}); its columns are: "
                           f"{', '.join(df.columns)}")
    files = df.inputFiles()
    partitions = partition_columns(files, path, df.columns)
    return df, partitions, files


def partition_columns(files: list[str], root: str, columns: list[str]) -> list[str]:
    """Hive-style partition columns (``lang=de/``) of the files under ``root``, outermost first."""
    if not files:
        return []
    relative = files[0].split(root.rstrip("/").split("://")[-1], 1)[-1]
    names = [seg.split("=", 1)[0] for seg in relative.strip("/").split("/")[:-1] if "=" in seg]
    return [n for n in names if n in columns]


def _partition_condition(partitions: list[state.Partition]):
    from pyspark.sql import functions as F

    columns = {k for p in partitions for k, _ in p.values}
    if len(columns) == 1:  # the usual layout (lang=xx/): one isin, not an OR per partition
        (column,) = columns
        values = [v for p in partitions for _, v in p.values]
        known = [v for v in values if v is not None]
        cond = F.col(column).cast("string").isin(known) if known else F.lit(False)
        return cond | F.col(column).isNull() if None in values else cond
    cond = F.lit(False)
    for p in partitions:
        term = F.lit(True)
        for k, v in p.values:
            term = term & (F.col(k).isNull() if v is None else (F.col(k).cast("string") == F.lit(v)))
        cond = cond | term
    return cond


# --- pipeline ------------------------------------------------------------------------------------
def build_stages(config: JobConfig, bundle: str, columns: list[str], ner_dir: str | None = None):
    """The native stages; with ``ner_dir``, NerDLModel and NerConverter after the embeddings."""
    from pipelines.stages import BertEmbeddings, DocumentAssembler, SentenceDetector, Tokenizer

    s = config.stages
    sd = s.sentence_detector
    detector = (SentenceDetector(language=sd.language).setCustomBounds(sd.custom_bounds)
                .setUseCustomBoundsOnly(sd.use_custom_bounds_only).setMinLength(sd.min_length)
                .setMaxLength(sd.max_length))
    if sd.split_length:
        detector.setSplitLength(sd.split_length)
    if config.input.language_col and config.input.language_col in columns:
        detector.setLanguageCol(config.input.language_col)
    tk = s.tokenizer
    tokenizer = (Tokenizer().setTargetPattern(tk.target_pattern).setExceptions(tk.exceptions)
                 .setCaseSensitiveExceptions(tk.case_sensitive_exceptions).setSplitChars(tk.split_chars)
                 .setMinLength(tk.min_length).setMaxLength(tk.max_length))
    if tk.context_chars is not None:
        tokenizer.setContextChars(tk.context_chars)
    embeddings = BertEmbeddings(
        modelPath=bundle, maxSentenceLength=s.embeddings.max_sentence_length, batchSize=s.embeddings.batch_size,
        maxBatchPieces=s.embeddings.max_batch_pieces,
        pooling=s.embeddings.pooling, intraOpThreads=s.embeddings.intra_op_threads,
    ).setProviders(s.embeddings.providers)
    embeddings._sync_with_bundle()
    stages = [DocumentAssembler(inputCol=config.input.text_col), detector, tokenizer, embeddings]
    if ner_dir:
        from pipelines.ner.stages import NerConverter, NerDLModel

        tagger = NerDLModel(modelPath=ner_dir, includeConfidence=config.ner.include_confidence,
                            batchSize=config.ner.batch_size, intraOpThreads=s.embeddings.intra_op_threads)
        try:
            tagger.checkEmbeddingsMetadata(embeddings._column_metadata())
        except ValueError as e:
            raise JobError(str(e)) from None
        converter = NerConverter()
        if config.ner.white_list:
            converter.setWhiteList(config.ner.white_list)
        stages += [tagger, converter]
    return stages


def with_token_embeddings(stages, keep: list[str], max_tokens: int = 16384, on_batch=None, fault_marker=None,
                          embedding_dtype: str = "float32"):
    """``df.transform(with_token_embeddings(stages, ["doc_id", "lang"]))``: one row per token.

    Runs the fused native stages and flattens in the same Python pass, in units of at most
    ``max_tokens`` tokens, so per-token annotation structs never reach the JVM and a worker's memory
    does not grow with the document.
    """
    from pyspark.sql.types import ArrayType, BinaryType, FloatType, IntegerType, StringType, StructField, StructType

    from pipelines.stages import _check_inputs

    for stage in stages:  # NerDLModel's storage-ref rule, on the driver, before any task runs
        check = getattr(stage, "_check_embeddings_of_stages", None)
        if check is not None:
            check(stages)
    steps = [s._step() for s in stages]
    text_steps, model_steps = steps[:3], steps[3:]

    def flatten(batches):
        return tables.stream_token_table(batches, text_steps, model_steps, keep, max_tokens, on_batch, fault_marker,
                                         embedding_dtype)

    def transform(df):
        _check_inputs(df, steps)
        fields = [df.schema[c] for c in keep] + [
            StructField("sentence", IntegerType(), False), StructField("token_index", IntegerType(), False),
            StructField("begin", IntegerType(), False), StructField("end", IntegerType(), False),
            StructField("token", StringType(), False),
            StructField("embedding", BinaryType() if embedding_dtype == "float16" else ArrayType(FloatType(), False),
                        False),
        ]
        if len(model_steps) > 1:
            chunk = StructType([StructField("chunk_index", IntegerType()), StructField("begin", IntegerType()),
                                StructField("end", IntegerType()), StructField("text", StringType()),
                                StructField("entity", StringType()), StructField("confidence", FloatType())])
            fields += [StructField("ner", StringType(), False), StructField("ner_confidence", FloatType(), True),
                       StructField("chunk", chunk, True)]
        return df.mapInArrow(flatten, StructType(fields))

    return transform


def tokens_from_annotations(annotations_df, keep: list[str], embeddings_col: str, embedding_dtype: str = "float32"):
    """The token table derived from a written annotations table (when ``output.annotations`` is on)."""
    from pyspark.sql import functions as F

    exploded = annotations_df.select(*keep, F.posexplode(embeddings_col).alias("token_index", "a"))
    embedding = F.col("a.embeddings")
    if embedding_dtype == "float16":
        embedding = _float16_bytes(embedding)
    return exploded.select(
        *keep,
        F.col("a.metadata").getItem("sentence").cast("int").alias("sentence"),
        F.col("token_index").cast("int").alias("token_index"),
        F.col("a.begin").alias("begin"), F.col("a.end").alias("end"), F.col("a.result").alias("token"),
        embedding.alias("embedding"),
    )


def _float16_bytes(column):
    import numpy as np
    import pandas as pd
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("binary")
    def to_float16(vectors: pd.Series) -> pd.Series:
        return vectors.map(lambda v: np.asarray(v, dtype="<f2").tobytes())

    return to_float16(column)


def classify_rows(df, config: JobConfig, partitions: list[str]):
    """Add ``_reason``: why a row goes to quarantine, or null when it is annotated."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    p = config.policies
    id_col, text = F.col(config.input.id_col), F.col(config.input.text_col)
    empty = p.empty_text == "quarantine"
    reason = (
        F.when(id_col.isNull(), F.lit("null_id"))
        .when(text.isNull() & F.lit(empty), F.lit("null_text"))
        .when((F.length(text) == 0) & F.lit(empty), F.lit("empty_text"))
        .when(~text.rlike(VISIBLE_CHAR_REGEX) & F.lit(empty), F.lit("blank_text"))
        .when((F.length(text) > p.max_chars) & F.lit(p.too_long == "quarantine"), F.lit("too_long"))
    )
    df = df.withColumn("_reason", reason)
    # Duplicates: count ids first (a small shuffle), and rank only the duplicated rows.
    dup_ids = (df.where(id_col.isNotNull()).groupBy(config.input.id_col).count().where("count > 1")
               .select(config.input.id_col))
    if dup_ids.take(1):
        if p.duplicate_id == "fail":
            sample = [r[0] for r in dup_ids.limit(5).collect()]
            raise JobError(f"duplicate {config.input.id_col} values in the input (e.g. {sample}): make ids unique, "
                           "or set policies.duplicate_id: quarantine to keep the first and quarantine the rest")
        order = Window.partitionBy(config.input.id_col).orderBy(*partitions, "_file", "_row")
        later = (df.join(F.broadcast(dup_ids), config.input.id_col, "left_semi")
                 .withColumn("_n", F.row_number().over(order)).where("_n > 1")
                 .select("_file", "_row", F.lit("duplicate_id").alias("_dup")))
        df = (df.join(F.broadcast(later), ["_file", "_row"], "left")
              .withColumn("_reason", F.coalesce("_reason", "_dup")).drop("_dup"))
    return df


def quarantine_rows(classified, config: JobConfig, keep: list[str], run_id: str):
    from pyspark.sql import functions as F

    text = F.col(config.input.text_col)
    limit = config.policies.quarantine_text_max_chars
    return classified.where(F.col("_reason").isNotNull()).select(
        *keep,
        F.col("_reason").alias("reason"),
        F.coalesce(F.length(text), F.lit(0)).alias("text_length"),
        F.when(F.length(text) <= limit, text).alias("text"),
        F.lit(run_id).alias("run_id"),
    )


# --- the job -------------------------------------------------------------------------------------
def run_annotate(config: JobConfig, spark=None) -> RunResult:
    from pyspark.sql import functions as F

    from pipelines.progress import JobProgress
    from pipelines.session import configure, get_spark

    started = time.time()
    run_id = f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"
    out = config.output.path.rstrip("/")
    check_output_writable(out)
    spark = configure(spark, config.spark) if spark is not None else get_spark(
        config.spark, libraries=["sparknlp"] if config.engine == "sparknlp" else None)  # sparknlp engine: its jars
    native_engine = config.engine == "native"
    if not native_engine:
        try:
            sparknlp_engine.require_jar(spark)
        except sparknlp_engine.SparkNlpUnavailable as e:
            raise JobError(str(e)) from None
    bundle_path = ensure_model(config) if native_engine else None
    ner_dir = ensure_ner(config, bundle_path) if native_engine else None
    raw, partitions, files = read_corpus(spark, config)
    id_col, text_col = config.input.id_col, config.input.text_col
    lang = config.input.language_col
    extra = [lang] if lang and lang in raw.columns and lang not in partitions else []
    stages = build_stages(config, bundle_path, raw.columns, ner_dir) if native_engine else None
    model = stages[3].bundle().manifest if native_engine else sparknlp_engine.model_info(config)
    ner_model = stages[4].model() if ner_dir else None
    # sparknlp engine: the same bundle gives other tokens than the native engine, so its runs never count as
    # the native engine's (native fingerprints stay as they were)
    engine_fp = {} if native_engine else {"engine": config.engine}
    pipeline_fp = state.fingerprint(config, model, {"ner": _ner_summary(ner_model), **engine_fp})
    keep = [id_col, *partitions]
    tables_ = {TOKEN_TABLE: f"{out}/{TOKEN_TABLE}", QUARANTINE_TABLE: f"{out}/{QUARANTINE_TABLE}"}
    if config.output.annotations:
        tables_[ANNOTATIONS_TABLE] = f"{out}/{ANNOTATIONS_TABLE}"
    if ner_dir:
        tables_[ENTITIES_TABLE] = f"{out}/{ENTITIES_TABLE}"

    selected, todo = _plan_partitions(spark, config, files, partitions, pipeline_fp)
    manifest = {
        "run_id": run_id, "status": "running", "engine": config.engine, "fingerprint": pipeline_fp,
        "started_at": datetime.fromtimestamp(started, timezone.utc).isoformat(),
        "model": _model_summary(model, bundle_path),
        "ner": _ner_summary(ner_model),
        "input": {"path": config.input.path, "partition_columns": partitions,
                  "selected_partitions": len(selected), "skipped_as_done": len(selected) - len(todo),
                  "annotated_partitions": [p.as_dict() for p in todo]},
        "tables": tables_, "config": config.model_dump(mode="json"),
    }
    manifest_path = f"{out}/{RUNS_DIR}/{run_id}.json"

    def save(status: str, counts: dict | None = None) -> None:
        manifest.update(status=status, counts=counts, duration_s=round(time.time() - started, 3))
        write_text(spark, manifest_path, json.dumps(manifest, indent=2, ensure_ascii=False))

    save("running")
    if not todo:
        save("committed", _zero_counts())
        return RunResult(run_id, manifest_path, tables_, manifest)

    df = raw.select(id_col, text_col, *partitions, *extra, F.col("_metadata.file_path").alias("_file"),
                    F.col("_metadata.row_index").alias("_row"))
    if partitions and len(todo) < len(state.input_partitions(files, config.input.path, partitions)):
        df = df.where(_partition_condition(todo))
    classified = classify_rows(df, config, partitions).persist()
    try:
        visible = F.col(text_col).rlike(VISIBLE_CHAR_REGEX)
        totals = classified.groupBy(*partitions).agg(
            F.count(F.lit(1)).alias("rows"),
            F.sum(F.when(F.col("_reason").isNotNull(), 1).otherwise(0)).alias("quarantined"),
            F.sum(F.when(F.col("_reason").isNull() & visible, 1).otherwise(0)).alias("to_annotate"),
            F.sum(F.when(F.col("_reason").isNull() & ~F.coalesce(visible, F.lit(False)), 1).otherwise(0))
            .alias("kept_empty"),
        ).collect()
        # Partitions that end up empty in a table lose their old files now; the others are replaced by the write.
        for table, column in ((TOKEN_TABLE, "to_annotate"), (QUARANTINE_TABLE, "quarantined")):
            has_rows = {tuple(str(r[c]) if r[c] is not None else None for c in partitions) for r in totals if r[column]}
            for p in todo:
                if tuple(v for _, v in p.values) not in has_rows and p.values:
                    _delete_dir(spark, f"{tables_[table]}/{p.spec}")

        quarantine = quarantine_rows(classified, config, keep, run_id)
        if sum(r["quarantined"] for r in totals):
            _write(quarantine, tables_[QUARANTINE_TABLE], partitions)
        kept = _balanced(spark, config, classified.where(F.col("_reason").isNull() & visible)
                         .select(id_col, text_col, *partitions, *extra))
        to_annotate = sum(r["to_annotate"] for r in totals)
        embedder = None
        if to_annotate:  # else every row was quarantined or kept empty: nothing to write
            with JobProgress(spark, to_annotate) as progress, _driver_fault(spark, tables_[TOKEN_TABLE]):
                tokens = _token_table(spark, config, kept, stages, keep, partitions, todo, tables_, progress)
                _write(tokens, tables_[TOKEN_TABLE], partitions)
            embedder = progress.embedder_counts()
        if ner_dir:
            _write_entities(spark, tables_, keep, partitions, todo, stages[-1].getOutputCol())
        counts = _counts(spark, tables_, id_col, partitions, todo, totals)
        if embedder and embedder["model_calls"]:  # the workers' own numbers: padding, calls, model seconds
            counts["embedder"] = embedder
    finally:
        classified.unpersist()

    if counts["input_rows"] != counts["annotated_rows"] + counts["quarantined_rows"]:
        save("failed", counts)
        raise JobError(f"rows lost: {counts['input_rows']} input rows but {counts['annotated_rows']} annotated + "
                       f"{counts['quarantined_rows']} quarantined; see {manifest_path}")
    save("committed", counts)
    return RunResult(run_id, manifest_path, tables_, manifest)


def _balanced(spark, config: JobConfig, df):
    """Round-robin the rows over enough tasks that every core stays busy to the end.

    A small corpus read from a few files gives a few tasks of very different sizes; the model pass is
    so much dearer than the shuffle that evening them out pays for itself.
    """
    per_core = config.spark.tasks_per_core
    wanted = per_core * spark.sparkContext.defaultParallelism
    if per_core and df.rdd.getNumPartitions() < wanted:
        return df.repartition(wanted)
    return df


def _plan_partitions(spark, config: JobConfig, files: list[str], partitions: list[str], pipeline_fp: str):
    """(selected, to do): the partitions --partition selects, less those already done when incremental."""
    try:
        filters = state.parse_partition_filters(config.partitions, partitions)
    except ValueError as e:
        raise JobError(str(e)) from None
    selected = state.select(state.input_partitions(files, config.input.path, partitions), filters)
    if filters and not selected:
        raise JobError(f"no input partition matches {config.partitions}")
    if not config.incremental or config.full_refresh:
        return selected, selected
    runs = read_manifests(spark, f"{config.output.path.rstrip('/')}/{RUNS_DIR}")
    return selected, state.pending(selected, state.done_partitions(runs, pipeline_fp))


def _token_table(spark, config, kept, stages, keep, partitions, todo, tables_, progress):
    """The token rows to write: straight from the fused pass, or via the written annotations table."""
    from pipelines.stages import run_native_stages

    if stages is None:  # sparknlp engine: its annotation columns, flattened in Spark
        annotated = sparknlp_engine.build_pipeline(config, spark).fit(kept).transform(kept)
        annotated = annotated.select(*keep, "document", "sentence", "token", "embeddings")
        if not config.output.annotations:
            return tokens_from_annotations(annotated, keep, "embeddings", config.output.embedding_dtype)
    elif not config.output.annotations:
        return kept.transform(with_token_embeddings(
            stages, keep, config.stages.embeddings.max_tokens_per_chunk, progress.callback(),
            spark.conf.get(KILL_WORKER_ONCE, None), config.output.embedding_dtype))
    else:
        annotated = run_native_stages(kept, stages).select(*keep, *[s.getOutputCol() for s in stages])
    _write(annotated, tables_[ANNOTATIONS_TABLE], partitions)
    written = spark.read.parquet(tables_[ANNOTATIONS_TABLE])
    if partitions:
        written = written.where(_partition_condition(todo))
    return tokens_from_annotations(written, keep, "embeddings" if stages is None else stages[3].getOutputCol(),
                                   config.output.embedding_dtype)


def _write_entities(spark, tables_: dict, keep: list[str], partitions: list[str], todo, chunk_col: str) -> None:
    """The entities table, read off what this run wrote (no second model pass): the chunk heads of the
    token table, or the chunk column of the annotations table."""
    from pyspark.sql import functions as F

    from pipelines.ner.tables import entities_from_annotations

    if ANNOTATIONS_TABLE in tables_:
        annotations = _read_written(spark, tables_[ANNOTATIONS_TABLE], partitions, todo)
        entities = None if annotations is None else entities_from_annotations(annotations, keep, chunk_col)
    else:
        tokens = _read_written(spark, tables_[TOKEN_TABLE], partitions, todo)
        entities = None if tokens is None else tokens.where(F.col("chunk").isNotNull()).select(
            *keep, "sentence", "chunk.chunk_index", "chunk.begin", "chunk.end", "chunk.text", "chunk.entity",
            "chunk.confidence")
    with_rows = {tuple(str(r[c]) if r[c] is not None else None for c in partitions)
                 for r in entities.select(*partitions).distinct().collect()} if entities is not None else set()
    for p in todo:
        if p.values and tuple(v for _, v in p.values) not in with_rows:
            _delete_dir(spark, f"{tables_[ENTITIES_TABLE]}/{p.spec}")
    if entities is not None and (with_rows or not partitions) and entities.take(1):
        _write(entities, tables_[ENTITIES_TABLE], partitions)


def _read_written(spark, path: str, partitions: list[str], todo):
    """A table as this run left it (its partitions only), or None when it has no data file."""
    if not _exists(spark, path):
        return None
    try:
        df = spark.read.parquet(path)
    except Exception:  # a table directory without a single data file (everything went elsewhere)
        return None
    return df.where(_partition_condition(todo)) if partitions else df


def _ner_summary(ner_model) -> dict | None:
    if ner_model is None:
        return None
    return {"path": str(ner_model.path), "storage_ref": ner_model.storage_ref, "tags": list(ner_model.tags)}


def _model_summary(m, bundle_path) -> dict:
    return {
        "storage_ref": m.storage_ref, "kind": m.kind, "name": m.name, "precision": m.precision,
        "dimension": m.dimension, "bundle": str(bundle_path),
        **({"warning": "DEMO MODEL: random weights, the vectors carry no meaning"} if m.kind == "demo" else {}),
    }


# Writing the vectors is most of the Spark JVM's work. parquet-mr tries a dictionary for every column
# chunk and gives up only after filling it (~45% of the write time on the vectors, whose values hardly
# repeat: JFR profile), and keeps min/max and level statistics of every float, which no reader can use.
VECTOR_COLUMNS = ("embedding.list.element", "embedding")  # float32 list / float16 binary
VECTOR_COLUMN_OPTIONS = ("parquet.enable.dictionary", "parquet.column.statistics.enabled",
                         "parquet.size.statistics.enabled")


def _write(df, path: str, partitions: list[str]) -> None:
    writer = df.write.mode("overwrite")  # with partitionOverwriteMode=dynamic: only the partitions written
    for column in VECTOR_COLUMNS:  # parquet-mr's per-column settings, via the writer's Hadoop conf
        for option in VECTOR_COLUMN_OPTIONS:
            writer = writer.option(f"{option}#{column}", "false")
    if partitions:
        writer = writer.partitionBy(*partitions)
    writer.parquet(path)


def _zero_counts() -> dict:
    return {"input_rows": 0, "annotated_rows": 0, "rows_with_tokens": 0, "kept_empty_rows": 0,
            "quarantined_rows": 0, "quarantined_by_reason": {}, "tokens": 0}


def _counts(spark, tables_: dict, id_col: str, partitions: list[str], todo, totals) -> dict:
    """Counts read back from what was written, so a lost row shows up as a mismatch."""
    from pyspark.sql import functions as F

    def written(table):
        return _read_written(spark, tables_[table], partitions, todo) if table in tables_ else None

    tokens = written(TOKEN_TABLE)
    stats = tokens.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(id_col).alias("docs")).first() \
        if tokens is not None else {"n": 0, "docs": 0}
    quarantine = written(QUARANTINE_TABLE)
    by_reason = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()} \
        if quarantine is not None else {}
    kept_empty = sum(r["kept_empty"] for r in totals)
    entities = written(ENTITIES_TABLE)
    return {
        "input_rows": sum(r["rows"] for r in totals),
        "annotated_rows": stats["docs"] + kept_empty,
        "rows_with_tokens": stats["docs"],
        "kept_empty_rows": kept_empty,
        "quarantined_rows": sum(by_reason.values()),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "tokens": stats["n"],
        **({"entities": entities.count() if entities is not None else 0} if ENTITIES_TABLE in tables_ else {}),
    }


def _exists(spark, path: str) -> bool:
    if _is_local(path):
        return _local(path).exists()
    fs, hpath = _hadoop_fs(spark, path)
    return bool(fs.exists(hpath))


class _driver_fault:
    """Test-only: SIGKILL this driver once the token table's write has started staging files."""

    def __init__(self, spark, table_path: str):
        self.armed = (spark.conf.get(KILL_DRIVER_DURING_WRITE, "false") == "true") and _is_local(table_path)
        self.table = _local(table_path)

    def _watch(self):
        while True:
            staged = list(self.table.glob(".spark-staging-*/**/*.parquet")) if self.table.exists() else []
            if staged:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.05)

    def __enter__(self):
        if self.armed:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc):
        return False
