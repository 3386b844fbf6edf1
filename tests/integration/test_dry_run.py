"""Operators' comforts in real Spark: the dry run tells what a run will do (and writes nothing), an
incremental run with nothing new says so. (JSON logs and the model build's timing: test_installed_package.py, tests/unit/test_operating.py.)"""

import os
import shutil
from pathlib import Path

from click.testing import CliRunner
from lake_helpers import job_config, write_corpus

from pipelines.tools.cli import main
from pipelines.run.dry_run import dry_run
from pipelines.run.job import run_annotate

CORPUS = {
    "de": [("de-1", "Der Hund schläft. Die Katze auch!")],
    "fr": [("fr-1", "Le chat dort.")],
}


def snapshot(root: Path) -> dict:
    """Every file under ``root`` with its size and modification time."""
    return {str(p): (p.stat().st_size, p.stat().st_mtime_ns) for p in root.rglob("*") if p.is_file()}


def test_dry_run_says_what_an_incremental_run_will_do_and_writes_nothing(spark, tmp_path, demo_bundle):
    corpus, lake = write_corpus(tmp_path / "corpus", CORPUS), tmp_path / "lake"
    # a plain Parquet lake: the same incremental state as Delta, in fewer seconds
    config = job_config(lake, corpus, demo_bundle.path, incremental=True, output__format="parquet")

    before = dry_run(config, spark)
    assert [(p, a, r) for p, a, r in before.partitions] == [("lang=de", "annotate", "new"), ("lang=fr", "annotate", "new")]
    assert not lake.exists()  # not even the output folder

    first = run_annotate(config, spark=spark)
    write_corpus(corpus, {"it": [("it-1", "Il gatto dorme.")]})                      # a new partition
    shutil.copy(corpus / "lang=fr" / "part-00000.parquet", corpus / "lang=fr" / "part-00001.parquet")  # changed
    files = snapshot(lake)
    plan = dry_run(config, spark)
    assert snapshot(lake) == files  # no manifest, no lease, no table touched
    assert plan.partitions == [("lang=de", "skip", "done"), ("lang=fr", "annotate", "changed files"),
                               ("lang=it", "annotate", "new")]
    assert (plan.to_do, plan.done, plan.fingerprint) == (2, 1, first.manifest["fingerprint"])
    other = dry_run(config.model_copy(update={"stages": config.stages.model_copy(update={
        "embeddings": config.stages.embeddings.model_copy(update={"pooling": "mean"})})}), spark)
    assert [r for _, _, r in other.partitions] == ["other pipeline", "other pipeline", "new"]

    # the run does what the dry run said, and an incremental run with nothing new says so
    second = run_annotate(config, spark=spark)
    assert [p["values"]["lang"] for p in second.manifest["input"]["annotated_partitions"]] == ["fr", "it"]
    args = ["--input", str(corpus), "--output", str(lake), "--model", str(demo_bundle.path), "--incremental"]
    ini = tmp_path / "parquet-lake.yaml"
    ini.write_text("output:\n  format: parquet\n")
    cli = CliRunner().invoke(main, ["annotate", "--config", str(ini), *args, "--show", "0"])
    assert cli.exit_code == 0, cli.output
    assert "nothing to do: 0 partitions to annotate, 3 already done with this pipeline" in cli.output
    assert "rows: input 0" not in cli.output
    text = CliRunner().invoke(main, ["annotate", "--config", str(ini), *args, "--dry-run"])
    assert "0 partitions to annotate, 3 already done" in text.output and "lang=it" in text.output


def test_dry_run_before_the_demo_model_exists(spark, tmp_path):
    corpus = write_corpus(tmp_path / "corpus", {"de": CORPUS["de"]})
    config = job_config(tmp_path / "lake", corpus, tmp_path / "not-built-yet", incremental=True)
    plan = dry_run(config, spark)
    assert plan.fingerprint is None and "is missing: a run would build it first" in plan.notes[0]
    assert plan.partitions == [("lang=de", "annotate", "new")]
    assert not (tmp_path / "not-built-yet").exists() and not os.path.exists(tmp_path / "lake")
