"""The annotate job: partitioned Parquet corpus in, token embeddings (and quarantine, entities) in the lake.

Every input row ends in exactly one place: the ``token_embeddings`` table (through its tokens), the
``quarantine`` table (with its reason), or, under ``policies.empty_text: keep``, the count of kept
empty documents. The run manifest records the counts read back from the lake, and the run fails when
they do not add up. A run that fails for any reason it can see says so in its manifest (``failed``,
with a one-line reason); one that is killed is marked ``abandoned`` by the next run (see
:mod:`pipelines.store.lake`).
"""

from __future__ import annotations

import os
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone

from pipelines.annotate import sparknlp_engine, tables

from pipelines.store import state
from pipelines.run.assemble import RunModels, build_stages, model_summaries, model_summary, prepare_models
from pipelines.config import SPARKNLP_NEEDS_CLASSIC, JobConfig
from pipelines.errors import CorpusNlpError, JobError, explain
from pipelines.run.faults import HOLD_TASKS_UNTIL, KILL_WORKER_ONCE, DriverFault
from pipelines.run.inputs import check_paths, corpus_partitions, precheck_input, read_corpus
from pipelines.store.lake import (ANNOTATIONS_TABLE, CLASSIFICATIONS_TABLE, ENTITIES_TABLE, LAKE_TABLES,
                                  QUARANTINE_TABLE, TOKEN_TABLE, Lake, RunManifest, check_stored_schema,
                                  partition_predicate, read_manifests, take_lease)
from pipelines.store.remote_files import is_local, local_path
from pipelines.store.model_paths import forget_fetched
from pipelines.run import layout
from pipelines.run.phases import RunClock
from pipelines.run import reuse as run_reuse
from pipelines.run.policies import classify_rows, error_rows, quarantine_rows, text_column
from pipelines.annotate.row_errors import limit_message
from pipelines.spark.session import (default_parallelism, is_connect, num_partitions, one_executor,
                                     restores_session_conf)
from pipelines.spark.shuffle import ShuffleMeter
from pipelines.run.reconcile import check_accounted, counts_read_back, zero_counts
from pipelines.text.sentences import VISIBLE_CHAR_REGEX
from pipelines.annotate.dataframes import split_roles, tokens_from_annotations, with_token_embeddings
from pipelines.annotate.worker_reports import REPORT_COLUMN, RunReport

__all__ = ["JobError", "RunResult", "run_annotate", "build_stages"]


@dataclass
class RunResult:
    run_id: str
    manifest_path: str
    tables: dict[str, str]
    manifest: dict = field(default_factory=dict)
    format: str = "delta"
    catalog_tables: dict[str, str] = field(default_factory=dict)  # lake table -> catalog name (output.database)

    def read(self, spark, table: str = TOKEN_TABLE):
        """One of the run's tables as a DataFrame (whatever the lake's format)."""
        return Lake(spark, self.tables[table].rsplit("/", 1)[0], self.format).read(table)


# --- checks before any Spark work ----------------------------------------------------------------


def state_tables(config: JobConfig) -> list[str]:
    """The tables whose rows say which run annotated a partition (all those the fused pass fills)."""
    return [TOKEN_TABLE, QUARANTINE_TABLE] + ([CLASSIFICATIONS_TABLE] if config.classify.model else [])


def libraries_needed(config: JobConfig) -> list[str]:
    return (["sparknlp"] if config.engine == "sparknlp" else []) + (["delta"] if config.output.format == "delta" else [])


def require_delta(spark) -> None:
    if is_connect(spark):  # no JVM on this side: a server without Delta says so at the first write
        return
    from py4j.java_gateway import JavaClass

    try:
        found = isinstance(spark._jvm.io.delta.tables.DeltaTable, JavaClass)
    except Exception:  # a gateway that cannot say: Delta reports for itself
        return
    if not found:
        raise JobError("output.format delta needs Delta Lake in this Spark session, and it is not there: add the "
                       "jars (`corpus-nlp jars paths delta`, or a Databricks runtime, which has it) with "
                       "spark.sql.extensions=io.delta.sql.DeltaSparkSessionExtension and spark.sql.catalog."
                       "spark_catalog=org.apache.spark.sql.delta.catalog.DeltaCatalog; or set output.format: parquet")


