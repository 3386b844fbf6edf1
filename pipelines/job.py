"""The annotate job: partitioned Parquet corpus in, token embeddings (and quarantine, entities) in the lake.

Every input row ends in exactly one place: the ``token_embeddings`` table (through its tokens), the
``quarantine`` table (with its reason), or, under ``policies.empty_text: keep``, the count of kept
empty documents. The run manifest records the counts read back from the lake, and the run fails when
they do not add up. A run that fails for any reason it can see says so in its manifest (``failed``,
with a one-line reason); one that is killed is marked ``abandoned`` by the next run (see
:mod:`pipelines.lake`).
"""

from __future__ import annotations

import os
import signal
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipelines import log, sparknlp_engine, state, tables
from pipelines.config import JobConfig
from pipelines.errors import CorpusNlpError, JobError
from pipelines.lake import (Lake, RunManifest, is_inside, is_local, local_file, local_path, read_manifests, take_lease,
                            text_partition_values)
from pipelines.policies import classify_rows, error_rows, quarantine_rows, text_column
from pipelines.text.sentences import VISIBLE_CHAR_REGEX

TOKEN_TABLE = "token_embeddings"
ANNOTATIONS_TABLE = "annotations"
QUARANTINE_TABLE = "quarantine"
ENTITIES_TABLE = "entities"
CLASSIFICATIONS_TABLE = "classifications"
# Test-only failure injection (tests/integration/test_faults.py), read from the Spark conf; never set in production.
KILL_WORKER_ONCE = "spark.corpusnlp.test.killWorkerOnce"
KILL_DRIVER_DURING_WRITE = "spark.corpusnlp.test.killDriverDuringWrite"

__all__ = ["JobError", "RunResult", "run_annotate", "build_stages", "with_token_embeddings"]


@dataclass
class RunResult:
    run_id: str
    manifest_path: str
    tables: dict[str, str]
    manifest: dict = field(default_factory=dict)
    format: str = "delta"

    def read(self, spark, table: str = TOKEN_TABLE):
        """One of the run's tables as a DataFrame (whatever the lake's format)."""
        return Lake(spark, self.tables[table].rsplit("/", 1)[0], self.format).read(table)


# --- checks before any Spark work ----------------------------------------------------------------
def check_paths(config: JobConfig) -> None:
    """Output writable and not inside the input (it would be read as input by every later run)."""
    out, src = config.output.path, config.input.path
    if is_inside(out, src):
        raise JobError(f"output path {out} lies inside the input path {src}: later runs would read the lake as "
                       "input; choose an output.path (--output) outside the input")
    if not is_local(out):
        return  # remote stores report their own permission errors at write time
    target = local_path(out)
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        raise JobError(f"output path {out} is not writable ({e.strerror}): choose another output.path / "
                       "--output, or fix its permissions") from e


def precheck_input(config: JobConfig) -> None:
    """The input checks that need no JVM, run before Spark starts and before any model work: a local input
    path exists, holds Parquet files Spark would read, and their footers have the id and text columns.
    Remote inputs are checked by :func:`read_corpus`, once Spark can list them."""
    path = config.input.path
    if not is_local(path):
        return
    root = local_path(path)
    if not root.exists():
        raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
    files = [f for f in ([root] if root.is_file() else sorted(root.rglob("*.parquet"))) if _spark_reads(f, root)]
    if not files:
        raise JobError(f"input path {path} holds no Parquet files: nothing to annotate (check the path, "
                       "or that the corpus was written as Parquet)")
    try:  # the columns Spark would see (the first file's, then the partition folders'); an unreadable
        import pyarrow.parquet as pq  # file is reported by check_file_columns, with its name

        columns = pq.read_schema(files[0]).names
    except Exception:
        columns = None
    if columns is not None:
        folders = [seg.split("=", 1)[0] for seg in files[0].relative_to(root).parts[:-1] if "=" in seg] \
            if files[0] != root else []
        require_columns(path, columns + [c for c in folders if c not in columns], config.input)
    check_file_columns([str(f) for f in files], [config.input.id_col, config.input.text_col])


def _spark_reads(file, root) -> bool:
    """Spark's file listing skips names that start with '.' or '_' (but not '_x=1' partition folders)."""
    parts = file.relative_to(root).parts if file != root else (file.name,)
    return not any(p.startswith(".") or (p.startswith("_") and "=" not in p) for p in parts)


def prepare_models(config: JobConfig) -> dict[str, float]:
    """Build the demo model and train the demo NER model where the config asks for them and they are
    missing, before the run plans anything: their seconds are not annotate time. Returns the timings;
    :func:`plan_run` then finds both in place."""
    timings = {"model_build_s": 0.0, "ner_training_s": 0.0}
    native_engine = config.engine == "native"  # the same conditions as plan_run's
    started = time.time()
    bundle = ensure_model(config) if uses_bundle(config) else None
    timings["model_build_s"] = round(time.time() - started, 3)
    if native_engine:
        started = time.time()
        ensure_ner(config, bundle)
        timings["ner_training_s"] = round(time.time() - started, 3)
    return timings


def uses_bundle(config: JobConfig) -> bool:
    """Whether the run reads model.bundle: the native engine's embeddings, or the sparknlp engine's import."""
    if config.engine == "native":
        return config.output.embeddings
    return sparknlp_engine.model_source(config) == "bundle"


