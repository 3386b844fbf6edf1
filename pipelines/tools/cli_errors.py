"""How the command line reports the library's own errors: the message, no traceback, exit code 2."""

from __future__ import annotations

import os
import sys
import traceback
from functools import wraps

import click

from pipelines.errors import CorpusNlpError

# Spark is an extra (``corpus-nlp[local]``): a Spark runtime brings its own PySpark, and pip must not replace
# it. Without it, the command says what to install in one line. (Delta needs no Python package: its jars.)
MISSING_SPARK = {
    "pyspark": "PySpark is not installed: pip install 'corpus-nlp[local]', or run on a Spark runtime",
    "py4j": "PySpark is not installed: pip install 'corpus-nlp[local]', or run on a Spark runtime",
}


def missing_spark(e: ModuleNotFoundError) -> CorpusNlpError | None:
    """The one-line error for a missing Spark package, or None when another module is missing."""
    message = MISSING_SPARK.get((e.name or "").split(".")[0])
    return CorpusNlpError(message) if message else None


def require_spark() -> None:
    """Before a command that runs Spark does anything (writes the output folder, builds a model)."""
    import importlib.util

    if importlib.util.find_spec("pyspark") is None:
        raise CorpusNlpError(MISSING_SPARK["pyspark"])


def friendly_errors(fn):
    """The library's own errors (:class:`CorpusNlpError`: their messages say what to do) as one line and
    exit code 2; the traceback only with ``--verbose`` (or CORPUS_NLP_VERBOSE=1)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            try:
                return fn(*args, **kwargs)
            except ModuleNotFoundError as e:
                problem = missing_spark(e)
                if problem is None:
                    raise
                raise problem from e
        except CorpusNlpError as e:
            if verbose():
                traceback.print_exception(e)
            from pipelines import log

            if log.as_json():
                log.emit("error", str(e), force=True, message=str(e))
            else:
                click.echo(f"Error: {e}", err=True)  # as click writes its own usage errors
            sys.exit(2)

    return wrapper


def verbose() -> bool:
    return os.environ.get("CORPUS_NLP_VERBOSE", "") not in ("", "0")