# --- inputs --------------------------------------------------------------------------------------


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
    def clustered(self) -> bool:
        """Whether the rows reach the model pass clustered by output partition and file size
        (:mod:`pipelines.run.layout`): then the tables with vectors are written without a shuffle."""
        return bool(self.config.spark.tasks_per_core and self.config.output.target_file_mb)

    @property
    def every_partition(self) -> bool:
        return len(self.todo) == len(self.all_partitions)

    all_partitions: list[state.Partition] = field(default_factory=list)
    clock: RunClock = field(default_factory=RunClock)
    removed: list[state.Partition] = field(default_factory=list)  # deleted from the input, removed by this run
    kept: list[state.Partition] = field(default_factory=list)  # deleted from the input, left in the lake

    @property
    def replaced(self) -> list[state.Partition]:
        """The partitions each table write replaces: those annotated, and those removed (they get no rows)."""
        return self.todo + self.removed

    def written(self, table: str):
        """The rows this run wrote to ``table`` (None when the table holds no data)."""
        from pyspark.sql import functions as F

        df = self.lake.read(table, self.partition_cols, self.todo)
        return None if df is None else df.where(F.col("run_id") == self.run_id)


def new_run_id() -> str:
    return f"{datetime.now(timezone.utc):%Y%m%dT%H%M%SZ}-{uuid.uuid4().hex[:8]}"


@restores_session_conf
def run_annotate(config: JobConfig, spark=None) -> RunResult:
    """Annotate the configured corpus into the lake; the manifest says ``committed`` only when every
    input row is accounted for. A session passed in (a notebook's) gets its settings back afterwards."""
    from pipelines.store.catalog import register_tables, require_database

    check_paths(config)
    precheck_input(config)
    check_lake_schema(config)
    forget_fetched()  # models at Hadoop paths: checked against their source again by every run
    started = time.time()
    spark, config = session_for(config, spark)
    spark_start_s = round(time.time() - started, 3)
    if not is_local(config.output.path):
        check_lake_schema(config, spark)
    if config.output.format == "delta":
        require_delta(spark)
    require_database(spark, config.output)
    out = config.output.path.rstrip("/")
    manifest = RunManifest(spark, out, new_run_id(), {
        "engine": config.engine, "started_at": datetime.now(timezone.utc).isoformat(),
        "spark": {"version": spark.version, "driver": "connect" if is_connect(spark) else "classic"},
        "format": config.output.format, "config": config.model_dump(mode="json")})
    manifest.start()
    try:
        models = prepare_models(config)
        timings = {"spark_start_s": spark_start_s, **models.timings}
        manifest.body["timings"] = timings
        clock = RunClock(ShuffleMeter(spark))
        with clock.phase("plan_s"):
            plan = plan_run(config, spark, Lake(spark, out, config.output.format, config.output.target_file_mb),
                            manifest, models)
        plan.clock = clock
        abandoned = take_lease(spark, manifest, lease_partitions(plan))
        if abandoned:
            manifest.body["abandoned_runs_found"] = abandoned
        counts = annotate(plan) if plan.todo else zero_counts()
        with clock.phase("write_s"):
            remove_elsewhere(plan)
        catalog_tables = register_tables(spark, config.output, plan.tables)
        if catalog_tables:
            manifest.body["catalog_tables"] = catalog_tables
        manifest.finish("committed", counts=counts, timings=clock.timings(timings, time.time() - manifest.started),
                        shuffle=clock.shuffle_summary())
        return RunResult(manifest.run_id, manifest.path, plan.tables, manifest.body, config.output.format,
                         catalog_tables)
    except CorpusNlpError as e:
        unsaved = manifest.finish("failed", reason=str(e))
        if unsaved:
            raise type(e)(_unsaved(e, manifest, unsaved)) from e
        raise
    except Exception as e:
        problem = explain(e)
        unsaved = manifest.finish("failed", reason=str(problem or f"{type(e).__name__}: {e}"))
        if problem is None:  # our own bug: the trace is what a maintainer needs
            raise
        raise JobError(_unsaved(problem, manifest, unsaved)) if unsaved else problem from e
    except BaseException as e:  # KeyboardInterrupt, SystemExit: say so, then let it end the process
        manifest.finish("failed", reason=f"interrupted ({type(e).__name__})")
        raise


