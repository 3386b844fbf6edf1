"""Spark NLP's annotation type, in Python and in Arrow.

Rows flow through the native stages as lists of :class:`Ann`; they become Arrow (and so Spark) values
only once, at the end of the fused pass, in :func:`to_arrow`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

DOCUMENT = "document"
TOKEN = "token"
WORD_EMBEDDINGS = "word_embeddings"
NAMED_ENTITY = "named_entity"
CHUNK = "chunk"


@dataclass(slots=True)
class Ann:
    """One annotation: offsets are 0-based into the original text, ``end`` inclusive."""

    annotatorType: str
    begin: int
    end: int
    result: str
    metadata: dict[str, str] = field(default_factory=dict)
    embeddings: np.ndarray | None = None


ARROW_TYPE = pa.list_(
    pa.struct(
        [
            pa.field("annotatorType", pa.string(), nullable=False),
            pa.field("begin", pa.int32(), nullable=False),
            pa.field("end", pa.int32(), nullable=False),
            pa.field("result", pa.string(), nullable=False),
            pa.field("metadata", pa.map_(pa.string(), pa.string()), nullable=False),
            pa.field("embeddings", pa.list_(pa.float32()), nullable=False),
        ]
    )
)


def spark_type():
    """``sparknlp.annotation.Annotation.arrayType()``: the column type every stage emits.

    Written out here rather than taken from spark-nlp: importing ``sparknlp`` loads all of its annotators
    (and distutils, which Python 3.12 no longer ships), and the native engine needs none of them.
    tests/integration/test_stages.py compares it with Spark NLP's own."""
    from pyspark.sql.types import (ArrayType, FloatType, IntegerType, MapType, StringType, StructField,
                                   StructType)

    return ArrayType(StructType([
        StructField("annotatorType", StringType(), False),
        StructField("begin", IntegerType(), False),
        StructField("end", IntegerType(), False),
        StructField("result", StringType(), False),
        StructField("metadata", MapType(StringType(), StringType(), True), False),
        StructField("embeddings", ArrayType(FloatType(), True), False),
    ]), True)


def from_arrow_row(items: list[dict] | None) -> list[Ann]:
    """One row of an annotation column, as ``pyarrow`` gives it by ``to_pylist``."""
    if not items:
        return []
    return [
        Ann(
            it["annotatorType"],
            it["begin"],
            it["end"],
            it["result"],
            dict(it["metadata"] or []),
            np.asarray(it["embeddings"], dtype=np.float32) if it["embeddings"] else None,
        )
        for it in items
    ]


def to_arrow(rows: list[list[Ann]]) -> pa.Array:
    """Build the Arrow list<struct> column in bulk; embeddings go in as one flat float32 buffer."""
    flat = [a for row in rows for a in row]
    row_offsets = np.zeros(len(rows) + 1, dtype=np.int32)
    np.cumsum([len(r) for r in rows], out=row_offsets[1:])

    vectors = [a.embeddings if a.embeddings is not None else _EMPTY for a in flat]
    vec_offsets = np.zeros(len(flat) + 1, dtype=np.int32)
    np.cumsum([len(v) for v in vectors], out=vec_offsets[1:])
    values = np.concatenate(vectors).astype(np.float32, copy=False) if flat else _EMPTY
    embeddings = pa.ListArray.from_arrays(pa.array(vec_offsets), pa.array(values, pa.float32()))

    metadata = pa.array([list(a.metadata.items()) for a in flat], pa.map_(pa.string(), pa.string()))
    struct = pa.StructArray.from_arrays(
        [
            pa.array([a.annotatorType for a in flat], pa.string()),
            pa.array([a.begin for a in flat], pa.int32()),
            pa.array([a.end for a in flat], pa.int32()),
            pa.array([a.result for a in flat], pa.string()),
            metadata,
            embeddings,
        ],
        fields=list(ARROW_TYPE.value_type),
    )
    return pa.ListArray.from_arrays(pa.array(row_offsets), struct).cast(ARROW_TYPE)


_EMPTY = np.zeros(0, dtype=np.float32)
