"""Helpers shared by the job tests: write a small partitioned corpus, compare two lakes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
from chispa import assert_df_equality

from pipelines.config import parse_config

ROOT = Path(__file__).resolve().parents[2]

# The job tests' small corpus: two languages with text, and a partition of rows for the quarantine.
JOB_CORPUS = {
    "de": [("de-1", "Der Hund schläft. Die Katze auch!"), ("de-2", "Berlin ist groß.")],
    "zh": [("zh-1", "北京是中国的首都。今天天气很好！")],
    "xx": [("xx-1", None), ("xx-2", ""), ("xx-3", "  \t"), ("xx-4", "ok \x07 🙂")],
}


def write_corpus(root: Path, corpus: dict, file_name: str = "part-00000.parquet") -> Path:
    for lang, rows in corpus.items():
        part = root / f"lang={lang}"
        part.mkdir(parents=True, exist_ok=True)
        table = pa.table({"doc_id": [r[0] for r in rows], "text": [r[1] for r in rows]},
                         schema=pa.schema([("doc_id", pa.string()), ("text", pa.string())]))
        pq.write_table(table, part / file_name)
    return root


def job_config(lake: Path, corpus_dir: Path, bundle, **overrides):
    raw = {
        "input": {"path": str(corpus_dir)},
        "output": {"path": str(lake)},
        "model": {"bundle": str(bundle), "build_demo_if_missing": False},
    }
    for key, value in overrides.items():
        node = raw
        *parents, leaf = key.split("__")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return parse_config(raw)


def read_table(spark, path):
    """A lake table, Delta or plain Parquet, as the lake wrote it."""
    from pathlib import Path as _P

    from pipelines.store.lake import text_partition_values

    if (_P(str(path)) / "_delta_log").exists():
        return spark.read.format("delta").load(str(path))
    with text_partition_values(spark):
        return spark.read.parquet(str(path))


def assert_same_table(spark, path_a, path_b, order=("doc_id", "token_index")):
    """Equal rows; the run that wrote them (run_id) may differ."""
    a = read_table(spark, path_a).drop("run_id")
    b = read_table(spark, path_b).drop("run_id")
    cols = sorted(a.columns)
    assert cols == sorted(b.columns)
    assert_df_equality(a.select(cols).orderBy(*order), b.select(cols).orderBy(*order), ignore_nullable=True)


def files_per_partition(spark, path) -> dict[str, list[int]]:
    """The data files a table reads now (Delta: the current version's), by partition directory: their sizes."""
    from collections import defaultdict
    from urllib.parse import unquote, urlparse

    found: dict[str, list[int]] = defaultdict(list)
    for uri in read_table(spark, path).inputFiles():
        file = Path(unquote(urlparse(uri).path))
        found[str(file.parent.relative_to(Path(str(path))))].append(file.stat().st_size)
    return dict(found)


def start_cli_run(config_file: Path, cfg) -> subprocess.Popen:
    """`corpus-nlp annotate --config` on ``cfg`` (written to ``config_file``) in a process of its own."""
    import yaml

    config_file.write_text(yaml.safe_dump(cfg.model_dump(mode="json")))
    env = {**os.environ, "PYSPARK_PYTHON": sys.executable}
    return subprocess.Popen([sys.executable, "-m", "pipelines.tools.cli", "annotate", "--config", str(config_file),
                             "--show", "0"], env=env, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)


def manifests(lake: Path) -> list[dict]:
    """The lake's run manifests, as they are now."""
    runs = lake / "_runs"
    return [json.loads(p.read_text()) for p in sorted(runs.glob("*.json"))] if runs.exists() else []


def commits(spark, table_path) -> list[tuple[str, str | None]]:
    """(operation, run id) of each commit of a Delta table, oldest first."""
    history = spark.sql(f"DESCRIBE HISTORY delta.`{table_path}`").orderBy("version").collect()
    return [(h.operation, json.loads(h.userMetadata)["corpus_nlp_run_id"] if h.userMetadata else None)
            for h in history]
