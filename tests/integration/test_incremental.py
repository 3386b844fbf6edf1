"""Scheduled runs: incremental partitions, idempotence, row policies and clear errors."""

import json
import shutil
import stat
from pathlib import Path

import pytest
from click.testing import CliRunner
from lake_helpers import assert_same_table, commits, job_config, write_corpus, read_table

from pipelines.tools.cli import main
from pipelines.config import ConfigError
from pipelines.run.dry_run import dry_run
from pipelines.run.job import JobError, run_annotate
from pipelines.store.lake import Lake
from pipelines.spark.session import EnvironmentProblem, check_java

DAY1 = {"de": [("de-1", "Der Hund schläft."), ("de-2", "Die Katze auch!")], "fr": [("fr-1", "Bonjour à tous.")]}


def manifest(result):
    return json.loads(Path(result.manifest_path).read_text())


def test_incremental_runs_annotate_only_new_or_changed_partitions(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", DAY1)
    lake = tmp_path / "lake"
    cfg = job_config(lake, corpus, demo_bundle.path, incremental=True)

    first = manifest(run_annotate(cfg, spark=spark))
    assert [p["values"]["lang"] for p in first["input"]["annotated_partitions"]] == ["de", "fr"]

    again = manifest(run_annotate(cfg, spark=spark))
    assert again["input"]["annotated_partitions"] == [] and again["input"]["skipped_as_done"] == 2
    assert again["status"] == "committed" and again["counts"]["input_rows"] == 0

    write_corpus(corpus, {"es": [("es-1", "Hola, mundo.")]})  # a new day's partition
    third = manifest(run_annotate(cfg, spark=spark))
    assert [p["values"]["lang"] for p in third["input"]["annotated_partitions"]] == ["es"]

    write_corpus(corpus, {"fr": [("fr-2", "Une nouvelle ligne.")]}, file_name="part-00001.parquet")  # fr grew
    fourth = manifest(run_annotate(cfg, spark=spark))
    assert [p["values"]["lang"] for p in fourth["input"]["annotated_partitions"]] == ["fr"]
    assert fourth["counts"]["input_rows"] == 2

    tokens = read_table(spark, str(lake / "token_embeddings"))
    assert sorted({r.doc_id for r in tokens.collect()}) == ["de-1", "de-2", "es-1", "fr-1", "fr-2"]

    changed = job_config(lake, corpus, demo_bundle.path, incremental=True, stages__embeddings__pooling="mean")
    assert len(manifest(run_annotate(changed, spark=spark))["input"]["annotated_partitions"]) == 3


def test_partition_filter_and_full_refresh(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", DAY1)
    lake = tmp_path / "lake"
    only_de = manifest(run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True,
                                               partitions=["lang=de"]), spark=spark))
    assert [p["values"] for p in only_de["input"]["annotated_partitions"]] == [{"lang": "de"}]
    refresh = manifest(run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True,
                                               full_refresh=True), spark=spark))
    assert len(refresh["input"]["annotated_partitions"]) == 2
    with pytest.raises(JobError, match=r"does not name the input's partition columns \(lang\)"):
        run_annotate(job_config(lake, corpus, demo_bundle.path, partitions=["year=2024"]), spark=spark)


# --- partitions deleted from the input ----------------------------------------------------------
RETAINED = {**DAY1, "es": [("es-1", "Hola, mundo.")], "xx": [("xx-1", None), ("xx-2", "  ")]}
GONE = "deleted from the input"


def langs(spark, table) -> set[str]:
    return {r.lang for r in read_table(spark, str(table)).select("lang").distinct().collect()}


def assert_lake_is_todays_input(spark, lake: Path, corpus: Path, bundle, tmp_path: Path, **settings):
    """The lake's tables hold what one run over today's input writes to a new lake."""
    fresh = tmp_path / "fresh-lake"
    config = job_config(fresh, corpus, bundle, **settings)
    run_annotate(config, spark=spark)
    assert_same_table(spark, lake / "token_embeddings", fresh / "token_embeddings")
    quarantined = [Lake(spark, str(root), config.output.format).read("quarantine") for root in (lake, fresh)]
    if all(df is None for df in quarantined):  # a parquet lake's quarantine without a row has no file to read
        return
    assert_same_table(spark, lake / "quarantine", fresh / "quarantine", order=("doc_id",))


