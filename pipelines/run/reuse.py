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
repeats of the sentences it or another worker of its executor computed from its own memory
(``reuse.worker_cache_mb``) and the executor's disk (``reuse.executor_cache_mb``). Vectors cross
no shuffle: only the shared sentences' outputs travel, once, to the driver and out to the executors.

``worker`` skips both passes (each executor still computes a sentence about once); ``auto`` chooses ``worker`` on
one executor (a local master) and, on a cluster, ``run`` from ``reuse.run_min_chars`` characters of input
(:func:`mode_for`; measured: docs/performance.md).
"""

from __future__ import annotations

import json
import shutil
import uuid
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.annotate.dataframes import sentence_occurrences, shared_sentence_entries
from pipelines.annotate.reuse import ANN_BYTES, shared_table, write_shared
from pipelines.cache import cache_dir
from pipelines.spark.session import collect_arrow, temporary_conf


@dataclass
class RunReuse:
    mode: str  # "off" | "worker" | "run" | "lake"
    worker_cache_mb: float = 0.0
    executor_cache_mb: float = 0.0
    fingerprint: str | None = None  # the run's pipeline fingerprint: names the executors' caches
    shared: str | None = None  # the shared sentences' directory as the executors read it
    local: Path | None = None  # the driver's copy (removed after the run)
    found: dict = field(default_factory=dict)  # the key pass's counts and the shared pass's cost

    @classmethod
    def of(cls, mode: str, settings, fingerprint: str | None) -> "RunReuse":
        return cls(mode, settings.worker_cache_mb, settings.executor_cache_mb, fingerprint)

    def for_pass(self) -> tuple | None:
        """What :func:`pipelines.annotate.dataframes.with_token_embeddings` takes as ``reuse``: the
        :class:`pipelines.annotate.reuse.MemoSpec` fields after the steps."""
        return None if self.mode == "off" else (self.shared, self.worker_cache_mb, self.executor_cache_mb,
                                                self.fingerprint)

    def close(self) -> None:
        if self.local is not None:
            shutil.rmtree(self.local, ignore_errors=True)

    def accounting(self, counters: dict | None, pieces_in_pass: int | None) -> dict:
        """The manifest's ``reuse`` block: sentences seen, distinct, served from the run's shared set or the
        workers' memory, and WordPieces computed (both passes)."""
        counters = counters or {}
        seen = int(counters.get("sentences", 0))
        from_run, from_worker = int(counters.get("reused_run", 0)), int(counters.get("reused_worker", 0))
        from_lake = int(counters.get("reused_lake", 0))
        shared_pieces = int(self.found.get("shared_pieces", 0))
        return {
            "mode": self.mode, **{k: v for k, v in self.found.items() if k != "shared_pieces"},
            "sentences_seen": seen, "served_from_run": from_run, "served_from_worker": from_worker,
            "served_from_lake": from_lake, "computed_in_pass": seen - from_run - from_worker - from_lake,
            "reuse_share": round((from_run + from_worker + from_lake) / seen, 4) if seen else 0.0,
            "wordpieces_computed": None if pieces_in_pass is None else pieces_in_pass + shared_pieces,
        }


def mode_for(settings, input_chars: int, native_pass: bool, one_executor: bool = False) -> str:
    """The reuse a run gets: none without the native token pass (the sparknlp engine, or the annotations
    table, whose pass is the stages' own), else what ``reuse.sentences`` says. ``auto``: ``worker`` on one
    executor (a local master), whose workers already compute each sentence about once between them (the key
    and shared passes there cost more than they save: docs/performance.md); on a cluster, ``run`` from
    ``run_min_chars`` characters, where each executor would otherwise compute a repeated sentence again."""
    if not native_pass or settings.sentences == "off":
        return "off"
    if settings.sentences == "auto":
        return "run" if input_chars >= settings.run_min_chars and not one_executor else "worker"
    return settings.sentences  # run, worker, or lake (run, plus the lake's sentence cache)


