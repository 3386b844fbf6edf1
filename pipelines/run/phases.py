"""Where a run's minutes go: its phases timed apart, each said as it starts.

A run's seconds after Spark has started split into: the model build and NER training (the demo's, on
first use: :func:`pipelines.run.assemble.prepare_models`), ``plan_s`` (reading the input's listing and the
lake's state), ``annotate_s`` (the model pass, up to the last annotated batch), ``write_s`` (the rest of
the tables' writes and commits), ``check_s`` (reading the counts back) and ``other_s`` (the lease, the
manifest and the catalog). They add up to the manifest's ``duration_s``; tokens/s is over ``annotate_s``.

The model pass runs inside the first table's write (Spark is lazy; the rows stream from the model into
the files), so the split between annotating and writing comes from the workers: each reports when it
finished its last batch (:meth:`pipelines.annotate.worker_reports.RunReport.annotated_at`).

With a :class:`pipelines.spark.shuffle.ShuffleMeter` the clock also counts the bytes each phase's shuffles
wrote (the manifest's ``shuffle``): the model pass (with its table writes) apart, since the vectors should
cross the disk once, into their files, and not through a shuffle.
"""

from __future__ import annotations

import time
from contextlib import contextmanager

from pipelines import log
from pipelines.spark.shuffle import ShuffleMeter

PHASES = ("plan_s", "reuse_s", "annotate_s", "write_s", "check_s")


class RunClock:
    def __init__(self, shuffle: ShuffleMeter | None = None) -> None:
        self.seconds = dict.fromkeys(PHASES, 0.0)
        self.shuffle = shuffle
        self.shuffle_bytes: dict[str, int | None] = {}  # phase ("model_pass" for the model's) -> bytes
        self._first_stage = shuffle.mark() if shuffle else None

    @contextmanager
    def phase(self, name: str, doing: str | None = None):
        """Time the block as ``name``; ``doing``: the note a person reading the log sees first."""
        if doing:
            log.note(doing)
        started = time.time()
        with self._shuffled(name.removesuffix("_s")):
            try:
                yield
            finally:
                self.seconds[name] += time.time() - started

    @contextmanager
    def model_pass(self, doing: str):
        """A write that runs the model: ``annotate_s`` up to ``span["annotated_at"]`` (set it inside the
        block, from the workers' reports), ``write_s`` after; all of it annotate time when nobody said."""
        log.note(doing)
        span: dict = {}
        started = time.time()
        try:
            with self._shuffled("model_pass"):
                yield span
        finally:
            ended = time.time()
            at = span.get("annotated_at")
            # executors' clocks may run a little apart from the driver's: the split stays inside the span
            annotate = ended - started if at is None else min(max(at - started, 0.0), ended - started)
            self.seconds["annotate_s"] += annotate
            self.seconds["write_s"] += ended - started - annotate

    @contextmanager
    def _shuffled(self, phase: str):
        """Add the bytes the block's shuffles wrote to ``phase``."""
        mark = self.shuffle.mark() if self.shuffle else None
        try:
            yield
        finally:
            if self.shuffle:
                written = self.shuffle.since(mark)  # None, where the meter cannot measure
                self.shuffle_bytes[phase] = None if written is None else self.shuffle_bytes.get(phase, 0) + written

    def shuffle_summary(self) -> dict | None:
        """The manifest's ``shuffle``: bytes written by shuffles per phase and in all since the clock started
        (the run's own jobs, after Spark started); None without a meter."""
        if self.shuffle is None:
            return None
        total = self.shuffle.since(self._first_stage)
        phases = {f"{phase}_bytes": written for phase, written in self.shuffle_bytes.items()}
        if total is None:
            return {**dict.fromkeys(phases), "total_bytes": None, "note": self.shuffle.note}
        return {**phases, "total_bytes": total}

    def timings(self, before: dict, elapsed_s: float) -> dict:
        """``before`` (the start-up timings) with the phases and ``other_s``, the rest of ``elapsed_s``."""
        named = sum(self.seconds.values()) + before.get("model_build_s", 0.0) + before.get("ner_training_s", 0.0)
        return {**before, **{k: round(v, 3) for k, v in self.seconds.items()},
                "other_s": round(max(elapsed_s - named, 0.0), 3)}