def state_tables(config: JobConfig) -> list[str]:
    """The tables whose rows say which run annotated a partition (all those the fused pass fills)."""
    return [TOKEN_TABLE, QUARANTINE_TABLE] + ([CLASSIFICATIONS_TABLE] if config.classify.model else [])


def _libraries(config: JobConfig) -> list[str]:
    return (["sparknlp"] if config.engine == "sparknlp" else []) + (["delta"] if config.output.format == "delta" else [])


def require_delta(spark) -> None:
    from py4j.java_gateway import JavaClass

    try:
        found = isinstance(spark._jvm.io.delta.tables.DeltaTable, JavaClass)
    except Exception:  # Spark Connect has no _jvm: Delta reports for itself
        return
    if not found:
        raise JobError("output.format delta needs Delta Lake in this Spark session, and it is not there: add the "
                       "jars (`corpus-nlp jars paths delta`, or a Databricks runtime, which has it) with "
                       "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension and spark.sql.catalog."
                       "spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog; or set output.format: parquet")


# --- inputs --------------------------------------------------------------------------------------
def ensure_model(config: JobConfig) -> str:
    """The bundle directory to use, building the demo model first when the config allows it."""
    bundle = config.model.bundle
    if is_local(bundle) and not (local_path(bundle) / "manifest.json").exists():
        if not config.model.build_demo_if_missing:
            raise JobError(f"model bundle {bundle} not found: build it with `corpus-nlp prepare-model --from-dir "
                           f"CHECKPOINT --out {bundle}` (or `corpus-nlp demo-model --out {bundle}`)")
        from pipelines.model.demo import build_demo_model

        log.note(f"Model bundle {bundle} is missing: building the demo model (random weights) there...")
        build_demo_model(local_path(bundle))
    return bundle


def ensure_ner(config: JobConfig, bundle: str) -> str | None:
    """The NER directory to use (None: no NER), training the demo NER model when the config allows it."""
    ner = config.ner.model or None  # "" (--no-ner) turns NER off too
    if not ner or not is_local(ner) or (local_path(ner) / "ner.json").exists() or _is_bundle(ner):
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

    log.note(f"NER model {ner} is missing: training the demo NER model on the bundled NER sample...")
    build_demo_ner(local_path(ner), bundle)
    return ner


def _is_bundle(path: str) -> bool:
    """A model bundle (prepare-model), as opposed to an NER directory (train-ner)."""
    return is_local(path) and (local_path(path) / "manifest.json").exists()


def read_corpus(spark, config: JobConfig):
    """The input rows and their partition columns (values as the directories spell them); clear errors."""
    settings = config.input
    path = settings.path
    if is_local(path):
        local = local_path(path)
        if not local.exists():
            raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
        if not any(local.rglob("*.parquet")):
            raise JobError(f"input path {path} holds no Parquet files: nothing to annotate (check the path, "
                           "or that the corpus was written as Parquet)")
    try:
        with text_partition_values(spark):
            df = spark.read.option("basePath", path).parquet(path)
    except Exception as e:  # AnalysisException: path not found, not Parquet, ...
        raise JobError(f"cannot read Parquet corpus at {path}: {str(e).strip().splitlines()[0]}") from e
    require_columns(path, df.columns, settings)
    files = df.inputFiles()
    check_file_columns(files, [settings.id_col, settings.text_col])
    partitions = partition_columns(files, path, df.columns)
    return df, partitions, files


def require_columns(path: str, columns: list[str], settings) -> None:
    """The corpus has the configured text and id columns; else the columns it has, and the key to set."""
    for role, col in (("text", settings.text_col), ("id", settings.id_col)):
        if col not in columns:
            key = "text_col" if role == "text" else "id_col"
            raise JobError(f"input {path} has no {role} column {col!r} (set input.{key}); its columns are: "
                           f"{', '.join(columns)}")


def check_file_columns(files: list[str], needed: list[str]) -> None:
    """Every local input file has the id and text columns, with one type across files: Spark reads a
    file that lacks a column as nulls (every row quarantined as null_text without a word) and fails on
    a differing type deep inside a task. Footers only; remote files are left to Spark."""
    import pyarrow.parquet as pq

    seen: dict[str, tuple[str, str]] = {}  # column -> (type, first file with it)
    for f in files:
        if not is_local(f):
            continue
        path = local_file(f)
        try:
            schema = pq.read_schema(path)
        except Exception as e:
            raise JobError(f"input file {path} is not a readable Parquet file ({str(e).splitlines()[0][:120]}): "
                           "remove or rewrite it") from None
        for column in needed:
            if column not in schema.names:
                raise JobError(f"input file {path} has no column {column!r} (its columns: "
                               f"{', '.join(schema.names)}): rewrite it with the corpus's columns, or move it out")
            kind = str(schema.field(column).type)
            first = seen.setdefault(column, (kind, str(path)))
            if first[0] != kind and {first[0], kind} != {"string", "large_string"}:
                raise JobError(f"input file {path} stores column {column!r} as {kind}, but {first[1]} stores it as "
                               f"{first[0]}: rewrite it with the corpus's schema")


