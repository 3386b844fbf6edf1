"""The library's own errors. Every one says what went wrong and what to do, in one line, so the command
line prints the message and no traceback (``--verbose`` adds it). Leaf module: imports nothing of ours."""

from __future__ import annotations


class CorpusNlpError(RuntimeError):
    """Base of the errors a user can act on; the CLI catches this one type."""


class JobError(CorpusNlpError):
    """A problem with the job's inputs or outputs, phrased with what to do about it."""


class LakeConflict(JobError):
    """Another run wrote (or is writing) the same part of the lake."""


class RunInProgress(LakeConflict):
    """A live run holds the lake's lease."""
