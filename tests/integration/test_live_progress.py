"""Progress moves while one huge document is under way: running tasks send their counts to the driver
(UDP), before the task reports the finished batch in its output (pipelines.annotate.worker_reports)."""

import time

import pyarrow as pa
import pytest

from pyspark.sql.types import StringType, StructField

from pipelines.run.progress import JobProgress, LiveCounts
from pipelines.annotate.tables import spark_schema, stream_token_table
from pipelines.annotate.worker_reports import REPORT_COLUMN, RunReport, TaskReport, with_report_column

SENTENCE = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "


@pytest.fixture(scope="module")
def steps(demo_bundle):
    from pipelines.run.assemble import build_stages
    from pipelines.config import parse_config
    from pipelines.annotate.dataframes import split_roles

    text_stages, model_stages = split_roles(build_stages(parse_config({}), str(demo_bundle.path), ["doc_id", "text"]))
    return [s._step() for s in text_stages], [s._step() for s in model_stages]


def _wait_for(condition, what: str):
    """A datagram on the loopback interface arrives in microseconds; the bound only keeps a broken
    channel from hanging the suite."""
    for _ in range(6000):
        if condition():
            return
        time.sleep(0.01)
    raise AssertionError(f"never saw {what}")


def test_counts_reach_the_driver_while_a_single_document_is_still_being_processed(steps):
    live = LiveCounts("127.0.0.1", interval_s=0)
    task = TaskReport(live=live.reporter())
    rb = pa.RecordBatch.from_pydict({"doc_id": ["huge"], "text": [SENTENCE * 60]})
    schema = spark_schema([StructField("doc_id", StringType())])
    out = task.attach(stream_token_table(iter([rb]), *steps, ["doc_id"], max_tokens=200, on_batch=task), schema)
    try:
        first, second = next(out), next(out)  # the generator resumed past the first chunk: its count was sent
        assert first[REPORT_COLUMN].null_count == first.num_rows > 0  # token rows, no report yet
        _wait_for(lambda: live.totals()[1] >= first.num_rows, "the first chunk's tokens")
        assert live.totals() == (0, first.num_rows)  # the document is not done yet: 0 rows, its tokens so far
        rest = list(out)
        reports = [r for b in rest for r in b[REPORT_COLUMN].to_pylist() if r is not None]
        total = first.num_rows + second.num_rows + sum(b.num_rows for b in rest) - len(reports)
        assert [(r["rows"], r["tokens"]) for r in reports] == [(1, total)]  # one report, once the batch is done
        assert rest[-1][REPORT_COLUMN].null_count == 0  # and it comes last
        _wait_for(lambda: live.totals()[0] == 1, "the final count")
        assert live.totals() == (1, total)
    finally:
        live.close()


def test_a_spark_job_reports_each_task_once_its_latest_count(spark, steps):
    texts = [SENTENCE * n for n in (40, 3, 25, 1)]
    df = spark.createDataFrame([(f"d{i}", t) for i, t in enumerate(texts)], "doc_id string, text string").repartition(2)
    schema = spark_schema([df.schema["doc_id"]])
    with JobProgress(spark, len(texts)) as progress:
        report = RunReport(live_reporter=progress.reporter())

        def run(batches):
            task = report.task()
            return task.attach(stream_token_table(batches, *steps, ["doc_id"], 150, task), schema)

        n = report.split(df.mapInArrow(run, with_report_column(schema))).count()
        _wait_for(lambda: progress.live.totals() == (len(texts), n), "every task's final count")
        assert progress.fields()["tokens"] == n
        assert report.counts() == (len(texts), n)