def check_lake_schema(config: JobConfig, spark=None) -> None:
    """A setting that would change the schema of the lake's tables, refused before the model work: a local
    lake is read before Spark starts (``spark`` None), any other once Spark can read it."""
    if spark is None and not is_local(config.output.path):
        return
    check_stored_schema(config, read_manifests(spark, config.output.path))


def session_for(config: JobConfig, spark=None) -> tuple:
    """(the session, the config as a run on it takes it): ``spark`` configured for the run, or one started
    with the libraries the config needs (Spark NLP, Delta)."""
    from pipelines.spark.session import configure, get_spark

    spark = configure(spark, config.spark) if spark is not None else get_spark(config.spark, libraries_needed(config))
    return spark, for_session(config, spark)


def for_session(config: JobConfig, spark) -> JobConfig:
    """``config`` as a run on ``spark`` takes it. On a Spark Connect session the sparknlp engine is refused,
    and local paths become absolute: the server resolves a relative path from its own working directory,
    this process from its own (a server elsewhere must see the same paths)."""
    if not is_connect(spark):
        return config
    if config.engine == "sparknlp":
        raise JobError(SPARKNLP_NEEDS_CLASSIC)
    update = {}
    if not config.input.table and is_local(config.input.path):
        update["input"] = config.input.model_copy(update={"path": os.path.abspath(local_path(config.input.path))})
    if is_local(config.output.path):
        update["output"] = config.output.model_copy(update={"path": os.path.abspath(local_path(config.output.path))})
    return config.model_copy(update=update)


def _unsaved(error: BaseException, manifest: RunManifest, why: str) -> str:
    return (f"{error}; the run's manifest {manifest.path} could not say so ({why}): the next run marks this "
            "run abandoned")


@dataclass(frozen=True)
class InputSelection:
    """The input as a run (or its dry run) sees it: the rows, the partitions there are, those the config's
    filters select, and the partitions the lake holds that the input no longer has (among those selected)."""

    raw: object  # the input DataFrame
    partition_cols: list[str]
    all_partitions: list[state.Partition]
    filters: dict
    selected: list[state.Partition]
    deleted: list[state.Partition]


def select_input(spark, config: JobConfig, lake: Lake, lake_exists: bool = True) -> InputSelection:
    raw, partition_cols, files = read_corpus(spark, config)
    all_partitions = corpus_partitions(spark, config, files, partition_cols)
    try:
        filters = state.parse_partition_filters(config.partitions, partition_cols)
    except ValueError as e:
        raise JobError(str(e)) from None
    selected = state.select(all_partitions, filters)
    deleted = state.deleted(lake, lake_tables(lake), partition_cols, all_partitions, filters) if lake_exists else []
    if filters and not selected and not deleted:
        raise JobError(f"no input partition (nor partition of the lake) matches {config.partitions}: check "
                       "--partition / partitions")
    return InputSelection(raw, partition_cols, all_partitions, filters, selected, deleted)


