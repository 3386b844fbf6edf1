"""Rows that failed inside the workers: what the worker knows of one, and the record the driver gets.

The worker pass (:func:`pipelines.annotate.tables.stream_token_table`) reports a row whose processing raised
as a :class:`RowFailure` and goes on with the next row; :func:`error_record` makes it a small flat
record, which reaches the driver through the job's output (:mod:`pipelines.annotate.worker_reports`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MESSAGE_MAX_CHARS = 500
LIMIT_MESSAGE = "corpus-nlp: too many failed rows"  # what limit_message looks for in a Spark error


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


def describe(record: dict) -> str:
    keep = {k: v for k, v in record.items() if k not in _ERROR_FIELDS}
    return f"{keep} at {record['stage']}: {record['error_class']}: {record['error_message']}"


_ERROR_FIELDS = ("error_class", "error_message", "stage", "partial_tokens", "text_length", "text")


def record_key(record: dict) -> tuple:
    """What identifies a failed row: its ``keep`` values (a task run twice reports it twice)."""
    return tuple((k, v) for k, v in record.items() if k not in _ERROR_FIELDS)


def limit_message(error: BaseException) -> str | None:
    """The worker's 'too many failed rows' line when ``error`` (a Spark job failure) is that, else None."""
    for line in str(error).splitlines():
        if LIMIT_MESSAGE in line:
            return line[line.index(LIMIT_MESSAGE):]
    return None
