"""The lake's entities table: one row per NER chunk, built in the Python pass like the token table.

Columns: the kept columns (``doc_id`` and the partition columns), then :data:`ENTITY_COLUMNS`::

    sentence int, chunk_index int, begin int, end int, text string, entity string, confidence float (null
    when NerDLModel ran without includeConfidence)

``text == original_text[begin:end + 1]`` (offsets into the original document, end inclusive).
"""

from __future__ import annotations

import pyarrow as pa

from pipelines.annotate.native import Batch
from pipelines.annotate.tables import ENTITY_COLUMNS, ENTITY_FIELDS


def _entity(a, index: int) -> dict:
    c = a.metadata.get("confidence")
    return {"sentence": int(a.metadata.get("sentence", "0")), "chunk_index": index, "begin": a.begin, "end": a.end,
            "text": a.result, "entity": a.metadata.get("entity", ""), "confidence": float(c) if c is not None else None}


def entity_rows(columns: Batch, record_batch: pa.RecordBatch, chunk_col: str, keep: list[str]) -> pa.RecordBatch:
    """One output row per ``chunk`` annotation of ``columns[chunk_col]``: ``keep`` columns, then ENTITY_COLUMNS."""
    take, entities = [], []
    for row, anns in enumerate(columns[chunk_col]):
        for i, a in enumerate(anns):
            take.append(row)
            entities.append(_entity(a, i))
    indices = pa.array(take, pa.int64())
    arrays = [record_batch.column(name).take(indices) for name in keep] + [
        pa.array([e[f.name] for e in entities], f.type) for f in ENTITY_FIELDS]
    return pa.RecordBatch.from_arrays(arrays, names=list(keep) + list(ENTITY_COLUMNS))


def entity_schema(kept_fields: list):
    """The Spark schema of :func:`entity_rows`' output; ``kept_fields``: ``[df.schema[c] for c in keep]``."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    return StructType(list(kept_fields) + [StructField(f.name, from_arrow_type(f.type), f.nullable)
                                           for f in ENTITY_FIELDS])


def with_entities(stages, keep: list[str]):
    """``df.transform(with_entities(stages, keep))``: one row per entity, from one fused Python pass.

    ``stages``: the native stages up to and including NerConverter (its output column is the chunks).
    """
    from pipelines.annotate import native
    from pipelines.annotate.stages import check_inputs

    steps = [s._step() for s in stages]
    chunk_col = steps[-1].output_col
    for s in stages:  # NerDLModel's storage-ref rule, on the driver, before any task runs
        check = getattr(s, "_check_embeddings_of_stages", None)
        if check is not None:
            check(stages)

    def flatten(batches):
        for rb in batches:
            yield entity_rows(native.apply_steps(rb, steps), rb, chunk_col, keep)

    def transform(df):
        check_inputs(df, steps)
        return df.mapInArrow(flatten, entity_schema([df.schema[c] for c in keep]))

    return transform


def entities_from_annotations(annotations_df, keep: list[str], chunk_col: str = "ner_chunk"):
    """The entities table derived from a written annotations table (when the job writes one)."""
    from pyspark.sql import functions as F

    exploded = annotations_df.select(*keep, F.posexplode(chunk_col).alias("chunk_index", "a"))
    return exploded.select(
        *keep,
        F.col("a.metadata").getItem("sentence").cast("int").alias("sentence"),
        F.col("chunk_index").cast("int").alias("chunk_index"),
        F.col("a.begin").alias("begin"), F.col("a.end").alias("end"), F.col("a.result").alias("text"),
        F.col("a.metadata").getItem("entity").alias("entity"),
        F.col("a.metadata").getItem("confidence").cast("float").alias("confidence"),
    )