def plan_run(config: JobConfig, spark, lake: Lake, manifest: RunManifest, models: RunModels) -> RunPlan:
    """Model, input, partitions to do, stages and fingerprint; recorded in the manifest before any write."""
    native_engine = config.engine == "native"
    if not native_engine:
        try:
            sparknlp_engine.require_jar(spark)
        except sparknlp_engine.SparkNlpUnavailable as e:
            raise JobError(str(e)) from None
    bundle_path, ner_dir = models.bundle, models.ner
    chosen = select_input(spark, config, lake)
    raw, partition_cols, selected, deleted = chosen.raw, chosen.partition_cols, chosen.selected, chosen.deleted
    stages = build_stages(config, bundle_path, raw.columns, ner_dir) if native_engine else None
    model, ner, classify = model_summaries(stages) if stages else (sparknlp_engine.model_info(config), None, None)
    fingerprint = state.fingerprint(config, model, ner, classify)

    out = lake.root.rstrip("/")
    names = [TOKEN_TABLE, QUARANTINE_TABLE] + ([ANNOTATIONS_TABLE] if config.output.annotations else []) \
        + ([ENTITIES_TABLE] if ner else []) + ([CLASSIFICATIONS_TABLE] if classify else [])
    plan = RunPlan(config, spark, lake, manifest, raw, partition_cols, selected, selected, stages,
                   {name: f"{out}/{name}" for name in names}, chosen.all_partitions)
    if config.removes_deleted_partitions:
        plan.removed = deleted
    else:
        plan.kept = deleted
    if config.incremental and not config.full_refresh:
        held = state.holders(lake, state_tables(config), partition_cols, selected)
        plan.todo = state.pending(selected, held, read_manifests(spark, out), fingerprint)
    manifest.body.update({
        "fingerprint": fingerprint, "model": model_summary(model, bundle_path) if model else None, "ner": ner,
        **({"classify": classify} if classify else {}),
        "input": {**({"table": config.input.table} if config.input.table else {"path": config.input.path}),
                  "partition_columns": partition_cols,
                  "selected_partitions": len(selected), "skipped_as_done": len(selected) - len(plan.todo),
                  "annotated_partitions": [p.as_dict() for p in plan.todo],
                  "deleted_partitions": {"removed": [dict(p.values) for p in plan.removed],
                                         "kept": [dict(p.values) for p in plan.kept]}},
        "tables": plan.tables,
    })
    manifest.save("running")
    return plan


def lake_tables(lake: Lake) -> list[str]:
    """The lake's tables that hold data now."""
    return [table for table in LAKE_TABLES if lake.has(table)]


def lease_partitions(plan: RunPlan) -> list[dict] | None:
    """What this run's lease covers: the partitions it writes, or None (the whole lake) where writers of
    other partitions would still collide: an unpartitioned input (one table-wide write), a parquet lake
    (concurrent writers of one table share its _temporary folder), or a table this run creates (two
    first commits of one Delta table conflict)."""
    if not plan.partition_cols or plan.lake.format != "delta":
        return None
    if plan.todo and not all(plan.lake.has(table) for table in plan.tables):
        return None
    return [dict(p.values) for p in plan.replaced]


def remove_elsewhere(plan: RunPlan) -> None:
    """Remove the partitions deleted from the input from the tables this run did not write (all of them
    when it annotated nothing): one transaction per table, with the run id. The tables it wrote lost
    them in their own write."""
    if not plan.removed:
        return
    written = set(plan.tables) if plan.todo else set()
    for table in lake_tables(plan.lake):
        if table not in written:
            plan.lake.remove(table, plan.partition_cols, plan.removed, plan.run_id)


