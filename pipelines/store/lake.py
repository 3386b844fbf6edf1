"""The lake: where the tables live, how a run replaces its partitions, and the run manifests.

Two formats:
- ``delta`` (default): each table is a Delta table. A run replaces the partitions it annotates with one
  Delta transaction per table (``replaceWhere`` on those partitions), with the run id in the commit's
  user metadata: a reader sees a table before or after the run, never half of it, and two writers of
  the same partitions conflict cleanly (:class:`LakeConflict`).
- ``parquet``: plain Parquet directories written with dynamic partition overwrite. Weaker: a reader can
  see a partition half-replaced while a run writes, and concurrent writers are not detected beyond the
  lease in ``_runs/``.

Partition values are kept as text, exactly as the input's directories spell them (``hour=01`` stays
``01``; Spark's type inference is off for our reads), so they go back to the lake unchanged.

Every row a run writes carries its ``run_id``: what the lake holds says which run produced it, and
incremental runs read their state from there (:mod:`pipelines.store.state`).
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import shutil
import socket
import threading
import time
import uuid
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Iterator

from pipelines.errors import JobError, LakeConflict, RunInProgress
from pipelines.spark.session import temporary_conf
from pipelines.store.remote_files import files, is_local, local_path

RUNS_DIR = "_runs"
# The lake's tables (folders under the lake's root).
TOKEN_TABLE = "token_embeddings"
ANNOTATIONS_TABLE = "annotations"
QUARANTINE_TABLE = "quarantine"
ENTITIES_TABLE = "entities"
CLASSIFICATIONS_TABLE = "classifications"
LAKE_TABLES = (TOKEN_TABLE, ANNOTATIONS_TABLE, QUARANTINE_TABLE, ENTITIES_TABLE, CLASSIFICATIONS_TABLE)
HIVE_NULL = "__HIVE_DEFAULT_PARTITION__"
INFER_PARTITION_TYPES = "spark.sql.sources.partitionColumnTypeInference.enabled"


# --- paths ---------------------------------------------------------------------------------------
def exists(spark, path: str) -> bool:
    if is_local(path):
        return local_path(path).exists()
    return files(spark, path).exists(path)


def delete_dir(spark, path: str) -> None:
    if is_local(path):
        shutil.rmtree(local_path(path), ignore_errors=True)
    else:
        files(spark, path).delete(path)


def write_text(spark, path: str, text: str) -> None:
    """Write a small file next to the tables, atomically where the file system allows it."""
    if is_local(path):
        target = local_path(path)
        target.parent.mkdir(parents=True, exist_ok=True)
        tmp = target.with_name(f".{target.name}.{uuid.uuid4().hex[:8]}.tmp")
        tmp.write_text(text, encoding="utf-8")
        tmp.replace(target)  # atomic: a reader never sees half a manifest
        return
    files(spark, path).write(path, text.encode("utf-8"))


def read_texts(spark, folder: str, suffix: str) -> list[str]:
    if is_local(folder):
        local = local_path(folder)
        return [p.read_text(encoding="utf-8") for p in sorted(local.glob(f"*{suffix}"))] if local.exists() else []
    store = files(spark, folder)
    if not store.exists(folder):
        return []
    return [store.read(f"{folder.rstrip('/')}/{name}").decode("utf-8")
            for name in sorted(store.names(folder)) if name.endswith(suffix)]


# --- partitions ----------------------------------------------------------------------------------
# Spark's ExternalCatalogUtils.escapePathName: these characters (and control characters) are written as
# %XX in partition directory names.
_ESCAPED = set('"#%\'*/:=?\\\x7f{[]^')


def escape_path_name(value: str) -> str:
    return "".join(f"%{ord(c):02X}" if c in _ESCAPED or ord(c) < 0x20 else c for c in value)


def partition_dir(values: tuple[tuple[str, str | None], ...]) -> str:
    """'lang=de/hour=01' for the values, escaped and null-named the way Spark writes them."""
    return "/".join(f"{escape_path_name(k)}={HIVE_NULL if v is None else escape_path_name(v)}" for k, v in values)


def partition_spec(values: dict[str, str | None]) -> str:
    """'lang=de/hour=01' for people: values unescaped, null as Spark names it; '<all>' when unpartitioned."""
    return "/".join(f"{k}={HIVE_NULL if v is None else v}" for k, v in values.items()) or "<all>"


def _sql_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def partition_predicate(columns: list[str], partitions: list) -> str:
    """SQL predicate selecting exactly ``partitions`` (objects with ``.values``), e.g. for replaceWhere."""
    if not columns:
        return "true"
    if not partitions:
        return "false"

    def term(k, v):
        return f"`{k}` IS NULL" if v is None else f"`{k}` = {_sql_literal(v)}"

    if len(columns) == 1:
        values = [v for p in partitions for _, v in p.values]
        known = sorted({v for v in values if v is not None})
        parts = [f"`{columns[0]}` IN ({', '.join(map(_sql_literal, known))})"] if known else []
        if None in values:
            parts.append(f"`{columns[0]}` IS NULL")
        return " OR ".join(parts)
    return " OR ".join("(" + " AND ".join(term(k, v) for k, v in p.values) + ")" for p in partitions)


def text_partition_values(spark):
    """Read partition values as the directory names spell them (``01`` stays ``01``), not as Spark
    would guess their type; the session's own setting is restored afterwards."""
    return temporary_conf(spark, {INFER_PARTITION_TYPES: "false"})