def partition_columns(files: list[str], root: str, columns: list[str]) -> list[str]:
    """Hive-style partition columns (``lang=de/``) of the files under ``root``, outermost first."""
    if not files:
        return []
    relative = files[0].split(root.rstrip("/").split("://")[-1], 1)[-1]
    names = [seg.split("=", 1)[0] for seg in relative.strip("/").split("/")[:-1] if "=" in seg]
    return [n for n in names if n in columns]


# --- pipeline ------------------------------------------------------------------------------------
def build_stages(config: JobConfig, bundle: str | None, columns: list[str], ner_dir: str | None = None):
    """The native stages: the text stages; BertEmbeddings (unless ``output.embeddings`` is off); with
    ``ner_dir``, NerDLModel (an NER directory) or a token classifier (a token-classification bundle),
    then NerConverter; with ``classify.model``, a sequence classifier."""
    from pipelines.stages import DocumentAssembler, MultilingualSentenceDetector, SentenceDetector, Tokenizer

    s = config.stages
    sd = s.sentence_detector
    if sd.kind == "pragmatic":
        detector = SentenceDetector(
            useAbbreviations=sd.use_abbreviations, detectLists=sd.detect_lists, customBounds=sd.custom_bounds,
            useCustomBoundsOnly=sd.use_custom_bounds_only, customBoundsStrategy=sd.custom_bounds_strategy)
    else:
        detector = MultilingualSentenceDetector(language=sd.language)
        if config.input.language_col and config.input.language_col in columns:
            detector.setLanguageCol(config.input.language_col)
    detector.setInputCols(["document"]).setOutputCol("sentence").setMinLength(sd.min_length).setMaxLength(sd.max_length)
    if sd.split_length:
        detector.setSplitLength(sd.split_length)
    tk = s.tokenizer
    tokenizer = (Tokenizer().setInputCols(["sentence"]).setOutputCol("token").setTargetPattern(tk.target_pattern)
                 .setExceptions(tk.exceptions).setCaseSensitiveExceptions(tk.case_sensitive_exceptions)
                 .setSplitChars(tk.split_chars).setMinLength(tk.min_length).setMaxLength(tk.max_length))
    if tk.split_pattern:
        tokenizer.setSplitPattern(tk.split_pattern)
    if tk.context_chars is not None:
        tokenizer.setContextChars(tk.context_chars)
    stages = [DocumentAssembler(inputCol=config.input.text_col), detector, tokenizer]
    embeddings = _embeddings_stage(config, bundle) if config.output.embeddings else None
    stages += [embeddings] if embeddings else []
    stages += _ner_stages(config, ner_dir, embeddings) if ner_dir else []
    stages += [_classify_stage(config)] if config.classify.model else []
    if len(stages) == 3:
        raise JobError("output.embeddings: false leaves no model to run: set ner.model to a token-classification "
                       "bundle or classify.model, or turn output.embeddings back on")
    return stages


def _embeddings_stage(config: JobConfig, bundle: str):
    from pipelines.stages import BertEmbeddings

    e = config.stages.embeddings
    embeddings = BertEmbeddings(
        modelPath=bundle, maxSentenceLength=e.max_sentence_length, batchSize=e.batch_size,
        maxBatchPieces=e.max_batch_pieces, pooling=e.pooling, intraOpThreads=e.intra_op_threads,
    ).setProviders(e.providers)
    embeddings._sync_with_bundle()
    return embeddings


def _ner_stages(config: JobConfig, ner_dir: str, embeddings) -> list:
    """NerDLModel (an NER directory, on the embeddings) or a token classifier (a bundle), and NerConverter."""
    from pipelines.ner.stages import NerConverter, NerDLModel

    if _is_bundle(ner_dir):
        tagger = _classifier_stage(config, ner_dir, "token-classification", "ner.model", config.ner.batch_size)
        tagger.setInputCols(["sentence", "token"]).setOutputCol("ner")
    else:
        if embeddings is None:
            raise JobError(f"ner.model {ner_dir} is an NER directory (NerDLModel), which tags the embeddings: it "
                           "needs output.embeddings: true (or use a token-classification bundle as ner.model)")
        tagger = NerDLModel(modelPath=ner_dir, includeConfidence=config.ner.include_confidence,
                            batchSize=config.ner.batch_size,
                            intraOpThreads=config.stages.embeddings.intra_op_threads)
        try:
            tagger.checkEmbeddingsMetadata(embeddings._column_metadata())
        except ValueError as e:
            raise JobError(str(e)) from None
    converter = NerConverter()
    if config.ner.white_list:
        converter.setWhiteList(config.ner.white_list)
    return [tagger, converter]


def _classify_stage(config: JobConfig):
    c = config.classify
    stage = _classifier_stage(config, c.model, "sequence-classification", "classify.model", c.batch_size)
    return stage.setInputCols([c.over, "token"]).setOutputCol("class").setCoalesceSentences(c.coalesce_sentences)


