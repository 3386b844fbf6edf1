"""How the command line reports the library's own errors: the message, no traceback, exit code 2."""

from __future__ import annotations

import sys
from functools import wraps

import click


def _expected_errors():
    """The library's own error types: their messages say what to do, so no traceback is shown."""
    from pipelines.config import ConfigError
    from pipelines.job import JobError
    from pipelines.model.bundle import BundleError
    from pipelines.ner.conll import ConllError
    from pipelines.ner.model import NerModelError
    from pipelines.session import EnvironmentProblem

    return ConfigError, JobError, BundleError, EnvironmentProblem, NerModelError, ConllError


def friendly_errors(fn):
    @wraps(fn)
    def wrapper(*args, **kwargs):
        try:
            return fn(*args, **kwargs)
        except _expected_errors() as e:
            click.echo(f"error: {e}", err=True)
            sys.exit(2)

    return wrapper
