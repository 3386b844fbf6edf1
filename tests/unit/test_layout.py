"""How the rows to annotate are cut into model-pass tasks (pipelines.run.layout): the pure arithmetic."""

import pytest

from pipelines.annotate.tables import embedding_array, vector_bytes
from pipelines.run.layout import (
    TOKEN_ROW_BYTES, TOKENS_PER_TEXT_BYTE, bucket_counts, output_bytes_per_text_byte, spark_int_hash, task_bases,
    task_keys)

MIB = 1024 * 1024


def test_a_big_corpus_gets_a_bucket_per_target_file():
    # 1,000 MiB and 300 MiB of output at 128 MiB a file: 8 and 3 files, none above the target
    assert bucket_counts([1000 * MIB, 300 * MIB], 128 * MIB, busy_tasks=8) == [8, 3]


def test_a_small_corpus_is_cut_finer_so_that_every_core_has_work():
    # 8 MiB in all, 8 tasks wanted: buckets of 1 MiB, far below the 128 MiB target
    assert bucket_counts([4 * MIB, 3 * MIB, 1 * MIB], 128 * MIB, busy_tasks=8) == [4, 3, 1]
    assert bucket_counts([0.5 * MIB, 7.5 * MIB], 128 * MIB, busy_tasks=8) == [1, 8]  # a small partition: one


def test_a_partition_with_nothing_to_annotate_gets_no_bucket():
    assert bucket_counts([0, 2 * MIB], 128 * MIB, busy_tasks=2) == [0, 2]
    assert bucket_counts([0, 0], 128 * MIB, busy_tasks=8) == [0, 0]
    assert bucket_counts([], 128 * MIB, busy_tasks=8) == []


def test_exact_multiples_are_not_rounded_up_by_float_error():
    assert bucket_counts([3 * 0.1 * MIB], 0.1 * MIB, busy_tasks=1) == [3]


@pytest.mark.parametrize("dtype", ["float32", "float16", "int8"])
def test_vector_bytes_are_the_stored_widths(dtype):
    import numpy as np

    vectors = [np.ones(768, np.float32), np.zeros(768, np.float32)]
    column = embedding_array(vectors, dtype)
    stored = len(column[0].as_py()) * 4 if dtype == "float32" else len(column[0].as_py())
    assert vector_bytes(768, dtype) == stored


def test_output_per_text_byte_is_tokens_per_byte_times_a_token_row():
    assert output_bytes_per_text_byte(768, "float32") == pytest.approx(TOKENS_PER_TEXT_BYTE * (TOKEN_ROW_BYTES + 3072))
    assert output_bytes_per_text_byte(768, "int8") == pytest.approx(TOKENS_PER_TEXT_BYTE * (TOKEN_ROW_BYTES + 772))
    assert output_bytes_per_text_byte(0, "float32") == pytest.approx(TOKENS_PER_TEXT_BYTE * TOKEN_ROW_BYTES)


def test_the_partitions_with_the_largest_buckets_take_the_first_tasks():
    # buckets of 20, 40 and 5 bytes: b's one task first, then a's five, then c's two
    assert task_bases([20.0, 40.0, 5.0], [5, 1, 2]) == [1, 0, 6]
    assert task_bases([10.0, 10.0], [2, 3]) == [0, 2]  # ties keep their order
    assert task_bases([], []) == []


@pytest.mark.parametrize("tasks", [1, 2, 7, 200, 3001])
def test_each_task_key_hashes_to_its_own_task_and_is_the_smallest_that_does(tasks):
    import numpy as np

    keys = task_keys(tasks)
    assert (np.mod(spark_int_hash(np.array(keys)), tasks) == np.arange(tasks)).all()
    for task, key in enumerate(keys[:50]):  # brute force: no smaller int lands on that task
        assert all(np.mod(spark_int_hash(np.arange(key)), tasks) != task)
