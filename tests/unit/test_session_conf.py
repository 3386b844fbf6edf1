"""What a session we start gets for its master: Delta's state rebuilt in as many tasks as a local master has
cores (not Delta's 50, which cost ~1 s per table's first read on 2 cores: docs/performance.md)."""

import os

import pytest

from pipelines.spark.session import DELTA_CONF, delta_conf, is_local_master, local_cores

SNAPSHOT = "spark.databricks.delta.snapshotPartitions"


@pytest.mark.parametrize("master, cores", [("local", 1), ("local[3]", 3), ("local[2,4]", 2),
                                           ("local[*]", os.cpu_count()), ("local[*,4]", os.cpu_count())])
def test_local_cores(master, cores):
    assert local_cores(master) == cores


def test_delta_state_in_one_task_per_local_core_only_on_a_local_master():
    assert delta_conf("local[3]") == {**DELTA_CONF, SNAPSHOT: "3"}
    for master in ("yarn", "spark://host:7077", "local-cluster[2,1,1024]", ""):
        assert delta_conf(master) == DELTA_CONF


@pytest.mark.parametrize("master, local", [("local", True), ("local[2]", True), ("local[*,4]", True),
                                           ("local-cluster[2,1,2048]", False), ("yarn", False), ("", False)])
def test_what_runs_in_one_executor(master, local):
    """reuse auto picks worker on one executor only: local-cluster's executors are processes of their own."""
    assert is_local_master(master) is local