def _classifier_stage(config: JobConfig, path: str, task: str, key: str, batch_size: int):
    """Bert/DistilBert For Token/Sequence Classification on the bundle ``path``, as its manifest says;
    windows as the embeddings' (capped by the model's positions), one clear error for a wrong bundle."""
    from pipelines.classify import stages as classify_stages
    from pipelines.stages import verified_bundle

    if not is_local(path) or not (local_path(path) / "manifest.json").exists():
        raise JobError(f"{key} {path} is not a model bundle: build it with `corpus-nlp prepare-model --from-dir "
                       f"FINE_TUNED_CHECKPOINT --out {path}`")
    try:
        manifest = verified_bundle(path).manifest
    except Exception as e:
        raise JobError(f"{key} {path}: {str(e).splitlines()[0]}") from None
    if manifest.task != task:
        hint = {"embeddings": "model.bundle", "token-classification": "ner.model",
                "sequence-classification": "classify.model"}[manifest.task]
        raise JobError(f"{key} {path} is a {manifest.task} bundle, not a {task} one: it belongs in {hint}")
    prefix = {"bert": "Bert", "distilbert": "DistilBert"}[manifest.model_type]
    suffix = {"token-classification": "ForTokenClassification", "sequence-classification": "ForSequenceClassification"}
    e = config.stages.embeddings
    return getattr(classify_stages, prefix + suffix[task])(
        modelPath=path, batchSize=batch_size, intraOpThreads=e.intra_op_threads, maxBatchPieces=e.max_batch_pieces,
        maxSentenceLength=min(e.max_sentence_length, manifest.max_position_embeddings)).setProviders(e.providers)


def split_roles(stages) -> tuple[list, list]:
    """(text stages, model stages): everything before the first model stage (BertEmbeddings or a
    classifier) turns text into tokens; the model stages and what follows them (NerDLModel,
    NerConverter, classifiers) work on those tokens."""
    from pipelines.classify.stages import _Classifier
    from pipelines.stages import BertEmbeddings

    first_model = next((i for i, s in enumerate(stages) if isinstance(s, (BertEmbeddings, _Classifier))), None)
    if first_model is None:
        raise ValueError("with_token_embeddings needs a BertEmbeddings or classifier stage after the text stages")
    return list(stages[:first_model]), list(stages[first_model:])


def with_token_embeddings(stages, keep: list[str], max_tokens: int = 16384, on_batch=None, fault_marker=None,
                          embedding_dtype: str = "float32", on_row_error=None):
    """``df.transform(with_token_embeddings(stages, ["doc_id", "lang"]))``: one row per token.

    Runs the fused native stages and flattens in the same Python pass, in units of at most
    ``max_tokens`` tokens, so per-token annotation structs never reach the JVM and a worker's memory
    does not grow with the document. ``on_row_error`` (e.g. :meth:`RowErrors.callback`): a row that
    raises is reported there and the task goes on; None: the task fails.
    """
    from pipelines.stages import _check_inputs

    for stage in stages:  # NerDLModel's storage-ref rule, on the driver, before any task runs
        check = getattr(stage, "_check_embeddings_of_stages", None)
        if check is not None:
            check(stages)
    text_stages, model_stages = split_roles(stages)
    text_steps, model_steps = [s._step() for s in text_stages], [s._step() for s in model_stages]

    def flatten(batches):
        return tables.stream_token_table(batches, text_steps, model_steps, keep, max_tokens, on_batch, fault_marker,
                                         embedding_dtype, on_row_error=on_row_error)

    def transform(df):
        _check_inputs(df, text_steps + model_steps)
        roles = tables.model_roles(model_steps)
        schema = tables.spark_schema([df.schema[c] for c in keep], embedding_dtype if roles.embeddings else None,
                                     ner=roles.tagger is not None, classification=roles.sequence is not None)
        return df.mapInArrow(flatten, schema)

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


# --- the run -------------------------------------------------------------------------------------
@dataclass
class RunPlan:
    """One run's decisions, made once on the driver and passed around whole."""

    config: JobConfig
    spark: object
    lake: Lake
    manifest: RunManifest
    raw: object  # the input DataFrame
    partition_cols: list[str]
    selected: list[state.Partition]
    todo: list[state.Partition]
    stages: list | None  # native stages; None for the sparknlp engine
    tables: dict[str, str]

    @property
    def run_id(self) -> str:
        return self.manifest.run_id

    @property
    def keep(self) -> list[str]:
        """The input columns every output row keeps: the id and the partition columns."""
        return [self.config.input.id_col, *self.partition_cols]

    @property
    def every_partition(self) -> bool:
        return len(self.todo) == len(self.all_partitions)

    all_partitions: list[state.Partition] = field(default_factory=list)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


def run_annotate(config: JobConfig, spark=None) -> RunResult:
    """Annotate the configured corpus into the lake; the manifest says ``committed`` only when every
    input row is accounted for."""
    from pipelines.session import configure, get_spark

    check_paths(config)
    precheck_input(config)
    started = time.time()
    spark = configure(spark, config.spark) if spark is not None else get_spark(config.spark, _libraries(config))
    spark_start_s = round(time.time() - started, 3)
    if config.output.format == "delta":
        require_delta(spark)
    out = config.output.path.rstrip("/")
    manifest = RunManifest(spark, out, new_run_id(), {
        "engine": config.engine, "started_at": datetime.now(timezone.utc).isoformat(),
        "format": config.output.format, "config": config.model_dump(mode="json")})
    manifest.start()
    try:
        abandoned = take_lease(spark, manifest)
        if abandoned:
            manifest.body["abandoned_runs_found"] = abandoned
        timings = {"spark_start_s": spark_start_s, **prepare_models(config)}
        manifest.body["timings"] = timings
        plan = plan_run(config, spark, Lake(spark, out, config.output.format, config.output.target_file_mb),
                        manifest)
        counts = annotate(plan) if plan.todo else _zero_counts()
        manifest.finish("committed", counts=counts, timings=_with_annotate_time(timings, manifest))
        return RunResult(manifest.run_id, manifest.path, plan.tables, manifest.body, config.output.format)
    except CorpusNlpError as e:
        manifest.finish("failed", reason=str(e))
        raise
    except Exception as e:
        problem = explain(e)
        manifest.finish("failed", reason=str(problem or f"{type(e).__name__}: {e}"))
        if problem is None:  # our own bug: the trace is what a maintainer needs
            raise
        raise problem from e
    except BaseException as e:  # KeyboardInterrupt, SystemExit: say so, then let it end the process
        manifest.finish("failed", reason=f"interrupted ({type(e).__name__})")
        raise


