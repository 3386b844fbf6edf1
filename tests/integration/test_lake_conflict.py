"""Two writers of one lake at once. Of one Delta table, the lease bypassed (as two clusters sharing a lake
without it would): Delta's conflict detection stops the later commit of the same partitions, and the lake
says so in one line, while writes of disjoint partitions commit side by side. Two real runs in two
processes: on disjoint partitions they run together, on overlapping ones the later refuses."""

import threading
import time
from pathlib import Path

import pytest
from lake_helpers import assert_same_table, commits, job_config, manifests, start_cli_run, write_corpus

from pipelines.errors import LakeConflict, RunInProgress
from pipelines.run.faults import HOLD_TASKS_UNTIL
from pipelines.run.job import run_annotate
from pipelines.store.lake import Lake
from pipelines.store.state import Partition

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


def _slow_german_write(spark, lake: Lake, committed: Path):
    """A thread replacing lang=de as run "slow": it reads the table's snapshot, then waits inside its Spark
    job until ``committed`` exists; returned once its job runs, with the dict its outcome lands in."""
    outcome = {}

    def slow_writer():
        try:
            lake.replace("t", _rows(spark, "slow", 5, wait_for=committed), ["lang"], [GERMAN], "slow")
            outcome["slow"] = "committed"
        except Exception as e:
            outcome["slow"] = e

    thread = threading.Thread(target=slow_writer)
    thread.start()
    while not spark.sparkContext.statusTracker().getActiveJobsIds():  # the slow job holds its snapshot
        time.sleep(0.05)
    return thread, outcome


def test_the_later_of_two_overlapping_writes_is_a_lake_conflict_and_the_earlier_stays_whole(spark, tmp_path):
    lake = Lake(spark, str(tmp_path / "lake"), "delta")
    lake.replace("t", _rows(spark, "first", 3), ["lang"], [GERMAN], "first")
    committed = tmp_path / "other-writer-committed"
    thread, outcome = _slow_german_write(spark, lake, committed)
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


FRENCH, SPANISH = Partition(values=(("lang", "fr"),), signature=""), Partition(values=(("lang", "es"),), signature="")


def _rows_of(spark, run_id: str, lang: str, n: int):
    return spark.range(n).selectExpr("cast(id as string) as doc_id", f"'{run_id}' as run_id", f"'{lang}' as lang")


def test_writes_and_removals_of_disjoint_partitions_commit_side_by_side(spark, tmp_path):
    """What partition-scoped leases rely on: while one transaction replaces lang=de, others replace lang=fr
    and remove lang=es (a partition deleted from the input); Delta commits all three, no conflict."""
    lake = Lake(spark, str(tmp_path / "lake"), "delta")
    lake.replace("t", _rows_of(spark, "first", "de", 2).unionByName(_rows_of(spark, "first", "fr", 2))
                 .unionByName(_rows_of(spark, "first", "es", 2)), ["lang"], [GERMAN, FRENCH, SPANISH], "first")
    committed = tmp_path / "others-committed"
    thread, outcome = _slow_german_write(spark, lake, committed)
    lake.replace("t", _rows_of(spark, "fast", "fr", 7), ["lang"], [FRENCH], "fast")
    lake.remove("t", ["lang"], [SPANISH], "remover")
    committed.touch()
    thread.join()

    assert outcome["slow"] == "committed", outcome["slow"]
    held = {(r.lang, r.run_id): r["count"] for r in lake.read("t").groupBy("lang", "run_id").count().collect()}
    assert held == {("de", "slow"): 5, ("fr", "fast"): 7}
    history = spark.sql(f"DESCRIBE HISTORY delta.`{tmp_path / 'lake' / 't'}`").orderBy("version").collect()
    assert [(h.operation, h.userMetadata) for h in history[1:]] == [
        ("WRITE", '{"corpus_nlp_run_id": "fast"}'), ("DELETE", '{"corpus_nlp_run_id": "remover"}'),
        ("WRITE", '{"corpus_nlp_run_id": "slow"}')]


# --- two runs, two processes ---------------------------------------------------------------------
TWO_LANGUAGES = {
    "de": [(f"de-{i}", f"Satz {i}. Noch einer über München!") for i in range(30)],
    "fr": [(f"fr-{i}", f"Phrase {i}. Encore une à Paris!") for i in range(30)],
    "xx": [("xx-1", None), ("xx-2", "  "), ("xx-3", "ok")],
}


def test_runs_on_disjoint_partitions_run_together_and_an_overlapping_one_refuses(spark, tmp_path, demo_bundle):
    corpus, lake = write_corpus(tmp_path / "corpus", TWO_LANGUAGES), tmp_path / "lake"
    # the tables exist first: a run that would create one holds the whole lake
    run_annotate(job_config(lake, corpus, demo_bundle.path, partitions=["lang=xx"]), spark=spark)
    release = tmp_path / "release-german"
    german = start_cli_run(tmp_path / "german.yaml", job_config(
        lake, corpus, demo_bundle.path, partitions=["lang=de"], spark__master="local[1]",
        spark__conf={HOLD_TASKS_UNTIL: str(release)}))
    try:
        # its token pass waits, inside the token table's Delta transaction, lease held
        while not (tmp_path / "release-german.held").exists() and german.poll() is None:
            time.sleep(0.2)
        assert german.poll() is None, german.communicate()[1][-3000:]
        (holder,) = [m for m in manifests(lake) if m["status"] == "running"]
        assert holder["lease"] == {"state": "held", "partitions": [{"lang": "de"}]}

        with pytest.raises(RunInProgress) as refused:  # incremental: would annotate lang=de and lang=fr
            run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True), spark=spark)
        message = str(refused.value)
        assert "\n" not in message and f"run {holder['run_id']} " in message
        assert "(partitions lang=de, which this run writes too)" in message and "lang=fr" not in message

        french = run_annotate(job_config(lake, corpus, demo_bundle.path, partitions=["lang=fr"]), spark=spark)
        assert french.manifest["status"] == "committed"
        assert next(m for m in manifests(lake) if m["run_id"] == holder["run_id"])["status"] == "running"
    finally:
        release.touch()
        _, err = german.communicate()
    assert german.returncode == 0, err[-3000:]

    statuses = {m["run_id"]: m["status"] for m in manifests(lake)}
    assert sorted(statuses.values()) == ["committed", "committed", "committed", "failed"]
    # the German transaction, open all along, committed after the French one: Delta took both
    tokens = [run for _, run in commits(spark, lake / "token_embeddings")]
    assert tokens.index(french.run_id) < tokens.index(holder["run_id"])
    # and every table is what one run over the whole corpus gives
    run_annotate(job_config(tmp_path / "clean", corpus, demo_bundle.path), spark=spark)
    assert_same_table(spark, lake / "token_embeddings", tmp_path / "clean" / "token_embeddings")
    assert_same_table(spark, lake / "quarantine", tmp_path / "clean" / "quarantine", order=("doc_id",))
