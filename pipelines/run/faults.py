"""Test-only failure injection, read from the Spark conf (tests/integration/test_faults.py, test_lake.py,
test_lake_conflict.py); never set in production. Each is a real fault: a killed worker, a killed driver,
tasks held open while another run commits."""

from __future__ import annotations

import os
import signal
import threading
import time

from pipelines.store.remote_files import is_local, local_path

KILL_WORKER_ONCE = "spark.corpusnlp.test.killWorkerOnce"  # a file: the first worker to create it dies
KILL_DRIVER_DURING_WRITE = "spark.corpusnlp.test.killDriverDuringWrite"
HOLD_TASKS_UNTIL = "spark.corpusnlp.test.holdTasksUntil"  # a file: the token pass waits for it (concurrent-run tests)


class DriverFault:
    """Test-only: SIGKILL this driver once the token table's write has started writing data files."""

    def __init__(self, spark, table_path: str):
        self.armed = (spark.conf.get(KILL_DRIVER_DURING_WRITE, "false") == "true") and is_local(table_path)
        self.table = local_path(table_path)
        self.before = set(self.table.rglob("*.parquet")) if self.armed and self.table.exists() else set()

    def _watch(self):
        while True:
            written = set(self.table.rglob("*.parquet")) if self.table.exists() else set()
            if written - self.before:
                os.kill(os.getpid(), signal.SIGKILL)
            time.sleep(0.05)

    def __enter__(self):
        if self.armed:
            threading.Thread(target=self._watch, daemon=True).start()
        return self

    def __exit__(self, *exc):
        return False
