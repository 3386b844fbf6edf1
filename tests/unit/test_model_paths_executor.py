"""model_paths on an executor: a shipped model is checked once per executor, by one Python worker at a time.

The Python workers are real processes; SparkFiles' root is set as pyspark's worker.py sets it on an executor.
"""

from __future__ import annotations

import multiprocessing
import time
from pathlib import Path

import pytest

from pipelines.store.model_paths import SHIPPED, is_uri, load_on_executor


def _recording_load(log: Path):
    def load(directory, verify):
        if verify:
            time.sleep(0.3)  # a real check reads every file: the other worker arrives meanwhile
            if (Path(directory) / "tampered").exists():
                raise ValueError("sha256 mismatch")
        with log.open("a") as f:
            f.write(f"{Path(directory).name} verify={verify}\n")
        return directory

    return load


def _worker(root: str, path: str, log: str, results) -> None:
    from pyspark import SparkFiles

    SparkFiles._root_directory, SparkFiles._is_running_on_worker = root, True
    try:
        results.put(load_on_executor(path, _recording_load(Path(log))))
    except ValueError as e:
        results.put(f"error: {e}")


def _run_workers(tmp_path: Path, n: int) -> list[str]:
    ctx = multiprocessing.get_context("fork")
    results = ctx.Queue()
    procs = [ctx.Process(target=_worker, args=(str(tmp_path), SHIPPED + "abc.tar", str(tmp_path / "log"), results))
             for _ in range(n)]
    for p in procs:
        p.start()
    for p in procs:
        p.join()
    return sorted(results.get() for _ in procs)


def test_two_workers_of_one_executor_check_a_shipped_model_once(tmp_path):
    (tmp_path / "abc.tar").mkdir()  # where Spark unpacked the shipped archive
    results = _run_workers(tmp_path, 2)
    assert results == [str(tmp_path / "abc.tar")] * 2
    assert sorted((tmp_path / "log").read_text().splitlines()) == ["abc.tar verify=False", "abc.tar verify=True"]
    assert (tmp_path / ".abc.tar.verified").exists()
    # a later worker of the same executor trusts the check
    assert _run_workers(tmp_path, 1) == [str(tmp_path / "abc.tar")]
    assert (tmp_path / "log").read_text().count("verify=True") == 1


def test_a_shipped_model_that_fails_its_check_is_never_marked_checked(tmp_path):
    (tmp_path / "abc.tar").mkdir()
    (tmp_path / "abc.tar" / "tampered").write_text("x")
    assert _run_workers(tmp_path, 2) == ["error: sha256 mismatch"] * 2  # each worker checks, and refuses
    assert not (tmp_path / ".abc.tar.verified").exists()


def test_a_model_read_in_place_was_checked_by_the_driver(tmp_path):
    seen = []
    assert load_on_executor(str(tmp_path), lambda d, verify: seen.append(verify) or d) == str(tmp_path)
    assert seen == [False]


@pytest.mark.parametrize("path, uri", [("hdfs://nn:8020/models/x", True), ("s3a://b/m", True), ("dbfs:/m", True),
                                       ("file:/m", True), ("/Volumes/cat/sch/vol/m", False), ("models/x", False),
                                       ("C:/models/x", False)])
def test_which_model_paths_are_read_through_hadoop(path, uri):
    assert is_uri(path) is uri