def annotate(plan: RunPlan) -> dict:
    """Annotate the partitions to do and replace them in each table; the counts read back from the lake."""
    from pyspark.sql import functions as F

    config, spark, lake = plan.config, plan.spark, plan.lake
    id_col, text_col, cols = config.input.id_col, config.input.text_col, plan.partition_cols
    lang = config.input.language_col
    extra = [lang] if lang and lang in plan.raw.columns and lang not in cols else []
    df = plan.raw.select(id_col, text_col, *cols, *extra, F.col("_metadata.file_path").alias("_file"),
                         _row_index(plan.raw).alias("_row"))
    if cols and not plan.every_partition:
        df = df.where(_partition_condition(cols, plan.todo))
    classified = classify_rows(df, config, cols).persist()
    try:
        totals = _totals(classified, cols, text_column(config))
        to_annotate = classified.where(F.col("_reason").isNull() & text_column(config).rlike(
            VISIBLE_CHAR_REGEX)).select(id_col, text_col, *cols, *extra, "_row")
        kept = _laid_out(plan, totals, to_annotate)
        # the key pass reads the rows as cached, not as laid out for the model (no shuffle of its own)
        reuse = _prepare_reuse(plan, to_annotate, sum(r["chars"] or 0 for r in totals))
        try:
            failed_rows = _write_tokens(plan, kept, sum(r["to_annotate"] for r in totals), reuse)
        finally:
            reuse.close()
        quarantine = quarantine_rows(classified, config, plan.keep, plan.run_id)
        if failed_rows:
            quarantine = quarantine.unionByName(error_rows(spark, failed_rows, quarantine.schema, plan.run_id,
                                                              config.policies.quarantine_text_max_chars))
        clock = plan.clock
        with clock.phase("write_s", f"writing the {QUARANTINE_TABLE} table..."):
            lake.replace(QUARANTINE_TABLE, quarantine, cols, plan.replaced, plan.run_id)
        if ENTITIES_TABLE in plan.tables:
            with clock.phase("write_s", f"writing the {ENTITIES_TABLE} table..."):
                _write_entities(plan)
        if CLASSIFICATIONS_TABLE in plan.tables:
            with clock.phase("write_s", f"writing the {CLASSIFICATIONS_TABLE} table..."):
                _write_classifications(plan)
        with clock.phase("check_s", "reading the counts back from the lake..."):
            counts = counts_read_back(plan, totals)
    finally:
        classified.unpersist()
    check_accounted(plan, counts)
    if reuse.mode == "lake":
        with clock.phase("write_s", "removing the sentence cache's entries no recent run used..."):
            committed = [m["run_id"] for m in read_manifests(spark, config.output.path.rstrip("/"))
                         if m.get("status") == "committed" and m.get("run_id")]
            run_reuse.SentenceCache(lake, plan.manifest.body["fingerprint"], plan.run_id,
                                    config.reuse.cache_runs).evict(committed)
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
        F.sum(F.when(F.col("_reason").isNull() & visible, F.length(text)).otherwise(0)).alias("chars"),
        F.sum(F.when(F.col("_reason").isNull() & visible, F.octet_length(text)).otherwise(0)).alias("text_bytes"),
    ).collect()


def _prepare_reuse(plan: RunPlan, kept, input_chars: int) -> run_reuse.RunReuse:
    """The run's sentence reuse (pipelines.run.reuse); its key and shared passes, when it has them, timed."""
    config = plan.config
    fingerprint = plan.manifest.body["fingerprint"]
    mode = run_reuse.mode_for(config.reuse, input_chars, plan.stages is not None and not config.output.annotations,
                              one_executor(plan.spark))
    if mode not in ("run", "lake"):
        return run_reuse.RunReuse.of(mode, config.reuse, fingerprint)
    dimension = (plan.manifest.body.get("model") or {}).get("dimension") or 768
    cache = run_reuse.SentenceCache(plan.lake, fingerprint, plan.run_id,
                                    config.reuse.cache_runs) if mode == "lake" else None
    doing = "finding the sentences that repeat" + (", reading those the sentence cache holds" if cache else "") \
        + ", and computing each of the others once..."
    with plan.clock.phase("reuse_s", doing):
        return run_reuse.prepare(config, mode, kept, plan.stages, dimension, plan.run_id,
                                 config.spark.tasks_per_core * default_parallelism(plan.spark), fingerprint, cache)