def _with_annotate_time(timings: dict, manifest: RunManifest) -> dict:
    """``annotate_s``: the run's seconds less the model build and NER training, for an honest tokens/s."""
    elapsed = time.time() - manifest.started
    return {**timings, "annotate_s": round(max(elapsed - timings["model_build_s"] - timings["ner_training_s"], 0.0), 3)}


def plan_run(config: JobConfig, spark, lake: Lake, manifest: RunManifest) -> RunPlan:
    """Model, input, partitions to do, stages and fingerprint; recorded in the manifest before any write."""
    native_engine = config.engine == "native"
    if not native_engine:
        try:
            sparknlp_engine.require_jar(spark)
        except sparknlp_engine.SparkNlpUnavailable as e:
            raise JobError(str(e)) from None
    bundle_path = ensure_model(config) if uses_bundle(config) else None
    ner_dir = ensure_ner(config, bundle_path) if native_engine else None
    raw, partition_cols, files = read_corpus(spark, config)
    all_partitions = state.input_partitions(state.file_statuses(spark, files), config.input.path, partition_cols)
    try:
        filters = state.parse_partition_filters(config.partitions, partition_cols)
    except ValueError as e:
        raise JobError(str(e)) from None
    selected = state.select(all_partitions, filters)
    if filters and not selected:
        raise JobError(f"no input partition matches {config.partitions}")
    stages = build_stages(config, bundle_path, raw.columns, ner_dir) if native_engine else None
    model, ner, classify = model_summaries(stages) if stages else (sparknlp_engine.model_info(config), None, None)
    fingerprint = state.fingerprint(config, model, ner, classify)

    out = lake.root.rstrip("/")
    names = [TOKEN_TABLE, QUARANTINE_TABLE] + ([ANNOTATIONS_TABLE] if config.output.annotations else []) \
        + ([ENTITIES_TABLE] if ner else []) + ([CLASSIFICATIONS_TABLE] if classify else [])
    plan = RunPlan(config, spark, lake, manifest, raw, partition_cols, selected, selected, stages,
                   {name: f"{out}/{name}" for name in names}, all_partitions)
    if config.incremental and not config.full_refresh:
        held = state.holders(lake, state_tables(config), partition_cols, selected)
        plan.todo = state.pending(selected, held, read_manifests(spark, out), fingerprint)
    manifest.body.update({
        "fingerprint": fingerprint, "model": _model_summary(model, bundle_path) if model else None, "ner": ner,
        **({"classify": classify} if classify else {}),
        "input": {"path": config.input.path, "partition_columns": partition_cols,
                  "selected_partitions": len(selected), "skipped_as_done": len(selected) - len(plan.todo),
                  "annotated_partitions": [p.as_dict() for p in plan.todo]},
        "tables": plan.tables,
    })
    manifest.save("running")
    return plan


def annotate(plan: RunPlan) -> dict:
    """Annotate the partitions to do and replace them in each table; the counts read back from the lake."""
    from pyspark.sql import functions as F

    config, spark, lake = plan.config, plan.spark, plan.lake
    id_col, text_col, cols = config.input.id_col, config.input.text_col, plan.partition_cols
    lang = config.input.language_col
    extra = [lang] if lang and lang in plan.raw.columns and lang not in cols else []
    df = plan.raw.select(id_col, text_col, *cols, *extra, F.col("_metadata.file_path").alias("_file"),
                         F.col("_metadata.row_index").alias("_row"))
    if cols and not plan.every_partition:
        df = df.where(_partition_condition(cols, plan.todo))
    classified = classify_rows(df, config, cols).persist()
    try:
        totals = _totals(classified, cols, text_column(config))
        kept = _balanced(spark, config, classified.where(F.col("_reason").isNull() & text_column(config).rlike(
            VISIBLE_CHAR_REGEX)).select(id_col, text_col, *cols, *extra))
        failed_rows = _write_tokens(plan, kept, sum(r["to_annotate"] for r in totals))
        quarantine = quarantine_rows(classified, config, plan.keep, plan.run_id)
        if failed_rows:
            quarantine = quarantine.unionByName(error_rows(spark, failed_rows, quarantine.schema, plan.run_id,
                                                              config.policies.quarantine_text_max_chars))
        lake.replace(QUARANTINE_TABLE, quarantine, cols, plan.todo, plan.run_id)
        if ENTITIES_TABLE in plan.tables:
            _write_entities(plan)
        if CLASSIFICATIONS_TABLE in plan.tables:
            _write_classifications(plan)
        counts = _counts(plan, totals)
    finally:
        classified.unpersist()
    _check_accounted(plan, counts)
    return counts


