"""Progress a person can follow on a long run: tasks done, rows and tokens done, tokens/s.

Running tasks send their rows and tokens so far to the driver, at most every few seconds, as small UDP
datagrams (:class:`LiveCounts`): lossy by design (a lost or blocked one only delays the line), never in
the way of the work; the exact counts come back with the write (:mod:`pipelines.annotate.worker_reports`). Tasks
come from the status tracker of a classic driver, or from the progress a Spark Connect server reports
with each query (``registerProgressHandler``, PySpark 4).
"""

from __future__ import annotations

import json
import socket
import sys
import threading
import time

from rich.console import Console

from pipelines import log


class JobProgress:
    def __init__(self, spark, total_rows: int, interval_s: float = 2.0):
        self.total_rows = total_rows
        self.interval_s = interval_s if sys.stderr.isatty() else max(interval_s, 15.0)
        self.sample_s = interval_s
        self.samples: list[dict] = []  # (elapsed, rows, tokens) every sample_s: the run manifest's "progress"
        self.console = Console(stderr=True)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._loop, daemon=True, name="corpus-nlp-progress")
        self.started = time.time()
        self.tasks = _task_source(spark)
        self.live = LiveCounts(spark.conf.get("spark.driver.host", "127.0.0.1"))

    def reporter(self) -> "LiveReporter":
        """What the workers send their counts so far with (pickled with the mapInArrow function)."""
        return self.live.reporter()

    def fields(self) -> dict:
        elapsed = max(time.time() - self.started, 1e-9)
        done, total = self.tasks.counts()
        rows, tokens = self.live.totals()
        return {"tasks_done": done, "tasks": total, "rows": rows, "rows_total": self.total_rows,
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

    def _sample(self, rows: int | None = None, tokens: int | None = None) -> None:
        live_rows, live_tokens = self.live.totals()
        self.samples.append({"elapsed_s": round(time.time() - self.started, 1),
                             "rows": live_rows if rows is None else rows,
                             "tokens": live_tokens if tokens is None else tokens})
        if len(self.samples) > 400:  # a long run keeps every other sample: the curve, in bounded space
            self.samples = self.samples[::2]

    def finish(self, rows: int, tokens: int) -> None:
        """The last sample: the exact counts the write brought back."""
        self._sample(rows, tokens)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=1)
        self.tasks.close()
        self.live.close()
        return False


def _task_source(spark):
    from pipelines.spark.session import is_connect

    return _ConnectTasks(spark) if is_connect(spark) else _TrackerTasks(spark.sparkContext)


class _TrackerTasks:
    """A classic driver's status tracker: the active stages' tasks."""

    def __init__(self, sc):
        self.tracker = sc.statusTracker()

    def counts(self) -> tuple[int, int]:
        done = total = 0
        for stage_id in self.tracker.getActiveStageIds():
            info = self.tracker.getStageInfo(stage_id)
            if info is not None:
                done += info.numCompletedTasks
                total += info.numTasks
        return done, total

    def close(self) -> None:
        pass


class _ConnectTasks:
    """What a Spark Connect server reports with each query's progress (PySpark 4's progress handlers)."""

    def __init__(self, spark):
        self.spark, self._counts = spark, (0, 0)
        self.registered = hasattr(spark, "registerProgressHandler")
        if self.registered:
            spark.registerProgressHandler(self)

    def __call__(self, stages, inflight_tasks, operation_id, done) -> None:
        stages = [s for s in stages if not s.done]
        self._counts = (sum(s.num_completed_tasks for s in stages), sum(s.num_tasks for s in stages))

    def counts(self) -> tuple[int, int]:
        return self._counts

    def close(self) -> None:
        if self.registered:
            self.spark.removeProgressHandler(self)


class LiveReporter:
    """Sends a task's counts so far to the driver's :class:`LiveCounts`, at most every ``interval_s``
    (and always the final one). Picklable; the socket is opened in the worker, on first use."""

    def __init__(self, address: tuple[str, int] | None, interval_s: float):
        self.address, self.interval_s = address, interval_s
        self._socket, self._last = None, 0.0

    def __getstate__(self):
        return {"address": self.address, "interval_s": self.interval_s}

    def __setstate__(self, state):
        self.__init__(state["address"], state["interval_s"])

    def report(self, rows: int, tokens: int, final: bool = False) -> None:
        now = time.monotonic()
        if self.address is None or (not final and now - self._last < self.interval_s):
            return
        self._last = now
        try:
            from pyspark import TaskContext

            task = TaskContext.get()
            key = [task.stageId(), task.partitionId(), task.attemptNumber()] if task else [0, 0, 0]
            if self._socket is None:
                self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.sendto(json.dumps([*key, rows, tokens]).encode(), self.address)
        except OSError:  # no route to the driver: progress only, never the work's problem
            self.address = None


class LiveCounts:
    """The driver side: the latest counts of each task attempt, summed over tasks (a retried task's
    latest attempt counts, not both)."""

    def __init__(self, host: str, interval_s: float = 3.0):
        self.interval_s = interval_s
        self._latest: dict[tuple[int, int], tuple[int, int, int]] = {}  # (stage, partition) -> (attempt, rows, tokens)
        self._lock = threading.Lock()
        try:
            self._socket = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
            self._socket.bind(("0.0.0.0", 0))
            self._socket.settimeout(0.5)
            self.address = (socket.gethostbyname(host), self._socket.getsockname()[1])
        except OSError:  # no socket to listen on: the progress lines show tasks only
            self._socket, self.address = None, None
        self._closed = threading.Event()
        if self._socket is not None:
            threading.Thread(target=self._receive, daemon=True, name="corpus-nlp-live-progress").start()

    def reporter(self) -> LiveReporter:
        return LiveReporter(self.address, self.interval_s)

    def _receive(self) -> None:
        while not self._closed.is_set():
            try:
                stage, partition, attempt, rows, tokens = json.loads(self._socket.recv(512))
            except (OSError, ValueError):
                continue
            with self._lock:
                known = self._latest.get((stage, partition))
                if known is None or attempt >= known[0]:
                    self._latest[(stage, partition)] = (attempt, rows, tokens)

    def totals(self) -> tuple[int, int]:
        with self._lock:
            return (sum(v[1] for v in self._latest.values()), sum(v[2] for v in self._latest.values()))

    def close(self) -> None:
        self._closed.set()
        if self._socket is not None:
            self._socket.close()
