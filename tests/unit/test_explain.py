"""errors.explain: a failure the driver saw becomes one line naming the file, column or resource and what to do."""

from pipelines.errors import JobError, explain


class Py4JJavaError(Exception):  # the class name and module Spark's own errors carry; built here, not mocked
    pass


Py4JJavaError.__module__ = "py4j.protocol"


def test_disk_full_names_the_disk_and_what_to_do():
    error = explain(OSError(28, "No space left on device"))
    assert isinstance(error, JobError)
    assert "disk is full" in str(error) and "spark.local.dir" in str(error)


def test_disk_full_deep_in_the_cause_chain_is_found():
    try:
        try:
            raise OSError(28, "No space left on device")
        except OSError as inner:
            raise Py4JJavaError("An error occurred while calling o123.save") from inner
    except Py4JJavaError as outer:
        error = explain(outer)
    assert "disk is full" in str(error)


def test_truncated_parquet_names_the_file():
    e = Py4JJavaError("org.apache.spark.SparkException: ... file:/data/corpus/lang=de/part-0.parquet is not a "
                      "Parquet file. Expected magic number at tail")
    assert str(explain(e)) == ("input file file:/data/corpus/lang=de/part-0.parquet is not a Parquet file "
                               "(or is truncated): every file under input.path must be a Parquet file of the corpus: move "
                               "this one out of the input directory, or write it again from its source")


def test_column_type_mismatch_names_file_column_and_types():
    e = Py4JJavaError("Parquet column cannot be converted in file file:/c/x.parquet. Column: [text], "
                      "Expected: string, Found: INT32")
    message = str(explain(e))
    assert "file:/c/x.parquet" in message and "column 'text'" in message and "expected string, found INT32" in message


def test_other_spark_failure_is_one_line_with_its_class():
    message = str(explain(Py4JJavaError("java.lang.IllegalStateException: boom\n\tat org.apache...\n\tat ...")))
    assert message.startswith("the run failed: Py4JJavaError: java.lang.IllegalStateException: boom")
    assert "\n" not in message and "--verbose" in message


def test_our_own_bug_keeps_its_trace():
    assert explain(KeyError("oops")) is None


def test_executors_without_the_package_are_told_to_ship_the_packed_environment():
    class PythonException(Exception):
        pass

    PythonException.__module__ = "pyspark.errors.exceptions.captured"
    e = PythonException("An exception was thrown from the Python worker. Please see the stack trace below.\n"
                        "Traceback (most recent call last):\n  ...\nModuleNotFoundError: No module named 'pipelines'")
    message = str(explain(e))
    assert "executors' Python has no corpus-nlp" in message and "--archives" in message and "pack-env" in message