def _totals(classified, cols: list[str], text) -> list:
    from pyspark.sql import functions as F

    visible = text.rlike(VISIBLE_CHAR_REGEX)
    return classified.groupBy(*cols).agg(
        F.count(F.lit(1)).alias("rows"),
        F.sum(F.when(F.col("_reason").isNotNull(), 1).otherwise(0)).alias("quarantined"),
        F.sum(F.when(F.col("_reason").isNull() & visible, 1).otherwise(0)).alias("to_annotate"),
        F.sum(F.when(F.col("_reason").isNull() & ~F.coalesce(visible, F.lit(False)), 1).otherwise(0))
        .alias("kept_empty"),
    ).collect()


def _write_tokens(plan: RunPlan, kept, to_annotate: int) -> list[dict]:
    """Replace the token table's partitions (all of them, rows or not); the rows the workers could not
    annotate come back as error records."""
    from pyspark.sql import functions as F

    from pipelines.progress import JobProgress

    from pipelines.row_errors import RowErrors

    errors = _row_errors(plan)
    with JobProgress(plan.spark, to_annotate) as progress, _driver_fault(plan.spark, plan.tables[TOKEN_TABLE]):
        tokens = _token_table(plan, kept, progress, errors).withColumn("run_id", F.lit(plan.run_id))
        try:
            plan.lake.replace(TOKEN_TABLE, tokens, plan.partition_cols, plan.todo, plan.run_id)
        except Exception as e:  # one task saw more failed rows than the whole run may have
            line = RowErrors.limit_message(e)
            if line is None:
                raise
            raise JobError(f"{line}; nothing of this run counts as done: fix the input or raise "
                           "policies.max_error_rows") from None
    embedder = progress.embedder_counts()
    if embedder["model_calls"]:  # the workers' own numbers: padding, calls, model seconds
        plan.manifest.body["embedder"] = embedder
    plan.manifest.body["progress"] = progress.samples  # rows and tokens done over the run (the report's plot)
    records = errors.records() if errors is not None else []
    limit = plan.config.policies.max_error_rows
    if len(records) > limit:
        sample = "; ".join(f"{r.get(plan.config.input.id_col)}: {r['error_class']}: {r['error_message']}"
                           for r in records[:3])
        raise JobError(f"{len(records)} rows failed inside the pipeline, more than policies.max_error_rows={limit} "
                       f"(e.g. {sample}); nothing of this run counts as done: fix the input or raise the limit")
    partial = [r for r in records if r.get("partial_tokens")]
    if partial and plan.lake.format != "delta":
        raise JobError(f"document {partial[0].get(plan.config.input.id_col)!r} failed after some of its tokens were "
                       "written, and a parquet lake cannot take them back: rerun with output.format delta, or fix "
                       f"the row ({partial[0]['error_class']}: {partial[0]['error_message']})")
    if partial:  # a document that failed half way keeps none of its tokens (a second commit of this run)
        ids = ", ".join(_sql_string(r.get(plan.config.input.id_col)) for r in partial)
        plan.lake.delete_rows(TOKEN_TABLE, f"run_id = {_sql_string(plan.run_id)} AND "
                              f"`{plan.config.input.id_col}` IN ({ids})", plan.run_id)
    return records


def _row_errors(plan: RunPlan):
    """The collector of rows that raise inside the workers (native engine: the fused pass)."""
    from pipelines.row_errors import RowErrors

    p = plan.config.policies
    return RowErrors(plan.spark, p.max_error_rows, p.quarantine_text_max_chars) if plan.stages else None


def _sql_string(value) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _partition_condition(cols: list[str], partitions: list[state.Partition]):
    from pyspark.sql import functions as F

    from pipelines.lake import partition_predicate

    return F.expr(partition_predicate(cols, partitions))


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


def _token_table(plan: RunPlan, kept, progress, errors):
    """The token rows to write: straight from the fused pass, or via the written annotations table."""
    from pipelines.stages import run_native_stages

    config, stages, keep = plan.config, plan.stages, plan.keep
    if stages is None:  # sparknlp engine: its annotation columns, flattened in Spark
        annotated = sparknlp_engine.build_pipeline(config, plan.spark).fit(kept).transform(kept)
        annotated = annotated.select(*keep, "document", "sentence", "token", "embeddings")
        embeddings_col = "embeddings"
        if not config.output.annotations:
            return tokens_from_annotations(annotated, keep, embeddings_col, config.output.embedding_dtype)
    elif not config.output.annotations:
        return kept.transform(with_token_embeddings(
            stages, keep, config.stages.embeddings.max_tokens_per_chunk, progress.callback(),
            plan.spark.conf.get(KILL_WORKER_ONCE, None), config.output.embedding_dtype,
            on_row_error=errors.callback() if errors is not None else None))
    else:
        _, model_stages = split_roles(stages)
        embeddings_col = model_stages[0].getOutputCol()
        annotated = run_native_stages(kept, stages).select(*keep, *[s.getOutputCol() for s in stages])
    from pyspark.sql import functions as F

    plan.lake.replace(ANNOTATIONS_TABLE, annotated.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.todo, plan.run_id)
    written = _written(plan, ANNOTATIONS_TABLE)
    return tokens_from_annotations(written, keep, embeddings_col, config.output.embedding_dtype)