def sentence_counts(kept, stages, cached_keys=None, partitions: int = 0):
    """One row per distinct sentence of ``kept``: ``sentence``, ``n`` (occurrences), ``tokens``; with
    ``cached_keys`` (rows of ``sentence``: the texts the lake's cache holds), also ``cached``, whether it holds
    this one, found in the same shuffle (not a join after it). ``partitions``: the shuffle's, where the counts
    are persisted. Spark plans a persisted DataFrame's shuffle with spark.sql.shuffle.partitions (200) and
    adaptive execution does not coalesce it (3.5 and 4.x alike), so each of the jobs over the counts ran 200
    tasks: ~2 s a job on 2 cores for a few thousand sentences."""
    from pyspark.sql import functions as F

    occurrences = kept.transform(sentence_occurrences(stages))
    if cached_keys is None:
        return _by_sentence(occurrences, partitions).agg(F.count(F.lit(1)).alias("n"),
                                                         F.first("tokens").alias("tokens"))
    seen = occurrences.select("sentence", "tokens", F.lit(1).alias("n"), F.lit(False).alias("cached"))
    held = cached_keys.select("sentence", F.lit(None).cast("int").alias("tokens"), F.lit(0).alias("n"),
                              F.lit(True).alias("cached"))
    return _by_sentence(seen.unionByName(held), partitions).agg(
        F.sum("n").alias("n"), F.first("tokens", ignorenulls=True).alias("tokens"),
        F.max("cached").alias("cached")).where(F.col("n") > 0)


def _by_sentence(rows, partitions: int):
    """``rows`` grouped by sentence, in ``partitions`` partitions (0: Spark's choice)."""
    return (rows.repartition(partitions, "sentence") if partitions else rows).groupBy("sentence")


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


def prepare(config, mode: str, kept, stages, dimension: int, run_id: str, parallelism: int,
            fingerprint: str, cache=None) -> RunReuse:
    """The run's reuse in ``mode`` (:func:`mode_for`): for ``run`` and ``lake``, the key pass and the shared
    pass, their file ready for the executors. ``cache``: the lake's :class:`SentenceCache` (``lake`` mode)."""
    settings = config.reuse
    reuse = RunReuse.of(mode, settings, fingerprint)
    if mode not in ("run", "lake"):
        return reuse
    counts = sentence_counts(kept, stages, cache.keys() if mode == "lake" else None, max(1, parallelism)).persist()
    try:
        reuse.found = repetition(counts)
        # what one shared token costs in the file: its vector (float32) plus each step's annotation
        budget = int(settings.max_shared_mb * 1024 * 1024 / (4 * dimension + 3 * ANN_BYTES))
        entries = shared_sentence_entries(stages, config.stages.embeddings.max_tokens_per_chunk)
        if mode == "lake":
            tables = cache.exchange(counts, entries, budget, parallelism, reuse.found)
        else:
            tables = _repeated_entries(counts, entries, budget, parallelism, reuse.found)
    finally:
        counts.unpersist()
    if not sum(t.num_rows for t in tables):
        return reuse
    local = cache_dir() / "reuse" / f"{run_id}-{uuid.uuid4().hex[:8]}"
    written = write_shared(local, tables)
    reuse.found.update(shared_sentences=written["sentences"], shared_mb=round(written["bytes"] / 2**20, 1))
    reuse.local = local
    from pipelines.store.model_paths import for_executors

    reuse.shared = for_executors(local.as_uri(), local)
    return reuse


def _most_repeated(rows, tokens_wanted: int, count: int, budget: int, weight):
    """``rows`` (sentence, n, tokens), cut to about ``budget`` tokens, those of the largest ``weight`` first."""
    if tokens_wanted <= budget:
        return rows
    return rows.orderBy(weight.desc()).limit(int(count * budget / tokens_wanted))


def _repeated_entries(counts, entries, budget: int, parallelism: int, found: dict) -> list:
    """``run``: the sentences that occur more than once, computed once each (the most repeated first), as
    :func:`pipelines.annotate.reuse.shared_table` tables."""
    from pyspark.sql import functions as F

    if not found["repeated_sentences"] or budget == 0:
        return []
    repeated = _most_repeated(counts.where(F.col("n") > 1), found["repeated_tokens"], found["repeated_sentences"],
                              budget, (F.col("n") - 1) * F.col("tokens"))
    computed = collect_arrow(repeated.repartition(max(1, parallelism)).transform(entries))
    found["shared_pieces"] = pieces(computed)
    return [shared_table(computed.filter(computed["sentence"].is_valid()), from_lake=False)]


