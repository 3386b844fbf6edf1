"""Fixtures of the job tests: one small corpus, and one job run over it that several modules read."""

from __future__ import annotations

import pytest
from lake_helpers import JOB_CORPUS, job_config, write_corpus


@pytest.fixture(scope="session")
def corpus_dir(tmp_path_factory):
    return write_corpus(tmp_path_factory.mktemp("corpus"), JOB_CORPUS)


@pytest.fixture(scope="session")
def first_run(spark, tmp_path_factory, corpus_dir, demo_bundle):
    """The default job on ``JOB_CORPUS`` (read only: tests that write run their own job)."""
    from pipelines.run.job import run_annotate

    return run_annotate(job_config(tmp_path_factory.mktemp("run") / "lake", corpus_dir, demo_bundle.path), spark=spark)