def test_partitions_deleted_from_the_input_are_named_then_kept_or_removed_in_the_runs_own_commits(
        spark, tmp_path, demo_bundle):
    corpus, lake = write_corpus(tmp_path / "corpus", RETAINED), tmp_path / "lake"
    cfg = job_config(lake, corpus, demo_bundle.path, incremental=True)
    run_annotate(cfg, spark=spark)
    shutil.rmtree(corpus / "lang=fr")  # retention drops whole partitions: one with tokens,
    shutil.rmtree(corpus / "lang=xx")  # and one whose rows all went to quarantine

    # by default they are named, and stay
    assert dry_run(cfg, spark).partitions == [("lang=de", "skip", "done"), ("lang=es", "skip", "done"),
                                              ("lang=fr", "keep", GONE), ("lang=xx", "keep", GONE)]
    args = ["annotate", "--input", str(corpus), "--output", str(lake), "--model", str(demo_bundle.path),
            "--incremental", "--show", "0"]
    kept = CliRunner().invoke(main, args)
    assert kept.exit_code == 0, kept.output
    assert "deleted from the input, still in the lake: lang=fr, lang=xx (--deleted-partitions remove" in kept.output
    assert langs(spark, lake / "token_embeddings") == {"de", "es", "fr"} and langs(spark, lake / "quarantine") == {"xx"}

    # a run limited to other partitions says nothing of the deleted ones, even when told to remove
    only_de = manifest(run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True,
                                               partitions=["lang=de"], deleted_partitions="remove"), spark=spark))
    assert only_de["input"]["deleted_partitions"] == {"removed": [], "kept": []}
    assert langs(spark, lake / "token_embeddings") == {"de", "es", "fr"}

    # removed by the run's own commits (a DELETE per table here, nothing being left to annotate); a run
    # limited to one deleted partition removes that one only
    only_fr = run_annotate(job_config(lake, corpus, demo_bundle.path, incremental=True, partitions=["lang=fr"],
                                      deleted_partitions="remove"), spark=spark)
    assert only_fr.manifest["input"]["deleted_partitions"] == {"removed": [{"lang": "fr"}], "kept": []}
    assert langs(spark, lake / "token_embeddings") == {"de", "es"} and langs(spark, lake / "quarantine") == {"xx"}
    assert commits(spark, lake / "token_embeddings")[-1] == ("DELETE", only_fr.run_id)

    text = CliRunner().invoke(main, [*args, "--deleted-partitions", "remove", "--dry-run"])
    assert "0 partitions to annotate, 2 already done, 1 deleted from the input" in text.output, text.output
    assert [line.split() for line in text.output.splitlines() if line.endswith(f"  {GONE}")] == [
        ["lang=xx", "remove", *GONE.split()]]
    removed = CliRunner().invoke(main, [*args, "--deleted-partitions", "remove"])
    assert removed.exit_code == 0, removed.output
    assert "deleted from the input, removed from the lake: lang=xx" in removed.output
    (run,) = [m for m in map(json.loads, map(Path.read_text, (lake / "_runs").glob("*.json")))
              if m["input"]["deleted_partitions"]["removed"] == [{"lang": "xx"}]]
    assert run["status"] == "committed" and commits(spark, lake / "quarantine")[-1] == ("DELETE", run["run_id"])
    assert langs(spark, lake / "token_embeddings") == {"de", "es"} and langs(spark, lake / "quarantine") == set()
    assert_lake_is_todays_input(spark, lake, corpus, demo_bundle.path, tmp_path)
    assert dry_run(cfg, spark).deleted == []


@pytest.mark.parametrize("lake_format", ["delta", "parquet"])
def test_a_full_refresh_makes_the_lake_the_annotation_of_todays_input(spark, tmp_path, demo_bundle, lake_format):
    corpus, lake = write_corpus(tmp_path / "corpus", RETAINED), tmp_path / "lake"
    run_annotate(job_config(lake, corpus, demo_bundle.path, output__format=lake_format), spark=spark)
    shutil.rmtree(corpus / "lang=fr")
    shutil.rmtree(corpus / "lang=xx")
    refresh = job_config(lake, corpus, demo_bundle.path, incremental=True, full_refresh=True,
                         output__format=lake_format)
    assert dry_run(refresh, spark).deleted == [("lang=fr", "remove"), ("lang=xx", "remove")]
    result = run_annotate(refresh, spark=spark)
    assert result.manifest["input"]["deleted_partitions"] == {"removed": [{"lang": "fr"}, {"lang": "xx"}], "kept": []}
    if lake_format == "delta":  # in the run's one write per table, which also replaced the partitions it annotated
        for table in ("token_embeddings", "quarantine"):
            assert [c for c in commits(spark, lake / table) if c[1] == result.run_id] == [("WRITE", result.run_id)]
    else:
        assert not (lake / "token_embeddings" / "lang=fr").exists() and not (lake / "quarantine" / "lang=xx").exists()
    assert_lake_is_todays_input(spark, lake, corpus, demo_bundle.path, tmp_path, output__format=lake_format)
    with pytest.raises(ConfigError, match="full_refresh .* removes the partitions deleted from the input, but "
                                          "deleted_partitions is keep"):
        job_config(lake, corpus, demo_bundle.path, full_refresh=True, deleted_partitions="keep")


