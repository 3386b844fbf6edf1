"""How the rows to annotate are laid out over the model pass's tasks.

The vectors are most of a run's bytes (768 floats a token for mBERT). Spread the text over tasks at
random and the writer must shuffle the vectors to gather each output partition into a few files
(REBALANCE): every vector crosses the disk twice. Text is cheap to shuffle, so the job clusters the input
instead: each task gets the rows of one output partition and about one target file of output
(``output.target_file_mb``), and the model writes its vectors straight into their files.

A partition's output is estimated from its text: tokens per byte of UTF-8 text times the bytes of a
token row. The partition is cut into that many buckets of a target file each (smaller ones when the
corpus is too small to keep every core busy otherwise), each row falls into one by a hash of its id and
place in its file, and a range partitioning on (partition columns, bucket) gives each bucket its own task.
Range rather than hash: hashing ~N buckets into N tasks leaves some tasks two or three buckets and others
none (on the benchmark corpus the largest task held 3.4 times the mean, against 1.6 by range).
"""

from __future__ import annotations

import math

from pipelines.annotate.tables import vector_bytes

# Tokens per byte of UTF-8 text. Measured with the job's tokenizer (tokens in the token table over the text
# bytes of each language's rows): 0.13-0.20 for Latin scripts, 0.07-0.10 for Cyrillic, Greek and Arabic,
# 0.06-0.08 for Devanagari, 0.21-0.33 for Chinese and Japanese (one token an ideograph, 3 bytes each); the
# benchmark corpus (benchmarks.corpus, 16 languages) 0.122 in all, the sample corpus 0.157. Bytes vary less
# across scripts than characters (0.13-0.96 tokens per character). A partition of Chinese text gets files of
# up to ~2x the target, one of Hindi ~half; the sizes are a guide, not a limit.
TOKENS_PER_TEXT_BYTE = 0.15
# A token row's bytes besides its vector (token, offsets, sentence, ids, NER columns; Parquet with snappy):
# 3,095 bytes a token in all with 768 float32 dimensions (3,072: docs/performance.md), 527 with the demo
# model's 128 (512).
TOKEN_ROW_BYTES = 24


def output_bytes_per_text_byte(dimension: int, embedding_dtype: str) -> float:
    """Token-table bytes per byte of input text; ``dimension`` 0: no vectors (output.embeddings false)."""
    return TOKENS_PER_TEXT_BYTE * (TOKEN_ROW_BYTES + (vector_bytes(dimension, embedding_dtype) if dimension else 0))


def bucket_counts(output_bytes: list[float], target_bytes: float, busy_tasks: int) -> list[int]:
    """Each partition's number of buckets (model-pass tasks, output files): none much above ``target_bytes``
    of output, and at least ``busy_tasks`` buckets in all, of about equal size, so that every core has work
    to the end; a partition with nothing to annotate gets none."""
    total = sum(output_bytes)
    if not total:
        return [0] * len(output_bytes)
    bucket = min(target_bytes, total / max(busy_tasks, 1))
    return [math.ceil(b / bucket - 1e-9) if b > 0 else 0 for b in output_bytes]


def clustered(df, partition_cols: list[str], id_col: str, partitions: list[tuple], counts: list[int]):
    """``df`` (with ``_row``, each row's place in its file) in tasks of one bucket each: ``counts[i]`` buckets
    for the partition whose values are ``partitions[i]``; ``_row`` dropped."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import IntegerType, StructField, StructType

    spread = F.xxhash64(_col(id_col), "_row")
    if partition_cols:  # each row's partition's count, by a (broadcast) join: the partitions may be thousands
        keys = [f"_partition_{i}" for i in range(len(partition_cols))]
        schema = StructType([StructField(k, df.schema[c].dataType) for k, c in zip(keys, partition_cols)]
                            + [StructField("_buckets", IntegerType())])
        lookup = df.sparkSession.createDataFrame([(*values, n) for values, n in zip(partitions, counts) if n], schema)
        same = [_col(c).eqNullSafe(F.col(k)) for c, k in zip(partition_cols, keys)]
        df = df.join(F.broadcast(lookup), on=same).drop(*keys)
        buckets = F.col("_buckets")
    else:
        buckets = F.lit(max(sum(counts), 1))
    df = df.withColumn("_bucket", F.pmod(spread, buckets))
    return df.repartitionByRange(max(sum(counts), 1), *map(_col, partition_cols), "_bucket") \
        .drop("_bucket", "_buckets", "_row")


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")  # a partition column may be named "a.b"