def _write_tokens(plan: RunPlan, kept, to_annotate: int, reuse: run_reuse.RunReuse) -> list[dict]:
    """Replace the token table's partitions (all of them, rows or not); the rows the workers could not
    annotate come back as error records."""
    from pyspark.sql import functions as F

    from pipelines.run.progress import JobProgress

    p = plan.config.policies
    doing = f"annotating {to_annotate:,} rows into the {TOKEN_TABLE} table..."
    with plan.clock.model_pass(doing) as span, JobProgress(plan.spark, to_annotate) as progress, \
            DriverFault(plan.spark, plan.tables[TOKEN_TABLE]):
        # No rows, no report: Spark prunes a plan over rows it knows are none, observation and all, and
        # a classic driver would then wait for the observed metrics for ever.
        report = RunReport(p.max_error_rows, p.quarantine_text_max_chars, progress.reporter()) \
            if plan.stages and to_annotate else None
        try:  # the annotations table (output.annotations) is written inside _token_table
            tokens, reported = _token_table(plan, kept, report, reuse)
            plan.lake.replace(TOKEN_TABLE, tokens.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                              plan.replaced, plan.run_id, report.split if reported else None, plan.clustered)
        except Exception as e:  # one task saw more failed rows than the whole run may have
            line = limit_message(e)
            if line is None:
                raise
            raise JobError(f"{line}; nothing of this run counts as done: fix the input or raise "
                           "policies.max_error_rows") from None
        reported = report.counts() if report is not None else None
        if reported is not None:
            progress.finish(*reported)
            span["annotated_at"] = report.annotated_at()
    embedder = report.embedder() if report is not None else None
    if embedder and embedder["model_calls"]:  # the workers' own numbers: padding, calls, model seconds
        plan.manifest.body["embedder"] = embedder
    if reuse.mode != "off":
        plan.manifest.body["reuse"] = reuse.accounting(report.reuse_counters() if report is not None else None,
                                                       embedder["pieces"] if embedder else None)
    plan.manifest.body["progress"] = progress.samples  # rows and tokens done over the run (the report's plot)
    records = report.records() if report is not None else []
    limit = p.max_error_rows
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
        # the partition predicate first: Delta then reads (and checks for conflicts) only this run's partitions
        with plan.clock.phase("write_s"):
            plan.lake.delete_rows(TOKEN_TABLE, f"({partition_predicate(plan.partition_cols, plan.todo)}) AND "
                                  f"run_id = {_sql_string(plan.run_id)} AND `{plan.config.input.id_col}` IN ({ids})",
                                  plan.run_id)
    return records


def _row_index(raw):
    """Each row's place in its file, which orders duplicate ids the same way in every run. Parquet files
    have it (``_metadata.row_index``); a Delta table's scan does not (Delta 3.3): there the scan's own
    row numbers, stable for one scan of the same files."""
    from pyspark.sql import functions as F

    if "row_index" in raw.select("_metadata.*").columns:
        return F.col("_metadata.row_index")
    return F.monotonically_increasing_id()


def _sql_string(value) -> str:
    return "'" + str(value).replace("\\", "\\\\").replace("'", "\\'") + "'"


def _partition_condition(cols: list[str], partitions: list[state.Partition]):
    from pyspark.sql import functions as F

    return F.expr(partition_predicate(cols, partitions))


def _laid_out(plan: RunPlan, totals: list, df):
    """The rows to annotate (``_row`` dropped) spread over enough tasks that every core stays busy to the end:
    clustered by output partition and file size where the token table's files are sized (``plan.clustered``),
    else round-robin (``output.target_file_mb: 0``), or as read (``spark.tasks_per_core: 0``).

    A small corpus read from a few files gives a few tasks of very different sizes; the model pass is
    so much dearer than the shuffle of its text that evening them out pays for itself.
    """
    config = plan.config
    wanted = config.spark.tasks_per_core * default_parallelism(plan.spark) if config.spark.tasks_per_core else 0
    if plan.clustered:
        model = plan.manifest.body.get("model") or {}
        per_byte = layout.output_bytes_per_text_byte(model.get("dimension", 0) if config.output.embeddings else 0,
                                                     config.output.embedding_dtype)
        output = [r["text_bytes"] * per_byte for r in totals]
        counts = layout.bucket_counts(output, config.output.target_file_mb * 1024 * 1024, wanted)
        return layout.clustered(df, plan.partition_cols, config.input.id_col,
                                [tuple(r[c] for c in plan.partition_cols) for r in totals], counts,
                                [b / n if n else 0.0 for b, n in zip(output, counts)])
    df = df.drop("_row")
    return df.repartition(wanted) if wanted and num_partitions(df) < wanted else df


