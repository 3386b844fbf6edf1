"""Two writers of one Delta table at once (the lease bypassed, as two clusters sharing a lake without it
would): Delta's conflict detection stops the later commit, and the lake says so in one line."""

import threading
import time

from pipelines.errors import LakeConflict
from pipelines.lake import Lake
from pipelines.state import Partition

GERMAN = Partition(values=(("lang", "de"),), signature="")


def _rows(spark, run_id: str, n: int, wait_for=None):
    """``n`` rows of partition lang=de; with ``wait_for`` (a file), the task holds until it exists, so the
    transaction that writes them stays open while another one commits."""
    df = spark.range(n).selectExpr("cast(id as string) as doc_id", f"'{run_id}' as run_id", "'de' as lang")
    if wait_for is None:
        return df

    def hold(batches):
        for _ in range(12000):  # the other writer commits within seconds; the bound only avoids a hang
            if wait_for.exists():
                break
            time.sleep(0.01)
        yield from batches

    return df.coalesce(1).mapInPandas(hold, df.schema)


def test_the_later_of_two_overlapping_writes_is_a_lake_conflict_and_the_earlier_stays_whole(spark, tmp_path):
    lake = Lake(spark, str(tmp_path / "lake"), "delta")
    lake.replace("t", _rows(spark, "first", 3), ["lang"], [GERMAN], "first")
    committed = tmp_path / "other-writer-committed"
    outcome = {}

    def slow_writer():  # reads the table's snapshot, then waits inside its Spark job
        try:
            lake.replace("t", _rows(spark, "slow", 5, wait_for=committed), ["lang"], [GERMAN], "slow")
            outcome["slow"] = "committed"
        except Exception as e:
            outcome["slow"] = e

    thread = threading.Thread(target=slow_writer)
    thread.start()
    while not spark.sparkContext.statusTracker().getActiveJobsIds():  # the slow job holds its snapshot
        time.sleep(0.05)
    lake.replace("t", _rows(spark, "fast", 7), ["lang"], [GERMAN], "fast")
    committed.touch()
    thread.join()

    error = outcome["slow"]
    assert isinstance(error, LakeConflict), error
    message = str(error)
    assert "\n" not in message and "another run wrote" in message and "run slow" in message
    assert "nothing of this run was committed there" in message
    runs = {r.run_id: r["count"] for r in lake.read("t").groupBy("run_id").count().collect()}
    assert runs == {"fast": 7}


def test_a_write_that_does_not_overlap_another_commits(spark, tmp_path):
    """The conflict above comes from the overlap: the same two writes one after the other both commit."""
    lake = Lake(spark, str(tmp_path / "lake"), "delta")
    lake.replace("t", _rows(spark, "fast", 7), ["lang"], [GERMAN], "fast")
    lake.replace("t", _rows(spark, "slow", 5), ["lang"], [GERMAN], "slow")
    assert {r.run_id: r["count"] for r in lake.read("t").groupBy("run_id").count().collect()} == {"slow": 5}
