"""The library's own errors. Every one says what went wrong and what to do, in one line, so the command
line prints the message and no traceback (``--verbose`` adds it). Leaf module: imports nothing of ours."""

from __future__ import annotations

import re


class CorpusNlpError(RuntimeError):
    """Base of the errors a user can act on; the CLI catches this one type."""


class JobError(CorpusNlpError):
    """A problem with the job's inputs or outputs, phrased with what to do about it."""


class LakeConflict(JobError):
    """Another run wrote (or is writing) the same part of the lake."""


class RunInProgress(LakeConflict):
    """A live run holds the lake's lease."""


# Every file Spark lists under input.path is read as the corpus: a stray file (a CSV, a half-copied part)
# belongs elsewhere, a damaged part needs rewriting from its source.
NOT_PARQUET_ADVICE = ("every file under input.path must be a Parquet file of the corpus: move this one out of the "
                      "input directory, or write it again from its source")


# --- failures the driver saw, explained -----------------------------------------------------------
_KNOWN_PROBLEMS = (
    ("No space left on device", "the disk is full (No space left on device) while Spark wrote {where}: free space, "
     "or point spark.local.dir and output.path at a larger disk"),
    ("is not a Parquet file", "input file {file} is not a Parquet file (or is truncated): " + NOT_PARQUET_ADVICE),
    ("Could not read footer", "input file {file} is not a readable Parquet file (or is truncated): "
     + NOT_PARQUET_ADVICE),
    ("CorruptedParquet", "input file {file} is a corrupt Parquet file: " + NOT_PARQUET_ADVICE),
    ("No module named 'pipelines'", "the executors' Python has no corpus-nlp (No module named 'pipelines'): ship "
     "the packed environment, `corpus-nlp pack-env` then spark-submit --archives dist/corpus-nlp-env.tar.gz#env "
     "--conf spark.pyspark.python=./env/bin/python (docs/platforms.md, \"On a cluster\")"),
    ("Parquet column cannot be converted", "input file {file} stores {column} with another type than the other "
     "files ({detail}): rewrite it with the corpus's schema"),
)


def explain(e: BaseException) -> JobError | None:
    """A failure the driver saw, in one line: the file, column or resource involved and what to do.
    Other failures of Spark, the JVM or the system name their class and first line (the whole trace is
    printed with --verbose); None for anything else (a bug of ours keeps its trace)."""
    text = "\n".join(str(x) for x in _chain(e))
    for needle, message in _KNOWN_PROBLEMS:
        if needle in text:
            file = re.search(r"(file:[^\s,]+|hdfs:[^\s,]+|s3a?:[^\s,]+|/[^\s,]+\.parquet)", text)
            column = re.search(r"Column: \[([^\]]+)\]", text)
            detail = re.search(r"Expected: ([^,]+), Found: ([^\s,]+)", text)
            return JobError(message.format(
                file=file.group(1).rstrip(".:;") if file else "(unknown file)", where="the lake",
                column=f"column {column.group(1)!r}" if column else "a column",
                detail=f"expected {detail.group(1)}, found {detail.group(2).rstrip('.')}" if detail else "type differs"))
    if not _from_spark_or_system(e):
        return None
    first = next((line.strip() for line in str(e).splitlines() if line.strip()), type(e).__name__)
    return JobError(f"the run failed: {type(e).__name__}: {first[:300]} (run with --verbose for the whole trace)")


def _from_spark_or_system(e: BaseException) -> bool:
    return isinstance(e, OSError) or type(e).__module__.split(".")[0] in ("py4j", "pyspark", "delta")


def _chain(e: BaseException):
    seen = set()
    while e is not None and id(e) not in seen:
        seen.add(id(e))
        yield e
        e = e.__cause__ or e.__context__

