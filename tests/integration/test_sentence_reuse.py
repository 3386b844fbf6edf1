"""Sentence reuse in the job (``reuse.sentences``): a lake written with it equals one written without it, on
real text with exact repeats and near-duplicates, and the run manifest accounts for every sentence.

The text is WTForms' message catalogs (real translations, 8 languages; benchmarks/real_text.py), built
into documents where ~40% of the characters repeat earlier sentences, plus documents that differ from
another by one character, one space, case or Unicode normalisation form, which must never be served
from it.
"""

from __future__ import annotations

import unicodedata
from pathlib import Path

import numpy as np
import pytest
from lake_helpers import job_config, read_table, write_corpus

from benchmarks.real_text import catalog_sentences, with_repeats

LANGUAGES = ("ar", "de", "es", "fr", "it", "ja", "ru", "zh")
VECTOR_TOLERANCE = 1e-6


def _corpus() -> dict:
    wtforms = pytest.importorskip("wtforms")
    sentences = [(lang, text) for lang, text in catalog_sentences(Path(wtforms.__file__).parent / "locale")
                 if lang.split("_")[0] in LANGUAGES]
    built = with_repeats(sentences, total_chars=3200, repeated_share=0.4, seed=7)
    assert 0.35 < built.repeated_share < 0.45
    corpus: dict[str, list] = {}
    for doc_id, lang, text in built.documents:
        corpus.setdefault(lang, []).append((doc_id, text))
    first = next(text for _, _, text in built.documents  # one that case and normalisation both change
                 if unicodedata.normalize("NFD", text) != text and text.upper() != text)
    near = [first.replace(first[3], "x", 1), first.replace(" ", "  ", 1), first.upper(),
            unicodedata.normalize("NFD", first), first + " "]
    assert len({first, *near}) == len(near) + 1
    corpus["xx"] = [(f"near-{i}", text) for i, text in enumerate(near)] + [("empty", ""), ("null", None)]
    return corpus


@pytest.fixture(scope="module")
def lakes(spark, tmp_path_factory, demo_bundle):
    from pipelines.ner.demo import build_demo_ner
    from pipelines.run.job import run_annotate

    root = tmp_path_factory.mktemp("reuse")
    corpus = write_corpus(root / "corpus", _corpus())
    build_demo_ner(root / "ner", demo_bundle.path, epochs=3, log=None)
    results = {}
    # worker: the workers of the executor share one disk cache; run: without it, so that the shared pass and
    # each worker's own memory are what serves (the cache outlives a run: it would serve run from worker's)
    for mode, executor_cache_mb in (("off", 0), ("worker", 1024), ("run", 0)):
        config = job_config(root / mode, corpus, demo_bundle.path, reuse__sentences=mode, ner__model=str(root / "ner"),
                            ner__include_confidence=True, reuse__executor_cache_mb=executor_cache_mb)
        results[mode] = run_annotate(config, spark=spark)
    return results


def _tokens(spark, result):
    rows = read_table(spark, result.tables["token_embeddings"]).drop("run_id").orderBy("doc_id", "token_index")
    return [r.asDict(recursive=True) for r in rows.collect()]


@pytest.mark.parametrize("mode", ["run", "worker"])
def test_lake_with_reuse_equals_lake_without(spark, lakes, mode):
    plain, reused = _tokens(spark, lakes["off"]), _tokens(spark, lakes[mode])
    assert len(plain) == len(reused) > 500
    worst = 0.0
    for a, b in zip(plain, reused):
        worst = max(worst, float(np.abs(np.asarray(a.pop("embedding")) - np.asarray(b.pop("embedding"))).max()))
        confidence_a, confidence_b = a.pop("ner_confidence"), b.pop("ner_confidence")
        assert (confidence_a is None) == (confidence_b is None)
        assert confidence_a is None or abs(confidence_a - confidence_b) <= 1e-6
        assert a == b  # ids, partitions, sentences, offsets, tokens, tags, chunks
    assert worst <= VECTOR_TOLERANCE
    for table in ("entities", "quarantine"):
        a = read_table(spark, lakes["off"].tables[table]).drop("run_id", "quarantined_at")
        b = read_table(spark, lakes[mode].tables[table]).drop("run_id", "quarantined_at")
        assert sorted(map(str, a.collect())) == sorted(map(str, b.collect())) and a.count() > 0
    counts = [{k: v for k, v in lakes[m].manifest["counts"].items() if k != "embedder"} for m in ("off", mode)]
    assert counts[0] == counts[1]  # rows, tokens, entities, quarantine (the model's work is what differs)


