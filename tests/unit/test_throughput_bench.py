"""benchmarks.throughput's accounting of a pipeline phase's core-seconds (why a model share falls short)."""

from benchmarks.throughput import where_the_cores_went


def test_the_core_seconds_split_into_model_other_work_jvm_and_idle():
    phase = {"seconds": 50.0, "model_seconds": 60.0,
             "monitor": {"cpu_s_by_process": {"driver": 1.0, "java": 20.0, "daemon": 0.5, "worker": 65.0}}}
    split = where_the_cores_went(phase, cores=2)
    assert split == {"core_seconds": 100.0, "model": 60.0, "workers_besides_the_model": 5.0, "jvm": 20.0,
                     "driver_and_daemon": 1.5, "idle": 13.5}
    assert sum(v for k, v in split.items() if k != "core_seconds") == split["core_seconds"]


def test_a_phase_without_model_seconds_or_process_cpu_has_no_split():
    assert where_the_cores_went({"seconds": 5.0, "model_seconds": None, "monitor": {}}, cores=2) is None
    assert where_the_cores_went({"seconds": 5.0, "model_seconds": 3.0}, cores=2) is None
