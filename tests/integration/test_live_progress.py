"""Progress moves while one huge document is under way: running tasks send their counts to the driver
(UDP), before Spark applies the accumulators at the task's end."""

import time

import pyarrow as pa
import pytest

from pipelines.embed import empty_stats
from pipelines.progress import BatchCounter, JobProgress, LiveCounts
from pipelines.tables import spark_schema, stream_token_table

SENTENCE = "Der Zug nach München fährt um 9.15 Uhr ab, sagte Dr. Weiß. 北京很大！ "


@pytest.fixture(scope="module")
def steps(demo_bundle):
    from pipelines.assemble import build_stages
    from pipelines.config import parse_config
    from pipelines.job import split_roles

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


def test_counts_reach_the_driver_while_a_single_document_is_still_being_processed(spark, steps):
    live = LiveCounts("127.0.0.1", interval_s=0)
    rows, tokens = spark.sparkContext.accumulator(0), spark.sparkContext.accumulator(0)
    embedder = {k: spark.sparkContext.accumulator(v) for k, v in empty_stats().items()}
    counter = BatchCounter(rows, tokens, embedder, live.reporter())
    rb = pa.RecordBatch.from_pydict({"doc_id": ["huge"], "text": [SENTENCE * 60]})
    out = stream_token_table(iter([rb]), *steps, ["doc_id"], max_tokens=200, on_batch=counter)
    try:
        first = next(out).num_rows
        second = next(out).num_rows  # the generator resumed past the first chunk: its count was sent
        _wait_for(lambda: live.totals()[1] >= first, "the first chunk's tokens")
        assert tokens.value == 0 and rows.value == 0  # the accumulators move only when the batch is done
        assert live.totals() == (0, first)  # the document is not done yet: 0 rows, its tokens so far
        total = first + second + sum(b.num_rows for b in out)
        _wait_for(lambda: live.totals()[0] == 1, "the final count")
        assert live.totals() == (1, total) == (rows.value, tokens.value)
    finally:
        live.close()


def test_a_spark_job_reports_each_task_once_its_latest_count(spark, steps):
    texts = [SENTENCE * n for n in (40, 3, 25, 1)]
    df = spark.createDataFrame([(f"d{i}", t) for i, t in enumerate(texts)], "doc_id string, text string").repartition(2)
    schema = spark_schema([df.schema["doc_id"]])
    with JobProgress(spark, len(texts)) as progress:
        callback = progress.callback()
        n = df.mapInArrow(lambda batches: stream_token_table(batches, *steps, ["doc_id"], 150, callback), schema).count()
        _wait_for(lambda: progress.live.totals() == (len(texts), n), "every task's final count")
        assert progress.fields()["tokens"] == n == progress.tokens.value
