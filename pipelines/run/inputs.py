"""The job's input: checks made before Spark starts (paths, Parquet footers), then the corpus as Spark reads it.

Every check names the file or column involved and what to do, in one line (a :class:`JobError`).
"""

from __future__ import annotations

import errno
import uuid

from pipelines.config import JobConfig
from pipelines.errors import NOT_PARQUET_ADVICE, JobError
from pipelines.store.lake import text_partition_values
from pipelines.store.remote_files import is_inside, is_local, local_file, local_path


def check_paths(config: JobConfig) -> None:
    """Output writable and not inside the input (it would be read as input by every later run)."""
    out, src = config.output.path, config.input.path
    if not config.input.table and is_inside(out, src):
        raise JobError(f"output path {out} lies inside the input path {src}: later runs would read the lake as "
                       "input; choose an output.path (--output) outside the input")
    if not is_local(out):
        return  # remote stores report their own permission errors at write time
    target = local_path(out)
    try:
        target.mkdir(parents=True, exist_ok=True)
        probe = target / f".write-test-{uuid.uuid4().hex}"
        probe.write_text("ok")
        probe.unlink()
    except OSError as e:
        if e.errno == errno.ENOSPC:
            raise JobError(f"the disk is full (No space left on device) at output path {out}: free space, or point "
                           "output.path at a larger disk") from e
        raise JobError(f"output path {out} is not writable ({e.strerror}): choose another output.path / "
                       "--output, or fix its permissions") from e


def precheck_input(config: JobConfig) -> None:
    """The input checks that need no JVM, run before Spark starts and before any model work: a local input
    path exists, holds Parquet files Spark would read, and their footers have the id and text columns.
    Remote inputs and catalog tables are checked by :func:`read_corpus`, once Spark can list them."""
    path = config.input.path
    if config.input.table or not is_local(path):
        return
    root = local_path(path)
    if not root.exists():
        raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
    files = [f for f in ([root] if root.is_file() else sorted(root.rglob("*.parquet"))) if _spark_reads(f, root)]
    if not files:
        raise JobError(f"input path {path} holds no Parquet files: nothing to annotate (check the path, "
                       "or that the corpus was written as Parquet)")
    try:  # the columns Spark would see (the first file's, then the partition folders'); an unreadable
        import pyarrow.parquet as pq  # file is reported by check_file_columns, with its name

        columns = pq.read_schema(files[0]).names
    except Exception:
        columns = None
    if columns is not None:
        folders = [seg.split("=", 1)[0] for seg in files[0].relative_to(root).parts[:-1] if "=" in seg] \
            if files[0] != root else []
        require_columns(path, columns + [c for c in folders if c not in columns], config.input)
    check_file_columns([str(f) for f in files], [config.input.id_col, config.input.text_col])


def _spark_reads(file, root) -> bool:
    """Spark's file listing skips names that start with '.' or '_' (but not '_x=1' partition folders)."""
    parts = file.relative_to(root).parts if file != root else (file.name,)
    return not any(p.startswith(".") or (p.startswith("_") and "=" not in p) for p in parts)


def read_corpus(spark, config: JobConfig):
    """The input rows and their partition columns (values as the directories spell them); clear errors."""
    settings = config.input
    if settings.table:
        return read_table(spark, settings)
    path = settings.path
    if is_local(path):
        local = local_path(path)
        if not local.exists():
            raise JobError(f"input path {path} does not exist: point input.path (or --input) at a Parquet corpus")
        if not any(local.rglob("*.parquet")):
            raise JobError(f"input path {path} holds no Parquet files: nothing to annotate (check the path, "
                           "or that the corpus was written as Parquet)")
    try:
        with text_partition_values(spark):
            df = spark.read.option("basePath", path).parquet(path)
            df.schema  # a Spark Connect server analyses a read only when asked: here, inside this try
    except Exception as e:  # AnalysisException: path not found, not Parquet, ...
        raise JobError(f"cannot read Parquet corpus at {path}: {str(e).strip().splitlines()[0]}") from e
    require_columns(path, df.columns, settings)
    files = df.inputFiles()
    check_file_columns(files, [settings.id_col, settings.text_col])
    partitions = partition_columns(files, path, df.columns)
    return df, partitions, files