def test_the_same_run_twice_gives_the_same_lake(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {**DAY1, "xx": [("xx-1", None), ("xx-2", "ok")]})
    run_annotate(job_config(tmp_path / "once", corpus, demo_bundle.path), spark=spark)
    run_annotate(job_config(tmp_path / "twice", corpus, demo_bundle.path), spark=spark)
    run_annotate(job_config(tmp_path / "twice", corpus, demo_bundle.path), spark=spark)
    assert_same_table(spark, tmp_path / "once" / "token_embeddings", tmp_path / "twice" / "token_embeddings")
    once = read_table(spark, str(tmp_path / "once" / "quarantine")).drop("run_id")
    twice = read_table(spark, str(tmp_path / "twice" / "quarantine")).drop("run_id")
    assert sorted(map(tuple, once.collect())) == sorted(map(tuple, twice.collect()))


def test_empty_text_can_be_kept_as_an_empty_document(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"xx": [("a", None), ("b", ""), ("c", " \u3000\n"), ("d", "ok")]})
    m = manifest(run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path,
                                         policies__empty_text="keep"), spark=spark))
    assert m["counts"]["kept_empty_rows"] == 3 and m["counts"]["quarantined_rows"] == 0
    assert m["counts"]["annotated_rows"] == 4 == m["counts"]["input_rows"]


def test_duplicate_ids_quarantine_the_later_rows_or_fail(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"de": [("x", "erste Fassung"), ("y", "anders"), ("x", "zweite")]})
    result = run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path), spark=spark)
    q = read_table(spark, result.tables["quarantine"]).collect()
    assert [(r.doc_id, r.reason, r.text) for r in q] == [("x", "duplicate_id", "zweite")]
    tokens = read_table(spark, result.tables["token_embeddings"]).where("doc_id = 'x'").orderBy("token_index")
    assert [r.token for r in tokens.collect()] == ["erste", "Fassung"]
    with pytest.raises(JobError, match=r"duplicate doc_id values in the input \(e\.g\. \['x'\]\)"):
        run_annotate(job_config(tmp_path / "lake2", corpus, demo_bundle.path, policies__duplicate_id="fail"),
                     spark=spark)


def test_too_long_documents_can_be_quarantined_with_their_length(spark, tmp_path, demo_bundle):
    corpus = write_corpus(tmp_path / "corpus", {"en": [("long", "word " * 50), ("short", "fine")]})
    result = run_annotate(job_config(tmp_path / "lake", corpus, demo_bundle.path, policies__max_chars=100,
                                     policies__too_long="quarantine", policies__quarantine_text_max_chars=20),
                          spark=spark)
    q = read_table(spark, result.tables["quarantine"]).collect()
    assert [(r.doc_id, r.reason, r.text_length, r.text) for r in q] == [("long", "too_long", 250, None)]


def test_output_path_that_cannot_be_written(spark, tmp_path, demo_bundle):
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    corpus = write_corpus(tmp_path / "corpus", DAY1)
    with pytest.raises(JobError, match="output path .* is not writable"):
        run_annotate(job_config(blocker / "lake", corpus, demo_bundle.path), spark=spark)


def test_empty_input_directory(spark, tmp_path, demo_bundle):
    (tmp_path / "empty").mkdir()
    with pytest.raises(JobError, match="holds no Parquet files"):
        run_annotate(job_config(tmp_path / "lake", tmp_path / "empty", demo_bundle.path), spark=spark)


def _fake_java(tmp_path, version_line):
    home = tmp_path / "jdk"
    (home / "bin").mkdir(parents=True)
    java = home / "bin" / "java"
    java.write_text(f"#!/bin/sh\necho '{version_line}' >&2\n")
    java.chmod(java.stat().st_mode | stat.S_IEXEC)
    return home


def test_java_missing_or_too_old_is_explained(tmp_path, monkeypatch):
    monkeypatch.setenv("JAVA_HOME", str(_fake_java(tmp_path, 'openjdk version "11.0.22" 2024-01-16')))
    with pytest.raises(EnvironmentProblem, match="Java 11.0.22 found .* needs Java 17 or newer"):
        check_java()
    monkeypatch.setenv("JAVA_HOME", str(tmp_path / "no-jdk"))
    with pytest.raises(EnvironmentProblem, match="Java was not found: install Java 17"):
        check_java()
    monkeypatch.delenv("JAVA_HOME")
    check_java()  # the machine's real Java 17