def test_manifest_accounts_for_every_sentence(spark, lakes):
    m = lakes["run"].manifest
    reuse = m["reuse"]
    # the ground truth, counted here from the token rows the run wrote (sentence numbers per document)
    tokens = _tokens(spark, lakes["run"])
    occurrences: dict[tuple, list] = {}
    for t in tokens:
        occurrences.setdefault((t["doc_id"], t["sentence"]), []).append(t)
    assert reuse["sentences_seen"] == reuse["sentences"] == len(occurrences)
    assert reuse["served_from_lake"] == 0
    assert reuse["served_from_run"] + reuse["served_from_worker"] + reuse["computed_in_pass"] == len(occurrences)
    assert reuse["repeated_sentences"] > 0 and reuse["shared_sentences"] == reuse["repeated_sentences"]
    # each repeated sentence computed once, in the shared pass; its every occurrence served from the shared set
    assert reuse["computed_in_pass"] == reuse["distinct_sentences"] - reuse["repeated_sentences"]
    assert reuse["served_from_run"] == reuse["sentences"] - reuse["computed_in_pass"]
    assert 0.35 < reuse["repeated_char_share"] < 0.5
    pieces_without = lakes["off"].manifest["embedder"]["pieces"]
    assert reuse["wordpieces_computed"] < 0.75 * pieces_without
    assert reuse["reuse_share"] == pytest.approx(reuse["served_from_run"] / reuse["sentences"], abs=1e-4)
    assert "reuse" not in lakes["off"].manifest
    assert m["timings"]["reuse_s"] > 0


def test_workers_share_what_they_computed(lakes):
    """worker: the two Python workers (local[2]) compute each distinct sentence about once between them, through
    their executor's cache (each on its own: 100 of these 81 distinct sentences; a worker computes a sentence
    another one claimed if the claimer has not finished by then, hence the 10%)."""
    worker, run = lakes["worker"].manifest["reuse"], lakes["run"].manifest["reuse"]
    assert worker["served_from_worker"] + worker["computed_in_pass"] == worker["sentences_seen"] == run["sentences"]
    assert run["distinct_sentences"] <= worker["computed_in_pass"] <= 1.1 * run["distinct_sentences"]


def test_the_key_pass_counts_in_the_runs_partitions(spark, demo_bundle, tmp_path):
    """The key pass's counts are persisted and read by several jobs: in as many partitions as the run asks
    (Spark plans a persisted shuffle with spark.sql.shuffle.partitions, 200, and never coalesces it)."""
    from pipelines.run.assemble import build_stages
    from pipelines.run.reuse import repetition, sentence_counts

    config = job_config(tmp_path / "lake", tmp_path / "corpus", demo_bundle.path)
    stages = build_stages(config, str(demo_bundle.path), ["doc_id", "text"])
    kept = spark.createDataFrame([("a", "Das ist gut. Hallo Welt."), ("b", "Das ist gut. Noch einer."),
                                  ("c", "Hallo Welt.")], "doc_id string, text string")
    counts = sentence_counts(kept, stages, partitions=3).persist()
    try:
        assert counts.rdd.getNumPartitions() == 3
        assert {r["sentence"]: r["n"] for r in counts.collect()} == {
            "Das ist gut.": 2, "Hallo Welt.": 2, "Noch einer.": 1}
        assert repetition(counts)["repeated_sentences"] == 2
    finally:
        counts.unpersist()


# --- across runs: the lake's sentence cache ----------------------------------------------------------
def _two_days() -> tuple[dict, set, set]:
    """day=1: documents of catalog sentences; day=2: documents whose sentences are ~70% day 1's; and day 2's
    distinct sentences that day 1 had, and those it did not."""
    import random

    wtforms = pytest.importorskip("wtforms")
    sentences = [t for lang, t in catalog_sentences(Path(wtforms.__file__).parent / "locale")
                 if lang.split("_")[0] in LANGUAGES]
    rng = random.Random(5)
    day1, fresh = sentences[:60], sentences[60:]
    day1_docs = [(f"a{i}", " ".join(day1[i:i + 3])) for i in range(0, len(day1), 3)]
    day2_docs, picked = [], []
    for i in range(20):
        document = [rng.choice(day1) if rng.random() < 0.7 else fresh.pop() for _ in range(3)]
        day2_docs.append((f"b{i}", " ".join(document)))
        picked += document
    return {"1": day1_docs, "2": day2_docs}, set(picked) & set(day1), set(picked) - set(day1)