def read_table(spark, settings):
    """The corpus as a catalog table (``input.table``): its rows, its partition columns as the catalog
    declares them, and its data files (for the incremental state, as for a path). The catalog's schema
    holds for every file, so the files' footers are not checked."""
    name = settings.table
    try:
        df = spark.table(name)
        df.schema  # analysed now under Spark Connect too
        partitions = [c.name for c in spark.catalog.listColumns(name) if c.isPartition]
    except Exception as e:  # AnalysisException: TABLE_OR_VIEW_NOT_FOUND, ...
        raise JobError(f"cannot read input table {name}: {str(e).strip().splitlines()[0]} (set input.table to a "
                       "table of this session's catalog, e.g. db.corpus)") from e
    require_columns(f"table {name}", df.columns, settings)
    files = df.inputFiles()
    if not files:
        raise JobError(f"input table {name} has no data files: nothing to annotate (a view, or an empty table?)")
    return df, partitions, files


def corpus_partitions(spark, config: JobConfig, files: list[str], columns: list[str]):
    """The input's partitions with their file signatures (:func:`pipelines.store.state.input_partitions`); a
    table's files are taken relative to its location, so the state does not depend on how it is named."""
    from pipelines.store import state

    from pipelines.store.catalog import table_location

    root = config.input.path
    if config.input.table:
        root = table_location(spark, config.input.table)
        if root is None:
            raise JobError(f"input table {config.input.table} has no location (a view?): set input.table to a table")
    return state.input_partitions(state.file_statuses(spark, files), root, columns)


def require_columns(path: str, columns: list[str], settings) -> None:
    """The corpus has the configured text and id columns; else the columns it has, and the key to set."""
    for role, col in (("text", settings.text_col), ("id", settings.id_col)):
        if col not in columns:
            key = "text_col" if role == "text" else "id_col"
            raise JobError(f"input {path} has no {role} column {col!r} (set input.{key}); its columns are: "
                           f"{', '.join(columns)}")


def check_file_columns(files: list[str], needed: list[str]) -> None:
    """Every local input file has the id and text columns, with one type across files: Spark reads a
    file that lacks a column as nulls (every row quarantined as null_text without a word) and fails on
    a differing type deep inside a task. Footers only; remote files are left to Spark."""
    import pyarrow.parquet as pq

    seen: dict[str, tuple[str, str]] = {}  # column -> (type, first file with it)
    for f in files:
        if not is_local(f):
            continue
        path = local_file(f)
        try:
            schema = pq.read_schema(path)
        except Exception as e:
            raise JobError(f"input file {path} is not a readable Parquet file ({str(e).splitlines()[0][:120]}): "
                           + NOT_PARQUET_ADVICE) from None
        for column in needed:
            if column not in schema.names:
                raise JobError(f"input file {path} has no column {column!r} (its columns: "
                               f"{', '.join(schema.names)}): rewrite it with the corpus's columns, or move it out")
            kind = str(schema.field(column).type)
            first = seen.setdefault(column, (kind, str(path)))
            if first[0] != kind and {first[0], kind} != {"string", "large_string"}:
                raise JobError(f"input file {path} stores column {column!r} as {kind}, but {first[1]} stores it as "
                               f"{first[0]}: rewrite it with the corpus's schema")


def partition_columns(files: list[str], root: str, columns: list[str]) -> list[str]:
    """Hive-style partition columns (``lang=de/``) of the files under ``root``, outermost first."""
    if not files:
        return []
    relative = files[0].split(root.rstrip("/").split("://")[-1], 1)[-1]
    names = [seg.split("=", 1)[0] for seg in relative.strip("/").split("/")[:-1] if "=" in seg]
    return [n for n in names if n in columns]