def _written(plan: RunPlan, table: str):
    """The rows this run wrote to ``table`` (None when the table holds no data)."""
    from pyspark.sql import functions as F

    df = plan.lake.read(table, plan.partition_cols, plan.todo)
    return None if df is None else df.where(F.col("run_id") == plan.run_id)


def _write_entities(plan: RunPlan) -> None:
    """The entities table, read off what this run wrote (no second model pass): the chunk heads of the
    token table, or the chunk column of the annotations table."""
    from pyspark.sql import functions as F

    from pipelines.ner.tables import entities_from_annotations

    keep = plan.keep
    if ANNOTATIONS_TABLE in plan.tables:
        annotations = _written(plan, ANNOTATIONS_TABLE)
        entities = entities_from_annotations(annotations, keep, plan.stages[-1].getOutputCol())
    else:
        tokens = _written(plan, TOKEN_TABLE)
        entities = tokens.where(F.col("chunk").isNotNull()).select(
            *keep, "sentence", "chunk.chunk_index", "chunk.begin", "chunk.end", "chunk.text", "chunk.entity",
            "chunk.confidence")
    plan.lake.replace(ENTITIES_TABLE, entities.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.todo, plan.run_id)


def _write_classifications(plan: RunPlan) -> None:
    """The classifications table, read off the token rows this run wrote (each result rides on the last
    token of its sentence or document; see pipelines.classify.rollup): no second model pass."""
    from pyspark.sql import functions as F

    tokens = _written(plan, TOKEN_TABLE)
    if tokens is None:  # a parquet lake whose token table has no file: none of the rows had tokens
        schema = tables.spark_schema([plan.raw.schema[c] for c in plan.keep], None, classification=True)
        tokens = plan.spark.createDataFrame([], schema)
    rows = tokens.where(F.col(tables.CLASSIFICATION_COLUMN).isNotNull()).select(
        *plan.keep, *[F.col(f"{tables.CLASSIFICATION_COLUMN}.{c}").alias(c) for c in CLASSIFICATION_COLUMNS])
    plan.lake.replace(CLASSIFICATIONS_TABLE, rows.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.todo, plan.run_id)


CLASSIFICATION_COLUMNS = ("sentence", "label", "score", "scores")


def _classification_counts(plan: RunPlan, tokens, document) -> dict:
    """This run's classifications, and how many there should be: one per document with tokens, or one
    per sentence with tokens (over: sentence, not coalesced)."""
    from pyspark.sql import functions as F

    written = _written(plan, CLASSIFICATIONS_TABLE)
    n = written.count() if written is not None else 0
    if tokens is None:
        return {"classifications": n, "expected": 0}
    per_sentence = plan.config.classify.over == "sentence" and not plan.config.classify.coalesce_sentences
    unit = F.struct(document, "sentence") if per_sentence else document
    return {"classifications": n, "expected": tokens.select(F.countDistinct(unit)).first()[0]}


def _ner_summary(ner_model) -> dict | None:
    if ner_model is None:
        return None
    return {"path": str(ner_model.path), "storage_ref": ner_model.storage_ref, "tags": list(ner_model.tags)}


def model_summaries(stages) -> tuple:
    """(embeddings model manifest or None, NER summary or None, sequence classifier summary or None)."""
    from pipelines.classify.stages import _SequenceClassifier, _TokenClassifier
    from pipelines.ner.stages import NerDLModel
    from pipelines.stages import BertEmbeddings

    def first(kind):
        return next((s for s in stages if isinstance(s, kind)), None)

    embeddings, ner_dl, tagger, sequence = (first(BertEmbeddings), first(NerDLModel), first(_TokenClassifier),
                                            first(_SequenceClassifier))
    ner = _ner_summary(ner_dl.model()) if ner_dl else _classifier_summary(tagger, "tags") if tagger else None
    return (embeddings.bundle().manifest if embeddings else None, ner,
            _classifier_summary(sequence, "labels") if sequence else None)


def _classifier_summary(stage, labels_key: str) -> dict:
    bundle = stage.bundle()
    m = bundle.manifest
    return {"path": str(bundle.path), "stage": type(stage).__name__, "storage_ref": m.storage_ref,
            "precision": m.precision, labels_key: list(m.labels)}


def _model_summary(m, bundle_path) -> dict:
    return {
        "storage_ref": m.storage_ref, "kind": m.kind, "name": m.name, "precision": m.precision,
        "dimension": m.dimension, "bundle": str(bundle_path),
        **({"warning": "DEMO MODEL: random weights, the vectors carry no meaning"} if m.kind == "demo" else {}),
    }


def _zero_counts() -> dict:
    return {"input_rows": 0, "annotated_rows": 0, "rows_with_tokens": 0, "kept_empty_rows": 0,
            "quarantined_rows": 0, "quarantined_by_reason": {}, "tokens": 0}


