"""The fused native stages as DataFrame-to-DataFrame helpers, for ``df.transform(...)``: the lake's flat token
table straight from one Python pass (:func:`with_token_embeddings`), or derived from Spark NLP annotation
columns (:func:`tokens_from_annotations`)."""

from __future__ import annotations

from pipelines.annotate import tables
from pipelines.annotate.reuse import MemoSpec, stream_shared
from pipelines.annotate.worker_reports import with_report_column


def split_roles(stages) -> tuple[list, list]:
    """(text stages, model stages): everything before the first model stage (BertEmbeddings or a
    classifier) turns text into tokens; the model stages and what follows them (NerDLModel,
    NerConverter, classifiers) work on those tokens."""
    from pipelines.classify.stages import ClassifierStage
    from pipelines.annotate.stages import BertEmbeddings

    first_model = next((i for i, s in enumerate(stages) if isinstance(s, (BertEmbeddings, ClassifierStage))), None)
    if first_model is None:
        raise ValueError("with_token_embeddings needs a BertEmbeddings or classifier stage after the text stages")
    return list(stages[:first_model]), list(stages[first_model:])


def with_token_embeddings(stages, keep: list[str], max_tokens: int = 16384, fault_marker=None,
                          embedding_dtype: str = "float32", report=None, hold_until: str | None = None,
                          reuse: tuple | None = None):
    """``df.transform(with_token_embeddings(stages, ["doc_id", "lang"]))``: one row per token.

    Runs the fused native stages and flattens in the same Python pass, in units of at most
    ``max_tokens`` tokens, so per-token annotation structs never reach the JVM and a worker's memory
    does not grow with the document. ``report`` (a :class:`pipelines.annotate.worker_reports.RunReport`): a row
    that raises is reported there and the task goes on, and the output carries the workers' reports
    until ``report.split`` takes them off; None: the first row that raises fails the task. ``hold_until``
    (tests only): each task waits for this file before its first row. ``reuse``: the fields of
    :class:`pipelines.annotate.reuse.MemoSpec` after the steps (the run's shared sentences for the executors,
    or None; each worker's own memory and its executor's disk cache in MB; the run's fingerprint): each
    distinct sentence through the model once (:mod:`pipelines.annotate.reuse`); None: every occurrence.
    """
    from pipelines.annotate.stages import check_inputs

    for stage in stages:  # NerDLModel's storage-ref rule, on the driver, before any task runs
        check = getattr(stage, "_check_embeddings_of_stages", None)
        if check is not None:
            check(stages)
    text_stages, model_stages = split_roles(stages)
    text_steps, model_steps = [s._step() for s in text_stages], [s._step() for s in model_stages]
    roles = tables.model_roles(model_steps)
    memo = MemoSpec(tuple([text_steps[-1], *roles.annotating]), *reuse) if reuse is not None else None

    def transform(df):
        check_inputs(df, text_steps + model_steps)
        schema = tables.spark_schema([df.schema[c] for c in keep], embedding_dtype if roles.embeddings else None,
                                     ner=roles.tagger is not None, classification=roles.sequence is not None)

        def flatten(batches):
            task = report.task() if report is not None else None
            out = tables.stream_token_table(batches, text_steps, model_steps, keep, max_tokens, task, fault_marker,
                                            embedding_dtype, on_row_error=task.row_failed if task else None,
                                            hold_until=hold_until, memo=memo)
            return task.attach(out, schema) if task else out

        return df.mapInArrow(flatten, with_report_column(schema) if report is not None else schema)

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


def sentence_occurrences(stages):
    """``df.transform(sentence_occurrences(stages))``: one row (``sentence``, ``tokens``) per sentence the
    worker pass will see, from the text stages alone (the run's key pass)."""
    text_steps = [s._step() for s in split_roles(stages)[0]]

    def transform(df):
        return df.mapInArrow(lambda batches: tables.stream_sentences(batches, text_steps),
                             "sentence string, tokens int")

    return transform


def shared_sentence_entries(stages, max_tokens: int = 16384):
    """``sentences.transform(shared_sentence_entries(stages))``: for each row's distinct ``sentence``, the model
    stages' outputs encoded (``payload``, :func:`pipelines.annotate.reuse.encode_entry`) and the WordPieces
    each output batch cost (``pieces``)."""
    text_stages, model_stages = split_roles(stages)
    token_step = text_stages[-1]._step()
    annotating = list(tables.model_roles([s._step() for s in model_stages]).annotating)

    def transform(df):
        return df.select("sentence").mapInArrow(
            lambda batches: stream_shared(batches, token_step, annotating, max_tokens),
            "sentence string, payload binary, pieces long")

    return transform