# --- file sizes ----------------------------------------------------------------------------------
# Without care a write leaves one file per task per partition: the model pass runs in many tasks, each
# holding rows of every partition, so a lake gets tens of thousands of small files. Before the write,
# Spark's REBALANCE (adaptive query execution) shuffles the rows by the partition columns, splits a
# partition bigger than the advisory size into pieces of about that size and merges small ones: a
# partition gets one file, or one per ``target_file_mb``. The size is measured on the shuffle's
# (compressed) bytes, which for the vectors is close to Parquet's. Without AQE (disabled by the user),
# each partition gets a single file. The tables with vectors skip it: the job clusters their input
# instead (:mod:`pipelines.run.layout`), so that the vectors are not shuffled.
ADVISORY_SIZE = "spark.sql.adaptive.advisoryPartitionSizeInBytes"


@contextlib.contextmanager
def rebalanced(df, columns: list[str], target_file_mb: float) -> Iterator:
    """``df`` shuffled so that each partition's rows reach the writer in pieces of ~target_file_mb, for the
    duration of the block (the write)."""
    import pyspark
    from pyspark.sql import functions as F

    if not target_file_mb:
        yield df
    elif int(pyspark.__version__.split(".")[0]) >= 4:  # the hint takes columns (classic and Connect alike)
        yield df.hint("REBALANCE", *[F.col(f"`{c.replace('`', '``')}`") for c in columns])
    else:  # PySpark 3.5's DataFrame.hint passes names as strings, which REBALANCE refuses: through SQL
        view = f"corpus_nlp_write_{uuid.uuid4().hex[:12]}"
        df.createOrReplaceTempView(view)
        try:
            names = ", ".join("`" + c.replace("`", "``") + "`" for c in columns)
            hint = f"REBALANCE({names})" if columns else "REBALANCE"  # unpartitioned: only sizes matter
            yield df.sparkSession.sql(f"SELECT /*+ {hint} */ * FROM {view}")
        finally:
            df.sparkSession.catalog.dropTempView(view)


def file_size_conf(target_file_mb: float) -> dict[str, str]:
    return {ADVISORY_SIZE: str(int(target_file_mb * 1024 * 1024))} if target_file_mb else {}


# --- tables --------------------------------------------------------------------------------------
# Writing the vectors is most of the Spark JVM's work. parquet-mr tries a dictionary for every column
# chunk and gives up only after filling it (~45% of the write time on the vectors, whose values hardly
# repeat: JFR profile), and keeps min/max and level statistics of every float, which no reader can use.
VECTOR_COLUMNS = ("embedding.list.element", "embedding")  # float32 list / float16 binary
VECTOR_COLUMN_OPTIONS = ("parquet.enable.dictionary", "parquet.column.statistics.enabled",
                         "parquet.size.statistics.enabled")