def test_sentence_cache_serves_a_later_run_and_evicts_what_no_recent_run_used(spark, tmp_path, demo_bundle):
    from pipelines.run.job import run_annotate
    from pipelines.run.reuse import SENTENCE_CACHE

    corpus = tmp_path / "corpus"
    days, old, new = _two_days()
    for day, docs in days.items():
        write_corpus(corpus / f"day={day}", {"x": docs})

    def run(lake, day, **settings):
        return run_annotate(job_config(tmp_path / lake, corpus, demo_bundle.path, partitions=[f"day={day}"],
                                       **settings), spark=spark)

    first = run("lake", "1", reuse__sentences="lake")
    assert first.manifest["reuse"]["served_from_lake"] == 0 and first.manifest["reuse"]["cache_added"] > 0
    second = run("lake", "2", reuse__sentences="lake", reuse__cache_runs=1)
    plain = run("plain", "2", reuse__sentences="off")
    reuse = second.manifest["reuse"]
    # each of day 2's sentences that day 1 had is read from the cache, the others computed once and added; none
    # is computed in the model pass (an occurrence may still come from the worker's memory of day 1)
    assert (reuse["cache_hits"], reuse["cache_added"]) == (len(old), len(new)) and len(old) > len(new) > 0
    assert reuse["served_from_lake"] > 0 and reuse["computed_in_pass"] == 0
    assert reuse["served_from_lake"] + reuse["served_from_run"] + reuse["served_from_worker"] \
        + reuse["computed_in_pass"] == reuse["sentences_seen"]
    a = [t for t in _tokens(spark, second) if t["day"] == "2"]
    b = _tokens(spark, plain)
    assert len(a) == len(b) > 100
    for x, y in zip(a, b):
        assert np.abs(np.asarray(x.pop("embedding")) - np.asarray(y.pop("embedding"))).max() <= VECTOR_TOLERANCE
        assert x == y
    # cache_runs 1: what the second run did not use is gone; what it used or added stays. Entries are written
    # once: those it used are day 1's, each with a use row of the second run
    cache = read_table(spark, str(tmp_path / "lake" / SENTENCE_CACHE))
    entries = {r["sentence"]: r["created_run"] for r in cache.where("pieces IS NOT NULL").collect()}
    uses = [(r["sentence"], r["last_used_run"]) for r in cache.where("pieces IS NULL").collect()]
    assert entries == {**{s: first.run_id for s in old}, **{s: second.run_id for s in new}}
    assert sorted(uses) == sorted((s, second.run_id) for s in old)
    # the report shows the cache's size and each run's hit rate
    from pipelines.tools.report import summary_lines, write_report

    page, data = write_report(spark, str(tmp_path / "lake"))
    assert f"  {SENTENCE_CACHE}: {len(entries):,} sentences" in "\n".join(summary_lines(page, data))
    html = Path(page).read_text()
    hit_rate = reuse["served_from_lake"] / reuse["sentences_seen"]
    assert "Sentence reuse" in html and f"<td>{hit_rate:.1%}</td>" in html
    # another pipeline (another fingerprint) never reads these entries
    other = run("lake", "2", reuse__sentences="lake", stages__embeddings__max_sentence_length=64, full_refresh=True)
    assert other.manifest["reuse"]["served_from_lake"] == 0
    assert other.manifest["fingerprint"] != second.manifest["fingerprint"]


def test_eviction_keeps_what_a_recent_run_wrote_or_used_and_nothing_else(spark, tmp_path):
    """cache_runs 2 after runs r1..r3, evicting as r4: the entries written or used by r3 or r4 stay, each
    entry written once (a use is a row of its own); older use rows go; another fingerprint ages out."""
    from pipelines.run.reuse import SENTENCE_CACHE, SentenceCache
    from pipelines.store.lake import Lake

    def entry(fp, text, run):
        return (fp, text, bytearray(b"x"), 0, run, run)

    def use(text, run):
        return ("fp", text, None, None, run, run)

    rows = [entry("fp", "A", "r1"), use("A", "r3"),  # used by r3: stays; its use row too
            entry("fp", "B", "r1"), use("B", "r2"),  # last used by r2: gone
            entry("fp", "C", "r2"),  # written by r2, never used: gone
            entry("fp", "D", "r4"),  # written by r4: stays
            entry("fp", "E", "r1"), use("E", "r2"), use("E", "r4"),  # used by r4: stays; r2's use row goes
            entry("other", "A", "r1")]  # another pipeline's: ages out
    schema = "fingerprint string, sentence string, payload binary, pieces long, created_run string, last_used_run string"
    lake = Lake(spark, str(tmp_path / "lake"), "delta", 128)
    spark.createDataFrame(rows, schema).write.format("delta").partitionBy("fingerprint").save(lake.path(SENTENCE_CACHE))
    SentenceCache(lake, "fp", "r4", cache_runs=2).evict(["r1", "r2", "r3"])
    left = {(r["fingerprint"], r["sentence"], r["pieces"] is None, r["last_used_run"])
            for r in lake.read(SENTENCE_CACHE).collect()}
    assert left == {("fp", "A", False, "r1"), ("fp", "A", True, "r3"), ("fp", "D", False, "r4"),
                    ("fp", "E", False, "r1"), ("fp", "E", True, "r4")}
