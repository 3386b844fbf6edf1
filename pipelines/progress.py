"""Progress a person can follow on a long run: tasks done, rows and tokens done, tokens/s.

Rows and tokens come from accumulators the workers add to after each Arrow batch (Spark applies them
when a task finishes, so they move task by task); tasks come from the status tracker.
"""

from __future__ import annotations

import sys
import threading
import time

from rich.console import Console

from pipelines import log
from pipelines.embed import empty_stats


class JobProgress:
    def __init__(self, spark, total_rows: int, interval_s: float = 2.0):
        self.sc = spark.sparkContext
        self.total_rows = total_rows
        self.rows = self.sc.accumulator(0)
        self.tokens = self.sc.accumulator(0)
        self.embedder = {k: self.sc.accumulator(v) for k, v in empty_stats().items()}
        self.interval_s = interval_s if sys.stderr.isatty() else max(interval_s, 15.0)
        self.sample_s = interval_s
        self.samples: list[dict] = []  # (elapsed, rows, tokens) every sample_s: the run manifest's "progress"
        self.console = Console(stderr=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="corpus-nlp-progress")
        self.started = time.time()

    def callback(self):
        """What the workers call per batch (pickled with the mapInArrow function)."""
        rows, tokens, embedder = self.rows, self.tokens, self.embedder

        def on_batch(n_rows: int, n_tokens: int, embedder_delta: dict | None = None) -> None:
            rows.add(n_rows)
            tokens.add(n_tokens)
            for key, value in (embedder_delta or {}).items():
                embedder[key].add(value)

        return on_batch

    def embedder_counts(self) -> dict:
        """The workers' embedder counters summed, with the padding ratio. A retried task counts twice
        (accumulators updated inside a transformation are at least once), which a ratio survives."""
        counts = {k: round(a.value, 3) if isinstance(a.value, float) else a.value for k, a in self.embedder.items()}
        counts["padding_ratio"] = round(counts["padded_pieces"] / counts["pieces"], 4) if counts["pieces"] else 0.0
        return counts

    def _tasks(self) -> tuple[int, int]:
        tracker = self.sc.statusTracker()
        done = total = 0
        for stage_id in tracker.getActiveStageIds():
            info = tracker.getStageInfo(stage_id)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
        return done, total

    def fields(self) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        done, total = self._tasks()
        tokens = self.tokens.value
        return {"tasks_done": done, "tasks": total, "rows": self.rows.value, "rows_total": self.total_rows,
                "tokens": tokens, "tokens_per_s": round(tokens / elapsed, 1), "elapsed_s": round(elapsed, 1)}

    def line(self) -> str:
        f = self.fields()
        tasks = f"tasks {f['tasks_done']}/{f['tasks']}, " if f["tasks"] else ""
        return (f"{tasks}rows {f['rows']:,}/{f['rows_total']:,}, tokens {f['tokens']:,}, "
                f"{f['tokens_per_s']:,.0f} tokens/s, {f['elapsed_s']:,.0f}s")

    def _loop(self) -> None:
        shown = time.time()
        while not self._stop.wait(self.sample_s):
            self._sample()
            if log.SETTINGS.quiet or time.time() - shown < self.interval_s - 1e-3:
                continue
            shown = time.time()
            if log.as_json():
                log.emit("progress", "", **self.fields())
            else:
                self.console.print(f"[dim]annotating:[/dim] {self.line()}", highlight=False)

    def _sample(self) -> None:
        self.samples.append({"elapsed_s": round(time.time() - self.started, 1), "rows": self.rows.value,
                             "tokens": self.tokens.value})
        if len(self.samples) > 400:  # a long run keeps every other sample: the curve, in bounded space
            self.samples = self.samples[::2]

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        self._sample()
        return False