def _token_table(plan: RunPlan, kept, report, reuse: run_reuse.RunReuse) -> tuple:
    """The token rows to write, straight from the fused pass or via the written annotations table, and
    whether they still carry the workers' report column (``report.split`` takes it off at the write)."""
    from pyspark.sql import functions as F

    from pipelines.annotate.stages import run_native_stages

    config, stages, keep = plan.config, plan.stages, plan.keep
    if stages is None:  # sparknlp engine: its annotation columns, flattened in Spark
        annotated = sparknlp_engine.build_pipeline(config, plan.spark).fit(kept).transform(kept)
        annotated = annotated.select(*keep, "document", "sentence", "token", "embeddings")
        embeddings_col = "embeddings"
        if not config.output.annotations:
            return tokens_from_annotations(annotated, keep, embeddings_col, config.output.embedding_dtype), False
    elif not config.output.annotations:
        return kept.transform(with_token_embeddings(
            stages, keep, config.stages.embeddings.max_tokens_per_chunk, plan.spark.conf.get(KILL_WORKER_ONCE, None),
            config.output.embedding_dtype, report=report,
            hold_until=plan.spark.conf.get(HOLD_TASKS_UNTIL, None), reuse=reuse.for_pass())), report is not None
    else:
        _, model_stages = split_roles(stages)
        embeddings_col = model_stages[0].getOutputCol()
        annotated = run_native_stages(kept, stages, keep, report).select(
            *keep, *[s.getOutputCol() for s in stages], *([REPORT_COLUMN] if report is not None else []))
    plan.lake.replace(ANNOTATIONS_TABLE, annotated.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.replaced, plan.run_id, report.split if stages and report is not None else None,
                      plan.clustered)
    written = plan.written(ANNOTATIONS_TABLE)
    return tokens_from_annotations(written, keep, embeddings_col, config.output.embedding_dtype), False


def _write_entities(plan: RunPlan) -> None:
    """The entities table, read off what this run wrote (no second model pass): the chunk heads of the
    token table, or the chunk column of the annotations table."""
    from pyspark.sql import functions as F

    from pipelines.ner.tables import entities_from_annotations

    keep = plan.keep
    if ANNOTATIONS_TABLE in plan.tables:
        annotations = plan.written(ANNOTATIONS_TABLE)
        entities = entities_from_annotations(annotations, keep, plan.stages[-1].getOutputCol())
    else:
        tokens = plan.written(TOKEN_TABLE)
        entities = tokens.where(F.col("chunk").isNotNull()).select(
            *keep, "sentence", *[F.col(f"chunk.{name}") for name in tables.CHUNK_TYPE.names])
    plan.lake.replace(ENTITIES_TABLE, entities.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.replaced, plan.run_id)


def _write_classifications(plan: RunPlan) -> None:
    """The classifications table, read off the token rows this run wrote (each result rides on the last
    token of its sentence or document; see pipelines.classify.rollup): no second model pass."""
    from pyspark.sql import functions as F

    tokens = plan.written(TOKEN_TABLE)
    if tokens is None:  # a parquet lake whose token table has no file: none of the rows had tokens
        schema = tables.spark_schema([plan.raw.schema[c] for c in plan.keep], None, classification=True)
        tokens = plan.spark.createDataFrame([], schema)
    rows = tokens.where(F.col(tables.CLASSIFICATION_COLUMN).isNotNull()).select(
        *plan.keep, *[F.col(f"{tables.CLASSIFICATION_COLUMN}.{c}").alias(c) for c in tables.CLASSIFICATION_COLUMNS])
    plan.lake.replace(CLASSIFICATIONS_TABLE, rows.withColumn("run_id", F.lit(plan.run_id)), plan.partition_cols,
                      plan.replaced, plan.run_id)