def plain_columns_conf(columns) -> dict[str, str]:
    """parquet-mr's per-column settings (``option#column``) that write ``columns`` without a dictionary or
    statistics. A Parquet write takes them as options. A Delta write passes only maxRecordsPerFile and
    compression of its options on to its files, so it takes them from the session, whose SQL settings Spark
    copies into each write job's Hadoop conf (without them, the dictionary attempt on a Delta token table's
    vectors took 69 of 585 JVM samples of an ``off`` run: JFR profile, docs/performance.md)."""
    return {f"{option}#{column}": "false" for column in columns for option in VECTOR_COLUMN_OPTIONS}


@dataclass
class Lake:
    spark: object
    root: str
    format: str = "delta"  # "delta" | "parquet"
    target_file_mb: float = 128.0  # about this many MiB per data file; 0: a file per task per partition

    def path(self, table: str) -> str:
        return f"{self.root.rstrip('/')}/{table}"

    def has(self, table: str) -> bool:
        if self.format == "delta":  # a commit, not only a _delta_log folder (a killed first write leaves one)
            from pipelines.store.delta_sql import is_delta_table

            return is_delta_table(self.spark, self.path(table))
        return exists(self.spark, self.path(table))

    def read(self, table: str, columns: list[str] | None = None, partitions: list | None = None):
        """The table (its ``partitions`` only, when given), or None when it holds no data yet."""
        if not self.has(table):
            return None
        try:
            with text_partition_values(self.spark):
                reader = self.spark.read
                df = reader.format("delta").load(self.path(table)) if self.format == "delta" \
                    else reader.option("basePath", self.path(table)).parquet(self.path(table))
                df.schema  # a Spark Connect server analyses a read only when asked: here, not at first use
        except Exception as e:
            if self.format == "parquet" and "Unable to infer schema" in str(e):
                return None  # a directory without a single data file
            raise
        if partitions is not None and columns:
            df = df.where(partition_predicate(columns, partitions))
        return df

    def replace(self, table: str, df, columns: list[str], partitions: list, run_id: str, last_step=None,
                clustered: bool = False) -> None:
        """Make ``df`` the content of ``partitions`` (all of the table when unpartitioned) in one write.

        Delta: one transaction (replaceWhere), run id in the commit's user metadata; a partition that
        gets no rows is emptied by the same transaction. Parquet: dynamic partition overwrite, then the
        directories of partitions that got no rows are removed. ``last_step`` (e.g. ``RunReport.split``):
        applied to the rows once nothing more analyses them before the write (PySpark 4.0's Connect client
        loses a DataFrame's observed metrics when its plan is analysed before the action). ``clustered``: the
        rows already come in tasks of one partition and about one file each (:mod:`pipelines.run.layout`),
        so no REBALANCE: the rows (the vectors) go from their task into their file without a shuffle.
        """
        df = df.select(*[c for c in df.columns if c not in columns], *columns)  # partition columns last, as in Hive
        if last_step is not None:
            df = last_step(df)
        target_file_mb = 0 if clustered else self.target_file_mb
        with rebalanced(df, columns, target_file_mb) as df, temporary_conf(self.spark, file_size_conf(target_file_mb)):
            if self.format == "delta":
                self._replace_delta(table, df, columns, partitions, run_id)
            else:
                self._replace_parquet(table, df, columns, partitions)

    def _replace_delta(self, table, df, columns, partitions, run_id) -> None:
        writer = (df.write.format("delta").mode("overwrite")
                  .option("userMetadata", json.dumps({"corpus_nlp_run_id": run_id}))
                  .option("mergeSchema", "true"))  # a run that adds NER adds its (nullable) columns
        if columns:
            writer = writer.partitionBy(*columns).option("replaceWhere", partition_predicate(columns, partitions))
        with delta_errors(self.path(table), run_id), temporary_conf(self.spark, plain_columns_conf(VECTOR_COLUMNS)):
            writer.save(self.path(table))

    def _replace_parquet(self, table, df, columns, partitions) -> None:
        # Remove the partitions first, then append: one pass over ``df`` (it may be the whole model run),
        # and no partition keeps old rows because this run gave it none. A run that dies in between
        # leaves the partitions empty, and the next incremental run redoes them.
        writer = df.write.options(**plain_columns_conf(VECTOR_COLUMNS))
        if not columns:
            writer.mode("overwrite").parquet(self.path(table))
            return
        for p in partitions:
            delete_dir(self.spark, f"{self.path(table)}/{partition_dir(p.values)}")
        writer.mode("append").partitionBy(*columns).parquet(self.path(table))

    def remove(self, table: str, columns: list[str], partitions: list, run_id: str) -> None:
        """Empty ``partitions`` of ``table`` (e.g. those deleted from the input): Delta, one DELETE
        transaction with the run id; Parquet, their directories removed."""
        if not partitions:
            return
        if self.format == "delta":
            self.delete_rows(table, partition_predicate(columns, partitions), run_id)
            return
        for p in partitions:
            delete_dir(self.spark, f"{self.path(table)}/{partition_dir(p.values)}")

    def delete_rows(self, table: str, condition: str, run_id: str) -> None:
        """Delta only: remove rows (one transaction, run id in its user metadata as for a write), e.g. a
        document's partial tokens after its row failed."""
        from pipelines.store.delta_sql import delete_where

        with delta_errors(self.path(table), run_id):
            delete_where(self.spark, self.path(table), condition, json.dumps({"corpus_nlp_run_id": run_id}))


