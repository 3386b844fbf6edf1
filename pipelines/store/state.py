"""Incremental runs: which input partitions the lake already holds, annotated by this exact pipeline
from these exact input files.

The state is what the lake holds, not what some run once said: every row the job writes carries its
``run_id``, and that run's manifest records the pipeline fingerprint and, per input partition, a
signature of its files (path, size, modification time). A partition is done when all of its rows in
the lake come from ONE committed run with the same fingerprint and the same file signature. So a
partition another pipeline (or another config) overwrote since, a file rewritten in place under the
same name, and a run that died before committing are all redone.
"""

from __future__ import annotations

import hashlib
import json
import os
from collections import defaultdict
from dataclasses import dataclass
from urllib.parse import unquote, urlparse

from pipelines.store.lake import HIVE_NULL, partition_spec

from pipelines.store.remote_files import local_file

# The settings that change what the lake holds (tokens, vectors, tags, which rows are quarantined or
# how), as dotted config paths; a prefix takes every key below it, new ones included.
FINGERPRINT_FIELDS = (
    "engine",                                # the real Spark NLP annotators cut and embed differently
    "input.id_col", "input.text_col",        # which columns become doc_id and text
    "input.language_col",                    # per-row language changes sentence rules
    "stages.sentence_detector",              # every sentence setting changes sentences, hence tokens
    "stages.tokenizer",                      # every tokenizer setting changes tokens
    "stages.embeddings.max_sentence_length", # window size changes each piece's context, hence vectors
    "stages.embeddings.pooling",             # first piece or mean: other vectors
    "stages.embeddings.precision",           # bf16 arithmetic: vectors within ~1e-4 cosine, not the same
    "output.embedding_dtype",                # float32 list or float16 bytes: another column type
    "output.annotations",                    # whether the annotations table is written
    "output.embeddings",                     # whether the embedding column exists
    "policies.empty_text", "policies.duplicate_id", "policies.max_chars", "policies.too_long",
    "policies.quarantine_text_max_chars",    # what goes to quarantine and what it keeps
    "ner.include_confidence", "ner.white_list",  # the tags' confidence, which entities are kept
    "classify.over", "classify.coalesce_sentences",  # what one classification row stands for
)
# Keys added after lakes were first written: they enter the hash only when set to another value than
# their default (which means what the lakes written before them hold), so an upgrade does not redo
# every partition.
ADDED_LATER = ("output.embeddings", "classify.over", "classify.coalesce_sentences", "stages.embeddings.precision")
# Settings left out on purpose: they change speed, memory or where things run, never the output.
NOT_IN_FINGERPRINT = (
    "incremental", "full_refresh", "partitions",    # which partitions run, not what they get
    "deleted_partitions",                           # whether partitions gone from the input stay, not what they hold
    "spark",                                        # master, memory, batch rows, threads
    "input.path", "input.format", "output.path", "output.format",  # where, not what
    "input.table", "output.database", "output.table_prefix",        # idem: catalog names
    "output.target_file_mb",                        # how the rows are cut into files, not which rows
    "model.bundle", "model.build_demo_if_missing",  # the model counts by its storage ref and precision
    "model.sparknlp_pretrained", "model.sparknlp_lang", "model.sparknlp_model_path",  # idem
    "stages.embeddings.batch_size", "stages.embeddings.max_batch_pieces",  # masked padding: same vectors
    "stages.embeddings.max_tokens_per_chunk",       # memory bound and sort scope only
    "stages.embeddings.intra_op_threads", "stages.embeddings.providers",   # speed
    "stages.embeddings.runtime",                    # speed: OpenVINO fp32 agrees with ONNX Runtime to ~1e-6
    "stages.embeddings.unsupported_precision",      # what a CPU without bf16 does; the counters record it
    "policies.max_error_rows",                      # when a run gives up, not what it writes
    "ner.model", "ner.build_demo_if_missing",       # the tagger counts by its storage ref and tags
    "ner.batch_size",                               # speed
    "classify.model",                               # the classifier counts by its storage ref and labels
    "classify.batch_size",                          # speed
    "reuse",                                        # each distinct sentence computed once: the same outputs
)


