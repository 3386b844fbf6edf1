"""The models a Python worker holds: each loaded once per worker and shared by every task and step that
asks for the same one (the embedder, the NER tagger, the classifiers). Loading an ONNX session costs
seconds; a Spark Python worker lives on across tasks.

A model is keyed by its kind and everything its loading depends on (path, threads, runtime, ...), so two
steps that differ in any of those get two models, and two that agree share one.
"""

from __future__ import annotations

import os
import threading
from typing import Any, Callable, TypeVar

T = TypeVar("T")

_MODELS: dict[tuple, Any] = {}
_LOCK = threading.Lock()  # one load at a time: two tasks of one worker never build the same model twice


def worker_model(key: tuple, load: Callable[[], T]) -> T:
    """The model under ``key``, built by ``load()`` the first time this worker asks for it."""
    with _LOCK:
        if key not in _MODELS:
            _MODELS[key] = load()
        return _MODELS[key]


def loaded(key: tuple) -> Any | None:
    """The model under ``key`` if this worker has loaded it (its counters, before or without a load)."""
    return _MODELS.get(key)


def intra_op_threads(requested: int) -> int:
    """Model threads per task: explicit, else the task's CPUs (``spark.task.cpus``).

    Spark runs cores / task.cpus tasks per executor at once, each in its own Python worker, so giving
    each session ``task.cpus`` threads keeps threads x concurrent tasks <= cores.
    """
    if requested and requested > 0:
        return requested
    try:
        from pyspark import TaskContext

        ctx = TaskContext.get()
        if ctx is not None:
            return max(1, int(ctx.cpus()))
    except Exception:  # not inside a Spark task (tests, direct use): use the machine
        pass
    return max(1, os.cpu_count() or 1)
