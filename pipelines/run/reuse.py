"""Each distinct sentence through the model once per run: the driver side (the worker side, and why reuse is
exact: :mod:`pipelines.annotate.reuse`).

``reuse.sentences: run`` adds two passes before the model pass, both over text:

1. the *key pass* runs the text stages alone over the rows to annotate and counts each sentence's
   occurrences (a shuffle of sentence texts, which cost ~1% of their vectors);
2. the *shared pass* runs the model stages once on each sentence that occurs more than once (the most
   repeated first, within ``reuse.max_shared_mb``); the driver collects the outputs into one Arrow file,
   which goes to the executors the way a model does (read in place on a local master, a Spark archive or
   artifact on a cluster).

The model pass then serves every occurrence of those sentences from the file, and each worker serves
repeats of the sentences it computed itself from its own memory (``reuse.worker_cache_mb``). Vectors cross
no shuffle: only the shared sentences' outputs travel, once, to the driver and out to the executors.

``worker`` skips both passes (each worker still computes a sentence once); ``auto`` chooses ``run`` from
``reuse.run_min_chars`` characters of input, where the two passes cost less than they save (measured:
docs/performance.md).
"""

from __future__ import annotations

import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.annotate.dataframes import sentence_occurrences, shared_sentence_entries
from pipelines.annotate.reuse import ANN_BYTES, write_shared
from pipelines.cache import cache_dir


@dataclass
class RunReuse:
    mode: str  # "off" | "worker" | "run"
    worker_cache_mb: float = 0.0
    shared: str | None = None  # the shared sentences' directory as the executors read it
    local: Path | None = None  # the driver's copy (removed after the run)
    found: dict = field(default_factory=dict)  # the key pass's counts and the shared pass's cost

    def for_pass(self) -> tuple[str | None, float] | None:
        """What :func:`pipelines.annotate.dataframes.with_token_embeddings` takes as ``reuse``."""
        return None if self.mode == "off" else (self.shared, self.worker_cache_mb)

    def close(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)

    def accounting(self, counters: dict | None, pieces_in_pass: int | None) -> dict:
        """The manifest's ``reuse`` block: sentences seen, distinct, served from the run's shared set or the
        workers' memory, and WordPieces computed (both passes)."""
        counters = counters or {}
        seen = int(counters.get("sentences", 0))
        from_run, from_worker = int(counters.get("reused_run", 0)), int(counters.get("reused_worker", 0))
        shared_pieces = int(self.found.get("shared_pieces", 0))
        return {
            "mode": self.mode, **{k: v for k, v in self.found.items() if k != "shared_pieces"},
            "sentences_seen": seen, "served_from_run": from_run, "served_from_worker": from_worker,
            "served_from_lake": 0, "computed_in_pass": seen - from_run - from_worker,
            "reuse_share": round((from_run + from_worker) / seen, 4) if seen else 0.0,
            "wordpieces_computed": None if pieces_in_pass is None else pieces_in_pass + shared_pieces,
        }


def mode_for(settings, input_chars: int, native_pass: bool) -> str:
    """The reuse a run gets: none without the native token pass (the sparknlp engine, or the annotations
    table, whose pass is the stages' own), else what ``reuse.sentences`` says, ``auto`` by input size."""
    if not native_pass or settings.sentences == "off":
        return "off"
    if settings.sentences == "auto":
        return "run" if input_chars >= settings.run_min_chars else "worker"
    return settings.sentences


def sentence_counts(kept, stages):
    """One row per distinct sentence of ``kept``: ``sentence``, ``n`` (occurrences), ``tokens``."""
    from pyspark.sql import functions as F

    return kept.transform(sentence_occurrences(stages)).groupBy("sentence").agg(
        F.count(F.lit(1)).alias("n"), F.first("tokens").alias("tokens"))


def repetition(counts) -> dict:
    """How much of the text repeats: sentences, distinct sentences, the share of sentence characters in
    occurrences after a sentence's first, and the sentences (and their tokens) that occur more than once."""
    from pyspark.sql import functions as F

    chars = F.length("sentence")
    row = counts.agg(F.sum("n").alias("seen"), F.count(F.lit(1)).alias("distinct"),
                     F.sum(F.col("n") * chars).alias("chars"), F.sum((F.col("n") - 1) * chars).alias("repeated"),
                     F.sum(F.when(F.col("n") > 1, 1).otherwise(0)).alias("shared"),
                     F.sum(F.when(F.col("n") > 1, F.col("tokens")).otherwise(0)).alias("shared_tokens")).first()
    seen, total = int(row["seen"] or 0), int(row["chars"] or 0)
    return {"sentences": seen, "distinct_sentences": int(row["distinct"] or 0),
            "repeated_char_share": round(int(row["repeated"] or 0) / total, 4) if total else 0.0,
            "repeated_sentences": int(row["shared"] or 0), "repeated_tokens": int(row["shared_tokens"] or 0)}


def prepare(config, kept, stages, dimension: int, input_chars: int, run_id: str, parallelism: int) -> RunReuse:
    """The run's reuse: for ``run``, the key pass and the shared pass, their file ready for the executors."""
    settings = config.reuse
    mode = mode_for(settings, input_chars, native_pass=stages is not None and not config.output.annotations)
    reuse = RunReuse(mode, settings.worker_cache_mb)
    if mode != "run":
        return reuse
    from pyspark.sql import functions as F

    counts = sentence_counts(kept, stages).persist()
    try:
        reuse.found = repetition(counts)
        candidates = counts.where(F.col("n") > 1)
        # what one shared token costs in the file: its vector (float32) plus each step's annotation
        per_token = 4 * dimension + 3 * ANN_BYTES
        budget = int(settings.max_shared_mb * 1024 * 1024 / per_token)
        wanted = reuse.found["repeated_tokens"]
        if wanted > budget:  # the most repeated first: (occurrences - 1) x tokens saved
            keep = int(reuse.found["repeated_sentences"] * budget / wanted)
            candidates = candidates.orderBy(((F.col("n") - 1) * F.col("tokens")).desc()).limit(keep)
        if not reuse.found["repeated_sentences"] or budget == 0:
            return reuse
        rows = candidates.repartition(max(1, parallelism)).transform(
            shared_sentence_entries(stages, config.stages.embeddings.max_tokens_per_chunk)).collect()
    finally:
        counts.unpersist()
    reuse.found["shared_pieces"] = sum(r["pieces"] for r in rows)
    local = cache_dir() / "reuse" / f"{run_id}-{uuid.uuid4().hex[:8]}"
    written = write_shared(local, ((r["sentence"], r["payload"]) for r in rows if r["sentence"] is not None))
    reuse.found.update(shared_sentences=written["sentences"], shared_mb=round(written["bytes"] / 2**20, 1))
    reuse.local = local
    from pipelines.store.model_paths import for_executors

    reuse.shared = for_executors(local.as_uri(), local)
    return reuse