_DELTA_CONFLICTS = re.compile(r"Concurrent\w*Exception|ProtocolChangedException|MetadataChangedException|"
                             r"DELTA_CONCURRENT_")


@contextlib.contextmanager
def delta_errors(path: str, run_id: str) -> Iterator[None]:
    """Delta's conflicts and schema refusals as one line each."""
    try:
        yield
    except Exception as e:
        name = type(e).__name__
        text = str(e)
        first = text.strip().splitlines()[0] if text.strip() else name
        # Through py4j the Delta exception is a line of the Java trace ("...: io.delta.exceptions.
        # ConcurrentAppendException: [DELTA_CONCURRENT_APPEND] ..."), not the first line.
        conflict = next((line.split("exceptions.", 1)[-1].strip() for line in text.splitlines()
                         if _DELTA_CONFLICTS.search(line)), None)
        if conflict or _DELTA_CONFLICTS.search(name):
            raise LakeConflict(f"another run wrote {path} while run {run_id} was writing it "
                               f"({(conflict or first)[:200]}); nothing of this run was committed there: "
                               "run it again") from e
        if "schema mismatch" in text.lower() or "DELTA_FAILED_TO_MERGE_FIELDS" in text or "Failed to merge" in text:
            raise JobError(f"{path} holds columns of another type than this run writes ({first[:200]}): a setting "
                           "that changes the table's schema (output.embedding_dtype) needs a new output path") from e
        raise


# --- run manifests and the lake's lease ----------------------------------------------------------
def now_iso() -> str:
    return datetime.now(timezone.utc).isoformat()


def read_manifests(spark, root: str) -> list[dict]:
    manifests = []
    for text in read_texts(spark, f"{root.rstrip('/')}/{RUNS_DIR}", ".json"):
        try:
            manifests.append(json.loads(text))
        except json.JSONDecodeError:  # cut short by a crash on a store without atomic rename
            continue
    return manifests


def check_stored_schema(config, manifests: list[dict]) -> None:
    """Refuse, before any model work, a run whose ``output.embedding_dtype`` differs from the one the lake's
    token table already stores (as its newest committed run with vectors recorded it). float32 is an array,
    float16 and int8 are both binary: Delta refuses the first change only at the write, after the model
    pass, and would take the second silently, leaving rows no reader can decode."""
    stored = [m for m in manifests if m.get("status") == "committed" and m.get("model")
              and (m.get("config") or {}).get("output", {}).get("embeddings", True)]
    if not stored:
        return
    newest = max(stored, key=lambda m: m.get("started_at") or "")
    dtype = newest["config"]["output"].get("embedding_dtype", "float32")
    wanted = config.output.embedding_dtype
    if config.output.embeddings and dtype != wanted:
        raise JobError(f"lake {config.output.path} stores its embeddings as {dtype} (run {newest.get('run_id')}), "
                       f"and output.embedding_dtype {wanted} changes the {TOKEN_TABLE} table's column type: write "
                       f"to a new output.path, or keep output.embedding_dtype: {dtype}")


