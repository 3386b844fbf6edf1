"""How the rows to annotate are laid out over the model pass's tasks.

The vectors are most of a run's bytes (768 floats a token for mBERT). Spread the text over tasks at
random and the writer must shuffle the vectors to gather each output partition into a few files
(REBALANCE): every vector crosses the disk twice. Text is cheap to shuffle, so the job clusters the input
instead: each task gets the rows of one output partition and about one target file of output
(``output.target_file_mb``), and the model writes its vectors straight into their files.

A partition's output is estimated from its text: tokens per byte of UTF-8 text times the bytes of a
token row. The partition is cut into that many buckets of a target file each (smaller ones when the
corpus is too small to keep every core busy otherwise), each row falls into one by a hash of its id and
place in its file, and each bucket gets a task of its own: a hash partitioning into exactly as many tasks,
on a key chosen per bucket so that Spark's hash sends it to that bucket's task (:func:`task_keys`). Neither
a hash of the bucket itself nor a range partitioning can promise that: hashing N buckets into N tasks leaves
some tasks two or three buckets and others none (on the benchmark corpus the largest task held 3.4 times
the mean), and a range partitioning, which draws its bounds from a sample, still merged two buckets into
one task (1.6 times the mean; on the reuse bench's 30% corpus tasks of 6,937 to 16,082 tokens, one core
idle for the last 10 s of a 152 s pass).

Spark starts a stage's tasks in the order of their numbers, so the partitions whose buckets are largest get
the first ones (:func:`task_bases`): the pass ends on the smallest buckets, and the core that finishes first
waits the least (the longest-processing-time-first rule).
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


def task_bases(bucket_bytes: list[float], counts: list[int]) -> list[int]:
    """Each partition's first task number: its ``counts[i]`` buckets (of ``bucket_bytes[i]`` each) take
    consecutive tasks, the partitions with the largest buckets first."""
    bases, start = [0] * len(counts), 0
    for i in sorted(range(len(counts)), key=lambda i: -bucket_bytes[i]):
        bases[i], start = start, start + counts[i]
    return bases


def spark_int_hash(values, seed: int = 42):
    """Spark's ``hash()`` of IntegerType values (Murmur3 x86 32-bit, what ``repartition(n, col)`` takes
    modulo n), for a numpy array of ints; signed int32s."""
    import numpy as np

    def rotl(x, r):
        return (x << np.uint32(r)) | (x >> np.uint32(32 - r))

    with np.errstate(over="ignore"):
        k = np.asarray(values).astype(np.uint32) * np.uint32(0xCC9E2D51)
        k = rotl(k, 15) * np.uint32(0x1B873593)
        h = rotl(np.uint32(seed) ^ k, 13) * np.uint32(5) + np.uint32(0xE6546B64)
        h ^= np.uint32(4)  # the length in bytes
        h ^= h >> np.uint32(16)
        h *= np.uint32(0x85EBCA6B)
        h ^= h >> np.uint32(13)
        h *= np.uint32(0xC2B2AE35)
        h ^= h >> np.uint32(16)
    return h.view(np.int32)


def task_keys(tasks: int) -> list[int]:
    """For each task number t < ``tasks``, an int whose hash partitioning into ``tasks`` partitions lands on t
    (the smallest such): rows keyed by ``task_keys(n)[t]`` and ``repartition(n, key)`` all go to task t."""
    import numpy as np

    keys, found, start = [-1] * tasks, 0, 0
    while found < tasks:  # each task is hit by 1 in `tasks` candidates: about tasks * ln(tasks) tried
        candidates = np.arange(start, start + 4 * tasks + 64, dtype=np.int64)
        for key, task in zip(candidates.tolist(), np.mod(spark_int_hash(candidates), tasks).tolist()):
            if keys[task] < 0:
                keys[task], found = key, found + 1
        start = int(candidates[-1]) + 1
    return keys


def clustered(df, partition_cols: list[str], id_col: str, partitions: list[tuple], counts: list[int],
              bucket_bytes: list[float] | None = None):
    """``df`` (with ``_row``, each row's place in its file) in tasks of one bucket each: ``counts[i]`` buckets
    of about ``bucket_bytes[i]`` for the partition whose values are ``partitions[i]``, the largest buckets in
    the first tasks; ``_row`` dropped."""
    from pyspark.sql import functions as F
    from pyspark.sql.types import ArrayType, IntegerType, StructField, StructType

    tasks = max(sum(counts), 1)
    bases = task_bases(bucket_bytes or [0.0] * len(counts), counts)
    keys = task_keys(tasks)
    # Each partition's task keys, by a (broadcast) join: the partitions may be thousands, the tasks tens of
    # thousands (as literals in the plan, 20,000 keys took 13 s of py4j calls and planning).
    values = [f"_partition_{i}" for i in range(len(partition_cols))]
    schema = StructType([StructField(v, df.schema[c].dataType) for v, c in zip(values, partition_cols)]
                        + [StructField("_keys", ArrayType(IntegerType()))])
    rows = [(*p, keys[base:base + n]) for p, n, base in zip(partitions, counts, bases) if n] if partition_cols \
        else [(keys,)]
    lookup = F.broadcast(df.sparkSession.createDataFrame(rows, schema))
    if partition_cols:
        df = df.join(lookup, on=[_col(c).eqNullSafe(F.col(v)) for c, v in zip(partition_cols, values)]).drop(*values)
    else:
        df = df.crossJoin(lookup)
    bucket = F.pmod(F.xxhash64(_col(id_col), "_row"), F.size("_keys"))
    return df.withColumn("_task", F.element_at("_keys", (bucket + 1).cast("int"))) \
        .repartition(tasks, "_task").drop("_task", "_keys", "_row")


def _col(name: str):
    from pyspark.sql import functions as F

    return F.col("`" + name.replace("`", "``") + "`")  # a partition column may be named "a.b"
