"""What the workers tell the driver, through the job's own output: counts, embedder counters, failed rows.

A classic driver could use accumulators for this, but a Spark Connect client has none (no SparkContext):
the one channel every driver has is the data. So the fused pass's ``mapInArrow`` output carries one more
column, :data:`REPORT_COLUMN`. On the rows the tables keep it is null; after each Arrow batch the task
adds one *report row* (rows, tokens and the embedder's counters of that batch) and one per failed row
(its error record as JSON), whose other columns hold placeholders. On the driver,
:meth:`RunReport.split` observes the report column (``DataFrame.observe``: the sums and the error
records come back with the write's own action, no second pass) and keeps only the data rows.

Observed metrics, like accumulators, count the tasks that succeeded; a task that is run again after
succeeding (a lost executor, a recomputed stage) counts again, hence the error records' deduplication.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterator

import pyarrow as pa

from pipelines.annotate.reuse import COUNTERS as REUSE_COUNTERS
from pipelines.model.embed import empty_stats
from pipelines.annotate.row_errors import LIMIT_MESSAGE, RowErrorLimitExceeded, RowFailure, describe, error_record, record_key

REPORT_COLUMN = "_corpus_nlp_report"
STAT_KEYS = tuple(empty_stats()) + REUSE_COUNTERS  # the embedder's counters, then the sentence memo's
# done_at: when the batch's annotation ended (epoch seconds): the latest tells the driver when the model pass
# ended inside a write that runs it, which splits the run's annotate and write times
REPORT_TYPE = pa.struct([pa.field("rows", pa.int64()), pa.field("tokens", pa.int64()),
                         pa.field("stats", pa.struct([pa.field(k, pa.float64()) for k in STAT_KEYS])),
                         pa.field("done_at", pa.float64()), pa.field("error", pa.string())])
REPORT_FIELD = pa.field(REPORT_COLUMN, REPORT_TYPE)


def with_report_column(spark_schema):
    """``spark_schema`` (a StructType) plus the report column: what a pass that reports declares."""
    from pyspark.sql.pandas.types import from_arrow_type
    from pyspark.sql.types import StructField, StructType

    return StructType([*spark_schema.fields, StructField(REPORT_COLUMN, from_arrow_type(REPORT_TYPE), True)])


class TaskReport:
    """The worker side, made inside each task: ``on_batch`` and ``on_row_error`` for the worker pass
    (:func:`pipelines.annotate.tables.stream_token_table`), and :meth:`attach` to put the reports in its output.

    ``live``: a :class:`pipelines.run.progress.LiveReporter` for the counts while a batch is under way.
    More than ``max_rows`` failed rows stop the task: the run would fail anyway, and a systematic failure
    (say, a model that cannot load) would otherwise cost a whole pass before anyone hears of it."""

    def __init__(self, max_rows: int | None = None, text_max_chars: int = 1000, live=None):
        self.max_rows, self.text_max_chars, self.live = max_rows, text_max_chars, live
        self.failed = 0
        self._pending: list[dict] = []

    def __call__(self, rows: int, tokens: int, embedder_delta: dict | None = None) -> None:
        """``on_batch``: one Arrow batch done."""
        stats = {k: float((embedder_delta or {}).get(k, 0)) for k in STAT_KEYS}
        self._pending.append({"rows": rows, "tokens": tokens, "stats": stats, "done_at": time.time(), "error": None})

    def emitted(self, rows: int, tokens: int, final: bool = False) -> None:
        if self.live is not None:
            self.live.report(rows, tokens, final)

    def row_failed(self, failure: RowFailure) -> None:
        """``on_row_error``."""
        self.failed += 1
        record = error_record(failure, self.text_max_chars)
        self._pending.append({"rows": None, "tokens": None, "stats": None, "done_at": time.time(),
                              "error": json.dumps(record, default=str)})
        if self.max_rows is not None and self.failed > self.max_rows:
            raise RowErrorLimitExceeded(
                f"{LIMIT_MESSAGE}: more than {self.max_rows} rows failed in one task (policies.max_error_rows); "
                f"the last one: {describe(record)}")

    def attach(self, batches: Iterator[pa.RecordBatch], spark_schema) -> Iterator[pa.RecordBatch]:
        """``batches`` (rows of the Spark type ``spark_schema``) with a null report column, each followed by
        the reports made so far. Every batch of a task's Arrow stream must have one schema: the report rows
        take the data batches' (Spark's own conversion of ``spark_schema`` only when there were none)."""
        schema = None
        for batch in batches:
            schema = schema or batch.schema.append(REPORT_FIELD)
            yield pa.RecordBatch.from_arrays([*batch.columns, pa.nulls(batch.num_rows, REPORT_TYPE)], schema=schema)
            yield from self._drain(schema, spark_schema)
        if schema is None and self._pending:
            from pyspark.sql.pandas.types import to_arrow_schema

            schema = to_arrow_schema(spark_schema).append(REPORT_FIELD)
        yield from self._drain(schema, spark_schema)

    def _drain(self, schema: pa.Schema, spark_schema) -> Iterator[pa.RecordBatch]:
        if not self._pending:
            return
        n, reports, self._pending = len(self._pending), self._pending, []
        # Spark's nullability, not the batch's: Arrow fields built without a schema all say nullable
        columns = [pa.array([None if declared.nullable else placeholder(f.type)] * n, f.type)
                   for declared, f in zip(spark_schema.fields, schema)]
        yield pa.RecordBatch.from_arrays([*columns, pa.array(reports, REPORT_TYPE)], schema=schema)


def placeholder(arrow_type: pa.DataType) -> Any:
    """A value of ``arrow_type`` for a non-nullable column of a report row (never written anywhere)."""
    if pa.types.is_struct(arrow_type):
        return {f.name: None if f.nullable else placeholder(f.type) for f in arrow_type}
    if pa.types.is_list(arrow_type) or pa.types.is_large_list(arrow_type) or pa.types.is_map(arrow_type):
        return []
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return ""
    if pa.types.is_binary(arrow_type) or pa.types.is_large_binary(arrow_type):
        return b""
    if pa.types.is_boolean(arrow_type):
        return False
    if pa.types.is_floating(arrow_type):
        return 0.0
    return 0  # integers, dates, timestamps, decimals


class RunReport:
    """The driver side: ``report = RunReport(max_rows, text_max_chars)``; the workers run
    ``report.task()``'s :meth:`TaskReport.attach` on their output; ``df = report.split(df)`` before the
    write; after it, :meth:`counts`, :meth:`embedder` and :meth:`records`."""

    def __init__(self, max_rows: int | None = None, text_max_chars: int = 1000, live_reporter=None):
        self.max_rows, self.text_max_chars, self.live_reporter = max_rows, text_max_chars, live_reporter
        self._observation = None

    def task(self) -> TaskReport:
        """A fresh worker side (call it inside the task: each task counts its own failed rows)."""
        return TaskReport(self.max_rows, self.text_max_chars, self.live_reporter)

    def split(self, df):
        """``df`` (with the report column) observed, without its report rows and column."""
        from pyspark.sql import Observation
        from pyspark.sql import functions as F

        report = F.col(REPORT_COLUMN)
        self._observation = Observation(f"corpus_nlp_report_{id(self):x}")
        # to_json: PySpark 3.5's Observation.get gives arrays back as Java objects; a string comes back whole
        observed = df.observe(self._observation, F.sum(report.rows).alias("rows"), F.sum(report.tokens).alias("tokens"),
                              *[F.sum(report.stats[k]).alias(f"stat_{k}") for k in STAT_KEYS],
                              F.max(report.done_at).alias("done_at"),
                              F.to_json(F.collect_list(report.error)).alias("errors"))
        return observed.where(report.isNull()).drop(REPORT_COLUMN)

    def _metrics(self) -> dict:
        if self._observation is None:
            return {}
        metrics = self._observation.get
        if "errors" not in metrics:  # never silently: the failed rows are in there
            raise RuntimeError("the workers' reports did not come back with the write (an observed DataFrame "
                               "whose plan was rebuilt before its action?)")
        return metrics

    def counts(self) -> tuple[int, int] | None:
        """(rows, tokens) the workers reported; None when no pass reported batches (the annotations pass
        reports failed rows only)."""
        m = self._metrics()
        return None if m.get("rows") is None else (int(m["rows"]), int(m["tokens"]))

    def annotated_at(self) -> float | None:
        """When the workers finished annotating their last batch (epoch seconds); None when none reported."""
        done_at = self._metrics().get("done_at")
        return None if done_at is None else float(done_at)

    def embedder(self) -> dict:
        """The embedder's counters summed over the workers, with the padding ratio."""
        m = self._metrics()
        counts = {}
        for k, zero in empty_stats().items():
            value = m.get(f"stat_{k}") or 0
            counts[k] = round(float(value), 3) if isinstance(zero, float) else int(value)
        counts["padding_ratio"] = round(counts["padded_pieces"] / counts["pieces"], 4) if counts["pieces"] else 0.0
        return counts

    def reuse_counters(self) -> dict:
        """The sentence memo's counters summed over the workers (see pipelines.annotate.reuse)."""
        m = self._metrics()
        return {k: int(m.get(f"stat_{k}") or 0) for k in REUSE_COUNTERS}

    def records(self) -> list[dict]:
        """Each failed row once (by its ``keep`` values), in the order they arrived."""
        seen: dict[tuple, dict] = {}
        for text in json.loads(self._metrics().get("errors") or "[]"):
            record = json.loads(text)
            seen.setdefault(record_key(record), record)
        return list(seen.values())