@dataclass
class RunManifest:
    """``_runs/<run_id>.json``: running → committed | failed; a running one keeps a heartbeat.

    A run whose heartbeat is older than ``lease_s`` died without saying so: the next run rewrites it
    as ``abandoned``. A live one holds a lease on what it writes (see :func:`take_lease`): another run
    that would write the same partitions refuses (one line naming it).
    """

    spark: object
    root: str
    run_id: str
    body: dict
    lease_s: float = 120.0
    heartbeat_s: float = 10.0
    _stop: threading.Event = field(default_factory=threading.Event, repr=False)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    started: float = field(default_factory=time.time)

    @property
    def path(self) -> str:
        return f"{self.root.rstrip('/')}/{RUNS_DIR}/{self.run_id}.json"

    def save(self, status: str, **fields) -> None:
        with self._lock:
            self.body.update(status=status, duration_s=round(time.time() - self.started, 3),
                             heartbeat_at=now_iso(), **fields)
            write_text(self.spark, self.path, json.dumps(self.body, indent=2, ensure_ascii=False, default=str))

    def start(self) -> None:
        self.body.update(run_id=self.run_id, host=socket.gethostname(), pid=os.getpid(), lease_s=self.lease_s)
        self.save("running", lease={"state": PLANNING})
        threading.Thread(target=self._beat, daemon=True, name="corpus-nlp-heartbeat").start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            try:
                self.save(self.body["status"])
            except Exception:  # a missed beat is harmless; the lease is many beats long
                pass

    def finish(self, status: str, **fields) -> str | None:
        """Save the final status. For a failure, a manifest that cannot be written (the full disk that
        failed the run, say) does not hide the run's own error: returns why, and the run counts as ended
        in this process, so the next run here marks it ``abandoned`` at once (elsewhere, when its lease
        runs out)."""
        self._stop.set()
        _ENDED_HERE.add(self.run_id)
        try:
            self.save(status, finished_at=now_iso(), **fields)
        except Exception as e:
            if status == "committed":
                raise
            lines = str(e).strip().splitlines()
            return f"{type(e).__name__}: {lines[0] if lines else ''}"[:200]
        return None


_ENDED_HERE: set[str] = set()  # runs of this process that ended, whatever their manifests say


def _age_s(manifest: dict) -> float:
    stamp = manifest.get("heartbeat_at") or manifest.get("started_at")
    try:
        return time.time() - datetime.fromisoformat(stamp).timestamp()
    except (TypeError, ValueError):
        return float("inf")


