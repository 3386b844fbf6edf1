"""Row policies: why a row is not annotated (its quarantine reason), and the quarantine rows.

Every input row ends in exactly one place: the token table (through its tokens), the quarantine table
(with its reason), or, under ``policies.empty_text: keep``, the count of kept empty documents.
"""

from __future__ import annotations

from pipelines.config import JobConfig
from pipelines.errors import JobError
from pipelines.text.sentences import VISIBLE_CHAR_REGEX

# Reasons decided in Spark before annotating; ``error`` is added by the workers' row boundary.
REASONS = ("null_id", "null_text", "empty_text", "blank_text", "duplicate_id", "too_long", "error")


def text_column(config: JobConfig):
    """The text as a string column for Spark-side checks, also when the corpus stores it as binary
    (the workers decode it strictly, per row; a row whose bytes are not UTF-8 fails there alone)."""
    from pyspark.sql import functions as F

    return F.col(config.input.text_col).cast("string")


def classify_rows(df, config: JobConfig, partitions: list[str]):
    """``df.transform(lambda d: classify_rows(d, config, partitions))``: adds ``_reason``, why a row
    goes to quarantine, or null when it is annotated."""
    from pyspark.sql import Window
    from pyspark.sql import functions as F

    p = config.policies
    id_col, text = F.col(config.input.id_col), text_column(config)
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
    if not dup_ids.take(1):
        return df
    if p.duplicate_id == "fail":
        sample = [r[0] for r in dup_ids.limit(5).collect()]
        raise JobError(f"duplicate {config.input.id_col} values in the input (e.g. {sample}): make ids unique, "
                       "or set policies.duplicate_id: quarantine to keep the first and quarantine the rest")
    order = Window.partitionBy(config.input.id_col).orderBy(*partitions, "_file", "_row")
    later = (df.join(F.broadcast(dup_ids), config.input.id_col, "left_semi")
             .withColumn("_n", F.row_number().over(order)).where("_n > 1")
             .select("_file", "_row", F.lit("duplicate_id").alias("_dup")))
    return (df.join(F.broadcast(later), ["_file", "_row"], "left")
            .withColumn("_reason", F.coalesce("_reason", "_dup")).drop("_dup"))


def quarantine_rows(classified, config: JobConfig, keep: list[str], run_id: str):
    """The quarantine table's rows for the classified rows that have a reason."""
    from pyspark.sql import functions as F

    text = text_column(config)
    limit = config.policies.quarantine_text_max_chars
    return classified.where(F.col("_reason").isNotNull()).select(
        *keep,
        F.col("_reason").alias("reason"),
        F.lit(None).cast("string").alias("error"),
        F.coalesce(F.length(text), F.lit(0)).alias("text_length"),
        F.when(F.length(text) <= limit, text).alias("text"),
        F.lit(run_id).alias("run_id"),
    )


def error_rows(spark, records: list[dict], schema, run_id: str, text_max_chars: int):
    """Quarantine rows (reason ``error``) for the rows the workers could not annotate.

    ``records``: what :class:`pipelines.annotate.worker_reports.RunReport` collected: the row's keep columns plus
    ``error_class``, ``error_message``, ``text_length`` and ``text`` (already capped)."""
    rows = [{**{f.name: r.get(f.name) for f in schema.fields if f.name not in _ERROR_FIELDS},
             "reason": "error", "error": f"{r['error_class']} ({r['stage']}): {r['error_message']}",
             "text_length": int(r.get("text_length") or 0),
             # as for every quarantine row: the text when it is short enough, else none of it
             "text": r.get("text") if int(r.get("text_length") or 0) <= text_max_chars else None,
             "run_id": run_id}
            for r in records]
    return spark.createDataFrame(rows, schema)


_ERROR_FIELDS = ("reason", "error", "text_length", "text", "run_id")
