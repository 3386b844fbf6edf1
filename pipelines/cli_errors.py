"""How the command line reports the library's own errors: the message, no traceback, exit code 2."""

from __future__ import annotations

import os
import sys
import traceback
from functools import wraps

import click

from pipelines.errors import CorpusNlpError


def friendly_errors(fn):
    """The library's own errors (:class:`CorpusNlpError`: their messages say what to do) as one line and
    exit code 2; the traceback only with ``--verbose`` (or CORPUS_NLP_VERBOSE=1)."""

    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except CorpusNlpError as e:
            if verbose():
                traceback.print_exception(e)
            from pipelines import log

            if log.as_json():
                log.emit("error", str(e), force=True, message=str(e))
            else:
                click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper


def verbose() -> bool:
    return os.environ.get("CORPUS_NLP_VERBOSE", "") not in ("", "0")
