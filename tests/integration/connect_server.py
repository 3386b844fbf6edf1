"""A real Spark Connect server on this machine, as a cluster's would run: its own process, started by
PySpark's ``spark-submit`` (the server class ships in PySpark 4's jars) in a clean environment (only PATH,
HOME and JAVA_HOME come along), with Delta's jars and settings, listening on a free local port."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Iterator

SERVER_CLASS = "org.apache.spark.sql.connect.service.SparkConnectServer"


def connect_supported() -> str | None:
    """Why this Python cannot test Spark Connect, or None."""
    import pyspark

    if int(pyspark.__version__.split(".")[0]) < 4:
        return f"a local Spark Connect server needs PySpark 4 (this is {pyspark.__version__}): make test-py312"
    try:
        import grpc  # noqa: F401
    except ImportError:
        return "the Spark Connect client needs the connect extra (pip install 'corpus-nlp[connect]')"
    return None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _listening(port: int) -> bool:
    with socket.socket() as s:
        return s.connect_ex(("127.0.0.1", port)) == 0


@contextlib.contextmanager
def connect_server(workdir: Path, jars: list[str], conf: dict[str, str]) -> Iterator[str]:
    """``sc://127.0.0.1:PORT`` of a server running while the block runs; its log is ``workdir/server.log``."""
    import pyspark

    from pipelines.spark.session import log4j_config_path

    port = _free_port()
    spark_home = Path(pyspark.__file__).parent
    settings = {"spark.connect.grpc.binding.port": str(port), "spark.connect.grpc.binding.address": "127.0.0.1",
                "spark.ui.enabled": "false", "spark.ui.showConsoleProgress": "false",
                "spark.sql.warehouse.dir": str(workdir / "warehouse"), **conf}
    cmd = [str(spark_home / "bin" / "spark-submit"), "--class", SERVER_CLASS, "--master", "local[2]",
           "--name", "corpus-nlp-test-connect-server", "--driver-memory", "2g",
           "--driver-java-options", f"-Dlog4j2.configurationFile={log4j_config_path()}",
           *(["--jars", ",".join(jars)] if jars else []),
           *[arg for key, value in settings.items() for arg in ("--conf", f"{key}={value}")]]
    env = {key: os.environ[key] for key in ("PATH", "HOME", "JAVA_HOME") if key in os.environ}
    env.update(SPARK_HOME=str(spark_home), PYSPARK_PYTHON=sys.executable, SPARK_LOCAL_IP="127.0.0.1")
    workdir.mkdir(parents=True, exist_ok=True)
    with open(workdir / "server.log", "wb") as log:
        server = subprocess.Popen(cmd, env=env, cwd=workdir, stdout=log, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        while not _listening(port):  # a JVM start: seconds, more on a busy machine; a dead server ends the wait
            if server.poll() is not None:
                raise RuntimeError(f"the Spark Connect server exited ({server.returncode}): "
                                   f"{(workdir / 'server.log').read_text(errors='replace')[-3000:]}")
            time.sleep(0.5)
        yield f"sc://127.0.0.1:{port}"
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)
            server.wait()
