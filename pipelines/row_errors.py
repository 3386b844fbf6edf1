"""Rows that failed inside the workers, collected on the driver through a Spark accumulator.

The worker pass (:func:`pipelines.tables.stream_token_table`) reports a row whose processing raised
as a :class:`RowFailure` and goes on with the next row. :class:`RowErrors` turns failures into small
records and ships them to the driver. Errors are expected to be few: a task that sees more than
``max_rows`` of them stops the task (the run would fail anyway, and a systematic failure, say a model
that cannot load, would otherwise cost a whole pass over the corpus before anyone hears of it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pyspark.accumulators import AccumulatorParam

MESSAGE_MAX_CHARS = 500
LIMIT_MESSAGE = "corpus-nlp: too many failed rows"  # what RowErrors.limit_message looks for in a Spark error


@dataclass
class RowFailure:
    """What the worker knows about a failed row.

    ``stage``: "read" (the row's values could not be read, e.g. invalid UTF-8), "text" (document,
    sentences, tokens), "model" (embeddings, NER) or "pipeline" (the annotations pass, which runs
    text and model stages in one call). ``partial_tokens``: token rows of this row that
    had already left the worker when a later part of it failed (only possible for a document spread
    over several model chunks); the caller must drop them (they are ``token_index`` 0 to
    ``partial_tokens - 1`` of the row).
    """

    keep: dict[str, Any]
    error: BaseException
    text: str | None
    stage: str
    partial_tokens: int = 0


class RowErrorLimitExceeded(RuntimeError):
    """Raised inside a task that saw more failed rows than the run may have in all."""


def error_record(failure: RowFailure, text_max_chars: int) -> dict:
    """One flat record: the row's ``keep`` values, then what went wrong, and the text capped."""
    message = str(failure.error).strip().splitlines()
    text = failure.text
    return {
        **failure.keep,
        "error_class": type(failure.error).__name__,
        "error_message": (message[0] if message else "")[:MESSAGE_MAX_CHARS],
        "stage": failure.stage,
        "partial_tokens": failure.partial_tokens,
        "text_length": len(text) if text is not None else 0,
        "text": text[:text_max_chars] if text is not None else None,
    }


class _ListParam(AccumulatorParam):
    def zero(self, value):
        return []

    def addInPlace(self, value1, value2):
        value1.extend(value2)
        return value1


class _SendRowError:
    """The worker-side callback: picklable, one fresh copy (and count) per task."""

    def __init__(self, accumulator, max_rows: int, text_max_chars: int):
        self.accumulator = accumulator
        self.max_rows = max_rows
        self.text_max_chars = text_max_chars
        self.sent = 0

    def __call__(self, failure: RowFailure) -> None:
        self.sent += 1
        record = error_record(failure, self.text_max_chars)
        self.accumulator.add([record])
        if self.sent > self.max_rows:
            raise RowErrorLimitExceeded(
                f"{LIMIT_MESSAGE}: more than {self.max_rows} rows failed in one task (policies.max_error_rows); "
                f"the last one: {_describe(record)}")


def _describe(record: dict) -> str:
    keep = {k: v for k, v in record.items() if k not in _ERROR_FIELDS}
    return f"{keep} at {record['stage']}: {record['error_class']}: {record['error_message']}"


_ERROR_FIELDS = ("error_class", "error_message", "stage", "partial_tokens", "text_length", "text")


class RowErrors:
    """Failed rows of one Spark job, gathered on the driver.

    ``errors = RowErrors(spark, max_rows=10, text_max_chars=1000)``; give ``errors.callback()`` to
    :func:`pipelines.tables.stream_token_table` as ``on_row_error``; after the action,
    ``errors.records()``. Accumulator updates from a task count once it succeeds, and a task that is
    run again (a lost executor, a recomputed stage) adds its records again, hence the deduplication.
    """

    def __init__(self, spark, max_rows: int, text_max_chars: int = 1000):
        self.max_rows = max_rows
        self.text_max_chars = text_max_chars
        self._accumulator = spark.sparkContext.accumulator([], _ListParam())

    def callback(self) -> _SendRowError:
        return _SendRowError(self._accumulator, self.max_rows, self.text_max_chars)

    def records(self) -> list[dict]:
        """Each failed row once (by its ``keep`` values), in the order they arrived."""
        seen: dict[tuple, dict] = {}
        for record in self._accumulator.value:
            key = tuple((k, v) for k, v in record.items() if k not in _ERROR_FIELDS)
            seen.setdefault(key, record)
        return list(seen.values())

    @staticmethod
    def limit_message(error: BaseException) -> str | None:
        """The worker's 'too many failed rows' line when ``error`` (a Spark job failure) is that, else None."""
        for line in str(error).splitlines():
            if LIMIT_MESSAGE in line:
                return line[line.index(LIMIT_MESSAGE):]
        return None