def _lookup(raw: dict, dotted: str):
    node = raw
    for key in dotted.split("."):
        node = node.get(key) if isinstance(node, dict) else None
    return node


def fingerprint(config, model, ner: dict | None = None, classify: dict | None = None) -> str:
    """A short hash of exactly what changes the output: the FINGERPRINT_FIELDS of the config, the
    model (storage ref, precision, dimension; None when no embeddings are computed), the NER model
    (storage ref, tags) and the sequence classifier (storage ref, precision, labels)."""
    raw, defaults = config.model_dump(mode="json"), type(config)().model_dump(mode="json")
    what = {
        "config": {f: _lookup(raw, f) for f in FINGERPRINT_FIELDS
                   if f not in ADDED_LATER or _lookup(raw, f) != _lookup(defaults, f)},
        "model": {"storage_ref": model.storage_ref, "precision": model.precision, "dimension": model.dimension}
        if model is not None else None,
        "ner": {k: ner.get(k) for k in ("storage_ref", "tags")} if ner else None,
    }
    if classify:  # absent rather than None: lakes written before classifiers keep their fingerprint
        what["classify"] = {k: classify.get(k) for k in ("storage_ref", "precision", "labels")}
    return hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class InputFile:
    path: str  # relative to the input root
    size: int
    mtime_ms: int


@dataclass(frozen=True)
class Partition:
    values: tuple[tuple[str, str | None], ...]  # (column, value as text) in partition-column order
    signature: str
    files: int = 0

    @property
    def spec(self) -> str:
        """'lang=de/hour=01' (unescaped values; null as Spark names it)."""
        return partition_spec(dict(self.values))

    @property
    def key(self) -> str:
        return json.dumps(dict(self.values), sort_keys=True)

    def as_dict(self) -> dict:
        return {"values": dict(self.values), "signature": self.signature, "files": self.files}