def pieces(entries) -> int:
    """The WordPieces the model computed for ``entries`` (an Arrow table with ``pieces``)."""
    import pyarrow.compute as pc

    return int(pc.sum(entries["pieces"]).as_py() or 0) if entries.num_rows else 0


# --- across runs: the lake's sentence cache ------------------------------------------------------------
SENTENCE_CACHE = "sentence_cache"  # a table of the lake (Delta), beside the others


class SentenceCache:
    """``reuse.sentences: lake``: the lake's ``sentence_cache`` table (Delta, partitioned by the pipeline's
    fingerprint) holds, per distinct sentence text, what the model stages produced for it (an *entry*: the
    encoded outputs, float32 vectors, tags, chunks, with ``pieces`` the WordPieces it cost), and, per run that
    read an entry, a *use* row (the text and the run; no payload, ``pieces`` null).

    A run reads the entries of its sentences that the cache holds for its fingerprint (the keys it needs
    only: a semi-join on text, then the entries of those keys), computes the others in the shared pass, and
    appends its new entries and its use rows in one commit. After its own tables are committed it removes
    what none of the last ``reuse.cache_runs`` runs wrote or used (one commit; :meth:`evict`). Each commit
    carries the run id, as the other tables' do. Entries are written once and never rewritten to record a
    use: a use row costs a text, where stamping the entry would rewrite its vectors. A run adds at most
    ``reuse.max_shared_mb`` of entries, so the table holds at most ``cache_runs`` x ``max_shared_mb`` (plus
    the use rows, and the files Delta keeps for time travel until VACUUM). Another fingerprint never
    matches: its entries age out."""

    def __init__(self, lake, fingerprint: str, run_id: str, cache_runs: int):
        self.lake, self.fingerprint, self.run_id, self.cache_runs = lake, fingerprint, run_id, cache_runs

    @property
    def path(self) -> str:
        return self.lake.path(SENTENCE_CACHE)

    def _metadata(self) -> str:
        return json.dumps({"corpus_nlp_run_id": self.run_id})

    def _entries(self):
        """This fingerprint's entries (not the use rows), or None before the table exists."""
        from pyspark.sql import functions as F

        table = self.lake.read(SENTENCE_CACHE)
        return None if table is None else table.where(
            (F.col("fingerprint") == self.fingerprint) & F.col("pieces").isNotNull())

    def keys(self):
        """The texts this fingerprint's entries hold (rows of ``sentence``; the text column only), or None."""
        cached = self._entries()
        return None if cached is None else cached.select("sentence")

    def exchange(self, counts, entries, budget: int, parallelism: int, found: dict) -> list:
        """The run's shared set, as :func:`pipelines.annotate.reuse.shared_table` tables: the cached entries of
        its sentences, then its new sentences computed and added to the cache (the most repeated first),
        within ``budget`` tokens in all."""
        from pyspark import StorageLevel
        from pyspark.sql import functions as F

        weight = F.col("n") * F.col("tokens")
        if "cached" not in counts.columns:  # no cache yet
            hits, new = None, counts
            hit, fresh = (0, 0), _sizes(counts)
        else:  # both sides' sizes in one pass over the counts
            sizes = {r["cached"]: (int(r["n"]), int(r["tokens"] or 0)) for r in counts.groupBy("cached").agg(
                F.count(F.lit(1)).alias("n"), F.sum("tokens").alias("tokens")).collect()}
            hit, fresh = sizes.get(True, (0, 0)), sizes.get(False, (0, 0))
            hits, new = counts.where("cached").drop("cached"), counts.where(~F.col("cached")).drop("cached")
        tables, used = [], None
        if hits is not None and hit[0]:
            used = _most_repeated(hits, hit[1], hit[0], budget, weight).select("sentence")
            # read before this run's append: the entries as the run found them
            read = shared_table(collect_arrow(self._entries().join(used, "sentence", "left_semi")
                                              .select("sentence", "payload")), from_lake=True)
            tables.append(read)
            found["cache_hits"] = read.num_rows
        room = max(budget - min(hit[1], budget), 0)
        computed = None
        if fresh[0] and room:
            computed = _most_repeated(new, fresh[1], fresh[0], room, weight).repartition(max(1, parallelism)) \
                .transform(entries).where(F.col("sentence").isNotNull()).persist(StorageLevel.MEMORY_AND_DISK)
        try:
            if computed is not None:
                # collected (the shared pass runs here, once) before the append: the append's commit makes
                # Spark recompute whatever cached plan read this table, which would now find these texts in it
                added = collect_arrow(computed.select("sentence", "payload", "pieces"))
                found["shared_pieces"] = pieces(added)
                found["cache_added"] = added.num_rows
                tables.append(shared_table(added, from_lake=False))
            self._append(computed, used)
        finally:
            if computed is not None:
                computed.unpersist()
        found.setdefault("cache_hits", 0)
        found.setdefault("cache_added", 0)
        return tables

    def _append(self, computed, used) -> None:
        """The new entries (``computed``, persisted: already collected) and a use row per entry read
        (``used``), in one commit."""
        from pyspark.sql import functions as F

        from pipelines.store.lake import delta_errors, plain_columns_conf

        parts = []
        if computed is not None:
            parts.append(computed.select(F.lit(self.fingerprint).alias("fingerprint"), "sentence", "payload",
                                         "pieces"))
        if used is not None:
            parts.append(used.coalesce(1).select(
                F.lit(self.fingerprint).alias("fingerprint"), "sentence", F.lit(None).cast("binary").alias("payload"),
                F.lit(None).cast("long").alias("pieces")))
        if not parts:
            return
        rows = parts[0] if len(parts) == 1 else parts[0].unionByName(parts[1])
        rows = rows.withColumns({"created_run": F.lit(self.run_id), "last_used_run": F.lit(self.run_id)})
        with delta_errors(self.path, self.run_id), temporary_conf(self.lake.spark, plain_columns_conf(["payload"])):
            rows.write.format("delta").mode("append").partitionBy("fingerprint") \
                .option("userMetadata", self._metadata()).save(self.path)

    def evict(self, run_ids: list[str]) -> None:
        """Remove what none of the last ``cache_runs`` runs (``run_ids``: the lake's committed runs) wrote or
        used, in one commit: the entries of texts with no row that recent, and the use rows older than that
        (a newer row of their text now says it is in use). Nothing before there are that many runs."""
        from pyspark.sql import functions as F

        from pipelines.store.delta_sql import USER_METADATA, absolute, quoted
        from pipelines.store.lake import delta_errors

        recent = sorted(set(run_ids) | {self.run_id})
        if len(recent) <= self.cache_runs or not self.lake.has(SENTENCE_CACHE):
            return
        oldest_kept = recent[-self.cache_runs]
        aging = self.lake.read(SENTENCE_CACHE).groupBy("fingerprint", "sentence").agg(
            F.max("last_used_run").alias("latest"), F.min("last_used_run").alias("earliest")) \
            .where(F.col("earliest") < oldest_kept)
        if aging.isEmpty():
            return
        view = f"corpus_nlp_cache_aging_{uuid.uuid4().hex[:12]}"
        aging.createOrReplaceTempView(view)
        spark = self.lake.spark
        try:
            with delta_errors(self.path, self.run_id), temporary_conf(spark, {USER_METADATA: self._metadata()}):
                spark.sql(f"MERGE INTO delta.{quoted(absolute(self.path))} AS c USING {view} AS a "
                          "ON c.fingerprint = a.fingerprint AND c.sentence = a.sentence "
                          f"WHEN MATCHED AND c.last_used_run < '{oldest_kept}' "
                          f"AND (c.pieces IS NULL OR a.latest < '{oldest_kept}') THEN DELETE")
        finally:
            spark.catalog.dropTempView(view)


def _sizes(rows) -> tuple[int, int]:
    """(sentences, tokens) of ``rows``; (0, 0) for None."""
    from pyspark.sql import functions as F

    if rows is None:
        return 0, 0
    row = rows.agg(F.count(F.lit(1)).alias("n"), F.sum("tokens").alias("tokens")).first()
    return int(row["n"] or 0), int(row["tokens"] or 0)