def _dead_here(manifest: dict) -> bool:
    """A run of this host whose process no longer exists, or of this process that ended (no need to wait
    for its lease to run out)."""
    if manifest.get("host") != socket.gethostname() or not isinstance(manifest.get("pid"), int):
        return False
    if manifest["pid"] == os.getpid():
        return manifest.get("run_id") in _ENDED_HERE
    try:
        os.kill(manifest["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:  # alive, another user's
        return False
    return False


# A run's lease (``lease`` in its manifest) goes planning -> claiming -> held. Planning: it does not know
# yet what it writes, and holds nothing. Claiming: it has written the partitions it will write and is
# reading the other manifests; held: no other live run writes any of them. ``partitions: null`` is the
# whole lake. A running manifest without a lease (written by an older version) holds the whole lake.
PLANNING, CLAIMING, HELD = "planning", "claiming", "held"
_OLD_VERSION_LEASE = {"state": HELD, "partitions": None}


def take_lease(spark, own: RunManifest, partitions: list[dict] | None = None, poll_s: float = 0.2) -> list[str]:
    """Claim ``partitions`` (value dicts; None: the whole lake) for ``own``, already saved as running.

    Every run writes its claim before it reads the others', so of two runs whose claims overlap at
    least one sees the other. It refuses when that other holds its lease, or claims it too and started
    first; a claimant that started later is waited for (it refuses, seeing this run, or holds, having
    read before this claim was written: then this run refuses). So exactly one of them goes on. Runs
    left ``running`` whose heartbeat stopped are rewritten as ``abandoned`` (their ids are returned)."""
    own.save("running", lease={"state": CLAIMING, "partitions": partitions})
    abandoned: list[str] = []
    deadline = time.time() + own.lease_s
    while (pending := _claims_in_the_way(spark, own, partitions, abandoned)) is not None:
        if time.time() > deadline:  # it neither holds nor gives up: treat it as holding
            raise _busy(own, pending, partitions)
        time.sleep(poll_s)
    own.save("running", lease={"state": HELD, "partitions": partitions})
    return abandoned


def _claims_in_the_way(spark, own: RunManifest, partitions: list[dict] | None, abandoned: list[str]) -> dict | None:
    """One look at the other runs: raises when one holds (or claims first) what ``own`` claims; returns a
    later claimant to wait for; None when nothing is in the way."""
    later_claimant = None
    for m in read_manifests(spark, own.root):
        if m.get("run_id") == own.run_id or m.get("status") != "running":
            continue
        if _mark_if_abandoned(spark, own, m):
            abandoned.append(m["run_id"])
            continue
        lease = m.get("lease") or _OLD_VERSION_LEASE
        if lease.get("state") == PLANNING or not overlap(partitions, lease.get("partitions")):
            continue
        if lease.get("state") == HELD or _order(m) < _order(own.body):
            raise _busy(own, m, partitions)
        later_claimant = m
    return later_claimant


def _order(manifest: dict) -> tuple[str, str]:
    return manifest.get("started_at") or "", manifest.get("run_id") or ""


def _mark_if_abandoned(spark, own: RunManifest, m: dict) -> bool:
    """Rewrite a running manifest whose process is gone, or whose heartbeat stopped, as ``abandoned``."""
    lease = float(m.get("lease_s") or own.lease_s)
    dead = _dead_here(m)
    if not dead and _age_s(m) <= lease:
        return False
    m.update(status="abandoned", abandoned_seen_by=own.run_id,
             reason=("it ended in this process without writing its manifest" if m.get("pid") == os.getpid()
                     else f"process {m.get('pid')} on {m.get('host')} is gone") if dead else
             f"no heartbeat for over {lease:.0f} s: the process died before it could say so")
    write_text(spark, f"{own.root.rstrip('/')}/{RUNS_DIR}/{m['run_id']}.json", json.dumps(m, indent=2, ensure_ascii=False))
    return True


def overlap(mine: list[dict] | None, theirs: list[dict] | None) -> bool:
    """Whether two claims share a partition (None: the whole lake). Value dicts match when they agree on
    every column both name, so a claim on lang=de meets one on lang=de/day=1."""
    if mine is None and theirs is None:
        return True
    if mine is None or theirs is None:  # the whole lake meets any claim but an empty one (a run with nothing to write)
        return bool(mine if theirs is None else theirs)
    return any(_same_partition(a, b) for a in mine for b in theirs)


def _same_partition(a: dict, b: dict) -> bool:
    return all(a[k] == b[k] for k in a.keys() & b.keys())


def _busy(own: RunManifest, other: dict, partitions: list[dict] | None) -> RunInProgress:
    """The refusal, in one line: the other run, and what the two would both write."""
    theirs = (other.get("lease") or _OLD_VERSION_LEASE).get("partitions")
    if theirs is None:
        what = "the whole lake"
    else:
        shared = theirs if partitions is None else [t for t in theirs if any(_same_partition(t, p) for p in partitions)]
        what = f"partitions {_specs(shared)}, which this run writes too"
    lease = float(other.get("lease_s") or own.lease_s)
    return RunInProgress(
        f"run {other['run_id']} (host {other.get('host')}, pid {other.get('pid')}, started {other.get('started_at')}) "
        f"is writing to {own.root} ({what}): wait for it to finish, or run other partitions (--partition); if it "
        f"died, it is marked abandoned {lease:.0f} s after its last heartbeat")


def _specs(partitions: list[dict], at_most: int = 5) -> str:
    names = [partition_spec(p) for p in partitions]
    return ", ".join(names[:at_most]) + (f" and {len(names) - at_most} more" if len(names) > at_most else "")