def file_statuses(spark, files: list[str]) -> dict[str, tuple[int, int]]:
    """path -> (size, modification time in ms) of the input files Spark will read."""
    out = {}
    local = [f for f in files if urlparse(f).scheme in ("", "file")]
    for f in local:
        st = os.stat(local_file(f))
        out[f] = (st.st_size, st.st_mtime_ns // 1_000_000)
    remote = [f for f in files if f not in out]
    if remote:  # any Hadoop file system (or, from a Spark Connect client, pyarrow's)
        from pipelines.store.remote_files import files as store

        fs = store(spark, remote[0])
        out.update((f, fs.status(f)) for f in remote)
    return out


def input_partitions(files: dict[str, tuple[int, int]] | list[str], root: str, columns: list[str]) -> list[Partition]:
    """The input's partitions, each with a signature of its files (relative path, size, mtime)."""
    if isinstance(files, list):
        files = {f: (0, 0) for f in files}
    root_key = unquote(urlparse(root.rstrip("/")).path if "://" in root or root.startswith("file:") else
                       os.path.abspath(root))
    by_partition: dict[tuple, list[InputFile]] = defaultdict(list)
    for f, (size, mtime) in files.items():
        path = unquote(urlparse(f).path) if "://" in f or f.startswith("file:") else f
        relative = path.split(root_key, 1)[-1].strip("/")
        segments = dict(seg.split("=", 1) for seg in relative.split("/")[:-1] if "=" in seg)
        key = tuple((c, _unescape(segments.get(c))) for c in columns)
        by_partition[key].append(InputFile(relative, size, mtime))
    return sorted((Partition(k, _signature(v), len(v)) for k, v in by_partition.items()), key=lambda p: p.spec)


def _signature(files: list[InputFile]) -> str:
    text = "\n".join(f"{f.path}\t{f.size}\t{f.mtime_ms}" for f in sorted(files, key=lambda f: f.path))
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def _unescape(value: str | None) -> str | None:
    if value is None or value == HIVE_NULL:
        return None
    return unquote(value)


def parse_partition_filters(specs: list[str], columns: list[str]) -> list[dict[str, str | None]]:
    """['lang=de', 'lang=fr/year=2024'] -> [{'lang': 'de'}, ...]; unknown columns are an error."""
    out = []
    for spec in specs:
        parts = {k: _unescape(v) for k, v in (p.split("=", 1) for p in spec.strip("/").split("/") if "=" in p)}
        if not parts or any(k not in columns for k in parts):
            raise ValueError(f"--partition {spec!r} does not name the input's partition columns "
                             f"({', '.join(columns) or 'none: the input is not partitioned'}); e.g. "
                             f"--partition '{columns[0] if columns else 'lang'}=de'")
        out.append(parts)
    return out


def select(partitions: list[Partition], filters: list[dict[str, str | None]]) -> list[Partition]:
    if not filters:
        return partitions
    return [p for p in partitions if any(all(dict(p.values).get(k) == v for k, v in f.items()) for f in filters)]


def holders(lake, tables: list[str], columns: list[str], partitions: list[Partition]) -> dict[str, set[str]]:
    """Partition key -> the run ids whose rows the lake holds there (in any of ``tables``)."""
    from pyspark.sql import functions as F

    found: dict[str, set[str]] = defaultdict(set)
    for table in tables:
        df = lake.read(table, columns, partitions)
        if df is None:
            continue
        if "run_id" not in df.columns:  # written before rows carried their run: unknown provenance
            df = df.withColumn("run_id", F.lit("<unknown>"))
        for r in df.select(*columns, "run_id").distinct().collect():
            found[json.dumps({c: r[c] for c in columns}, sort_keys=True)].add(r["run_id"])
    return found


def deleted(lake, tables: list[str], columns: list[str], present: list[Partition],
            filters: list[dict[str, str | None]]) -> list[Partition]:
    """The partitions the lake holds (in any of ``tables``) that the input no longer has, among those
    ``filters`` select: a run limited to some partitions says nothing of the others."""
    if not columns:  # an unpartitioned lake is replaced whole: nothing can be left behind
        return []
    have = {p.key for p in present}
    found: dict[str, Partition] = {}
    for table in tables:
        df = lake.read(table)
        if df is None or not set(columns) <= set(df.columns):
            continue
        for r in df.select(*columns).distinct().collect():
            p = Partition(tuple((c, r[c]) for c in columns), signature="")
            if p.key not in have:
                found.setdefault(p.key, p)
    return select(sorted(found.values(), key=lambda p: p.spec), filters)


def pending(partitions: list[Partition], held: dict[str, set[str]], manifests: list[dict],
            pipeline_fingerprint: str) -> list[Partition]:
    """The partitions whose rows in the lake do not all come from one committed run of this pipeline
    over these same files."""
    return [p for p, why in reasons(partitions, held, manifests, pipeline_fingerprint) if why != DONE]


DONE = "done"


def reasons(partitions: list[Partition], held: dict[str, set[str]], manifests: list[dict],
            pipeline_fingerprint: str | None) -> list[tuple[Partition, str]]:
    """Each partition with why an incremental run would annotate it, or ``done``: ``new`` (the lake has
    no rows there), ``mixed runs`` (rows of several runs: one died between tables), ``unknown run`` (no
    manifest for its rows), ``run <status>`` (not committed), ``other pipeline`` (another fingerprint;
    ``pipeline unknown`` when there is none yet, e.g. a demo model still to build), ``changed files``."""
    runs = {m.get("run_id"): m for m in manifests}
    out = []
    for p in partitions:
        owners = held.get(p.key, set())
        run = runs.get(next(iter(owners))) if len(owners) == 1 else None
        recorded = {json.dumps(q["values"], sort_keys=True): q.get("signature")
                    for q in (run or {}).get("input", {}).get("annotated_partitions", [])}
        if not owners:
            why = "new"
        elif len(owners) > 1:
            why = "mixed runs"
        elif run is None:
            why = "unknown run"
        elif run.get("status") != "committed":
            why = f"run {run.get('status')}"
        elif pipeline_fingerprint is None:
            why = "pipeline unknown"
        elif run.get("fingerprint") != pipeline_fingerprint:
            why = "other pipeline"
        elif recorded.get(p.key) != p.signature:
            why = "changed files"
        else:
            why = DONE
        out.append((p, why))
    return out