def _counts(plan: RunPlan, totals) -> dict:
    """Counts read back from what this run wrote, so a lost or doubled row shows up as a mismatch."""
    from pyspark.sql import functions as F

    id_col = plan.config.input.id_col
    tokens = _written(plan, TOKEN_TABLE)
    document = F.struct(id_col, *plan.partition_cols)  # a struct, so that a null partition value still counts
    stats = tokens.agg(F.count(F.lit(1)).alias("n"), F.countDistinct(document).alias("docs")).first() \
        if tokens is not None else {"n": 0, "docs": 0}
    quarantine = _written(plan, QUARANTINE_TABLE)
    by_reason = {r["reason"]: r["count"] for r in quarantine.groupBy("reason").count().collect()} \
        if quarantine is not None else {}
    kept_empty = sum(r["kept_empty"] for r in totals)
    entities = _written(plan, ENTITIES_TABLE) if ENTITIES_TABLE in plan.tables else None
    classified = _classification_counts(plan, tokens, document) if CLASSIFICATIONS_TABLE in plan.tables else None
    return {
        "input_rows": sum(r["rows"] for r in totals),
        "annotated_rows": stats["docs"] + kept_empty,
        "rows_with_tokens": stats["docs"],
        "kept_empty_rows": kept_empty,
        "quarantined_rows": sum(by_reason.values()),
        "quarantined_by_reason": dict(sorted(by_reason.items())),
        "tokens": stats["n"],
        **({"entities": entities.count() if entities is not None else 0} if ENTITIES_TABLE in plan.tables else {}),
        **({"classifications": classified["classifications"], "classifications_expected": classified["expected"]}
           if classified else {}),
        **({"embedder": plan.manifest.body["embedder"]} if "embedder" in plan.manifest.body else {}),
    }


def _check_accounted(plan: RunPlan, counts: dict) -> None:
    _check_classified(plan, counts)
    placed = counts["annotated_rows"] + counts["quarantined_rows"]
    if counts["input_rows"] == placed:
        return
    plan.manifest.body["counts"] = counts
    what = "rows lost" if placed < counts["input_rows"] else "rows doubled"
    raise JobError(f"{what}: {counts['input_rows']} input rows but {counts['annotated_rows']} annotated + "
                   f"{counts['quarantined_rows']} quarantined in the lake; see {plan.manifest.path}")


def _check_classified(plan: RunPlan, counts: dict) -> None:
    """One classification per document (or sentence) that has tokens, read back from the lake."""
    if "classifications" not in counts or counts["classifications"] == counts["classifications_expected"]:
        return
    plan.manifest.body["counts"] = counts
    over = "sentences" if plan.config.classify.over == "sentence" and not plan.config.classify.coalesce_sentences \
        else "documents"
    found, expected = counts["classifications"], counts["classifications_expected"]
    raise JobError(f"classifications {'lost' if found < expected else 'doubled'}: {expected} {over} with tokens "
                   f"but {found} classifications in the lake; see {plan.manifest.path}")


# --- errors a user can act on --------------------------------------------------------------------
_KNOWN_PROBLEMS = (
    ("No space left on device", "the disk is full (No space left on device) while Spark wrote {where}: free space, "
     "or point spark.local.dir and output.path at a larger disk"),
    ("is not a Parquet file", "input file {file} is not a Parquet file (or is truncated): remove or rewrite it"),
    ("Could not read footer", "input file {file} is not a readable Parquet file (or is truncated): remove or "
     "rewrite it"),
    ("CorruptedParquet", "input file {file} is corrupt: remove or rewrite it"),
    ("Parquet column cannot be converted", "input file {file} stores {column} with another type than the other "
     "files ({detail}): rewrite it with the corpus's schema"),
)


def explain(e: BaseException) -> JobError | None:
    """A failure the driver saw, in one line: the file, column or resource involved and what to do.
    Other failures of Spark, the JVM or the system name their class and first line (the whole trace is
    printed with --verbose); None for anything else (a bug of ours keeps its trace)."""
    import re

    text = "\n".join(str(x) for x in _chain(e))
    for needle, message in _KNOWN_PROBLEMS:
        if needle in text:
            file = re.search(r"(file:[^\s,]+|hdfs:[^\s,]+|s3a?:[^\s,]+|/[^\s,]+\.parquet)", text)
            column = re.search(r"Column: \[([^\]]+)\]", text)
            detail = re.search(r"Expected: ([^,]+), Found: ([^\s,]+)", text)
            return JobError(message.format(
                file=file.group(1).rstrip(".:;") if file else "(unknown file)", where="the lake",
                column=f"column {column.group(1)!r}" if column else "a column",
                detail=f"expected {detail.group(1)}, found {detail.group(2).rstrip('.')}" if detail else "type differs"))
    if not _from_spark_or_system(e):
        return None
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return JobError(f"the run failed: {type(e).__name__}: {first[:300]} (run with --verbose for the whole trace)")


def _from_spark_or_system(e: BaseException) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("py4j", "pyspark", "delta")


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__


class _driver_fault:
    """Test-only: SIGKILL this driver once the token table's write has started writing data files."""

    def __init__(self, spark, table_path: str):
        self.armed = (spark.conf.get(KILL_DRIVER_DURING_WRITE, "false") == "true") and is_local(table_path)
        self.table = local_path(table_path)
        self.before = set(self.table.rglob("*.parquet")) if self.armed and self.table.exists() else set()

    def _watch(self):
        while True:
            written = set(self.table.rglob("*.parquet")) if self.table.exists() else set()
            if written - self.before:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.05)

    def __enter__(self):
        if self.armed:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc):
        return False
