"""Throughput of the fine-tuned classifier stages, and their int8 labels against fp32's.

    python -m benchmarks.classifiers [--sentences 1000] [--out benchmarks/results]   # throughput (make bench)
    python -m benchmarks.classifiers --agreement                                   # int8 vs fp32 labels

Models: random weights of exactly the shapes users fine-tune, built once under ``models/`` from seeded
Hugging Face checkpoints by ``prepare-model`` (fp32, and int8 from the same checkpoint):

  tagger     BertForTokenClassification, bert-base-multilingual-cased's shape (12 layers, 768 wide,
             119,547 pieces), 9 CoNLL tags;
  sentiment  DistilBertForSequenceClassification, distilbert-base-multilingual-cased's shape (6 layers,
             768 wide, 119,547 pieces), 5 labels ("1 star".."5 stars").

Throughput: ``pipelines.run.job.run_annotate`` end to end (Parquet in, Delta lake out) on the benchmark corpus
(benchmarks.corpus), ``output.embeddings: false`` so the classifier is the only model: the tagger as
``ner.model`` (tokens/s, tokens being the token table's rows), the sentiment model as ``classify.model``
over documents (documents/s). One Spark session for all phases, warmed up by an untimed small run.

Agreement (``--agreement``): the share of fp32 labels that the int8 model gives too, on the project's
multilingual sample corpus (pipelines/resources/sample_corpus, 11 languages), through the stages
themselves: per token for the tagger, per document and per sentence for the sentiment model. Random
weights leave small margins between labels (a fine-tuned model's are larger), so the mean top-1 margin
of fp32 is printed next to each figure.
"""

from __future__ import annotations

import argparse
import json
import shutil
import time
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
NER_LABELS = ["O", "B-PER", "I-PER", "B-ORG", "I-ORG", "B-LOC", "I-LOC", "B-MISC", "I-MISC"]
SENTIMENT_LABELS = ["1 star", "2 stars", "3 stars", "4 stars", "5 stars"]
DISTILBERT_MULTILINGUAL_SHAPE = dict(n_layers=6, dim=768, n_heads=12, hidden_dim=3072, max_position_embeddings=512)
MODELS = {"tagger": ("BertForTokenClassification", NER_LABELS),
          "sentiment": ("DistilBertForSequenceClassification", SENTIMENT_LABELS)}


# --- models --------------------------------------------------------------------------------------
def write_checkpoint(out: Path, architecture: str, labels: list[str], tokenizer, seed: int) -> Path:
    """A seeded random-weight fine-tuned checkpoint of the users' shapes, as ``save_pretrained`` lays it out."""
    from pipelines.model.checkpoint import write_random_classifier
    from pipelines.model.demo import MBERT_SHAPE

    if architecture.startswith("DistilBert"):
        shape = DISTILBERT_MULTILINGUAL_SHAPE
    else:
        s = MBERT_SHAPE
        shape = dict(hidden_size=s["hidden_size"], num_hidden_layers=s["num_layers"], num_attention_heads=s["num_heads"],
                     intermediate_size=s["intermediate_size"], max_position_embeddings=s["max_position_embeddings"])
    return write_random_classifier(out, architecture, labels, tokenizer, seed=seed, **shape)


def ensure_models(models_dir: Path) -> dict[str, dict[str, Path]]:
    """{"tagger"|"sentiment": {"fp32": bundle, "int8": bundle}}, built once (checkpoints kept beside them)."""
    from benchmarks.corpus import seed_texts
    from pipelines.model.bundle import MANIFEST
    from pipelines.model.checkpoint import train_wordpiece_tokenizer
    from pipelines.model.demo import MBERT_VOCAB_SIZE, pad_vocab_tokenizer
    from pipelines.model.prepare import prepare_model

    root = models_dir / "bench-classifiers"
    out, tokenizer = {}, None
    for seed, (name, (architecture, labels)) in enumerate(MODELS.items()):
        paths = {p: root / f"{name}-{p}" for p in ("fp32", "int8")}
        if not all((b / MANIFEST).exists() for b in paths.values()):
            started = time.perf_counter()
            if tokenizer is None:
                tokenizer = pad_vocab_tokenizer(train_wordpiece_tokenizer(seed_texts(), vocab_size=MBERT_VOCAB_SIZE,
                                                                          cased=True), MBERT_VOCAB_SIZE)
            ckpt = write_checkpoint(root / f"{name}-checkpoint", architecture, labels, tokenizer, seed=seed)
            for precision, bundle in paths.items():
                shutil.rmtree(bundle, ignore_errors=True)
                prepare_model(bundle, from_dir=ckpt, precision=precision, kind="demo",
                              name=f"bench-{name}-{precision}")
            print(f"built {name} ({architecture}) in {time.perf_counter() - started:.0f}s", flush=True)
        out[name] = paths
    return out


# --- throughput ----------------------------------------------------------------------------------
def job_config(corpus: Path, lake: Path, tagger: Path | None = None, sentiment: Path | None = None):
    from pipelines.config import parse_config

    return parse_config({
        "spark": {"master": "local[2]", "app_name": "corpus-nlp-bench-classifiers"},
        "input": {"path": str(corpus)},
        "output": {"path": str(lake), "embeddings": False},
        "ner": {"model": str(tagger) if tagger else None},
        "classify": {"model": str(sentiment) if sentiment else None, "over": "document"},
    })


def timed_run(spark, config) -> tuple[float, dict]:
    """Seconds and counts of one job run; the counts carry the host's 1-minute load average at the end
    (the machine may be shared: above the core count, other processes took part of the CPU)."""
    import os

    from pipelines.run.job import run_annotate

    shutil.rmtree(config.output.path, ignore_errors=True)
    started = time.perf_counter()
    result = run_annotate(config, spark=spark)
    return time.perf_counter() - started, {**result.manifest["counts"], "load_avg_1m": os.getloadavg()[0]}


def throughput(sentences: int, work: Path, models: dict) -> dict:
    from benchmarks.corpus import generate, write_parquet
    from pipelines.config import SparkSettings
    from pipelines.spark.session import get_spark

    corpus = write_parquet(generate(sentences), work / "corpus")
    warmup = write_parquet(generate(50, seed=1), work / "corpus-warmup")
    spark = get_spark(SparkSettings(master="local[2]", app_name="corpus-nlp-bench-classifiers"), libraries=["delta"])
    spark.sparkContext.setLogLevel("ERROR")
    results = {}
    try:
        for precision in ("fp32", "int8"):
            tagger, sentiment = models["tagger"][precision], models["sentiment"][precision]
            timed_run(spark, job_config(warmup, work / "lake-warmup", tagger=tagger, sentiment=sentiment))
            seconds, counts = timed_run(spark, job_config(corpus, work / "lake", tagger=tagger))
            results[f"tagger_{precision}"] = {"seconds": round(seconds, 1), "tokens": counts["tokens"],
                                              "tokens_per_s": round(counts["tokens"] / seconds, 1),
                                              "load_avg_1m": counts["load_avg_1m"]}
            seconds, counts = timed_run(spark, job_config(corpus, work / "lake", sentiment=sentiment))
            docs = counts["annotated_rows"]
            results[f"sentiment_{precision}"] = {"seconds": round(seconds, 1), "documents": docs,
                                                 "documents_per_s": round(docs / seconds, 2),
                                                 "tokens": counts["tokens"], "load_avg_1m": counts["load_avg_1m"]}
            print(precision, results[f"tagger_{precision}"], results[f"sentiment_{precision}"], flush=True)
    finally:
        spark.stop()
    return results


# --- int8 agreement ------------------------------------------------------------------------------
def sample_corpus(per_language: int = 0) -> list[tuple[str, str]]:
    """The sample corpus's documents with text (``per_language`` > 0: the first that many of each language)."""
    import pyarrow.parquet as pq

    from pipelines.model.demo import SAMPLE_CORPUS_DIR

    rows = []
    for part in sorted(SAMPLE_CORPUS_DIR.glob("lang=*/*.parquet")):
        if part.parent.name != "lang=mixed":  # the hostile documents are not text
            docs = [(r["doc_id"], r["text"]) for r in pq.read_table(part).to_pylist() if (r["text"] or "").strip()]
            rows += docs[:per_language] if per_language else docs
    return rows


def _labels_and_margins(annotations, labels: list[str]) -> tuple[list[str], list[float]]:
    results, margins = [], []
    for a in annotations:
        top2 = sorted((float(a.metadata[label]) for label in labels), reverse=True)[:2]
        results.append(a.result)
        margins.append(top2[0] - top2[1])
    return results, margins


def agreement(models: dict, per_language: int = 0) -> dict:
    from pyspark.ml import Pipeline

    from pipelines.classify import stages as classify_stages
    from pipelines.config import SparkSettings
    from pipelines.spark.session import get_spark
    from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer

    spark = get_spark(SparkSettings(master="local[2]", app_name="corpus-nlp-int8-agreement"), libraries=[])
    spark.sparkContext.setLogLevel("ERROR")
    docs = sample_corpus(per_language)
    df = spark.createDataFrame(docs, "doc_id string, text string")
    stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
              SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
              Tokenizer().setInputCols(["sentence"]).setOutputCol("token")]
    for precision in ("fp32", "int8"):
        tagger, sentiment = models["tagger"][precision], models["sentiment"][precision]
        stages += [
            classify_stages.BertForTokenClassification.loadSavedModel(str(tagger))
            .setInputCols(["sentence", "token"]).setOutputCol(f"tags_{precision}"),
            classify_stages.DistilBertForSequenceClassification.loadSavedModel(str(sentiment))
            .setInputCols(["document", "token"]).setOutputCol(f"doc_{precision}"),
            classify_stages.DistilBertForSequenceClassification.loadSavedModel(str(sentiment))
            .setInputCols(["sentence", "token"]).setOutputCol(f"sentence_{precision}"),
        ]
    try:
        rows = Pipeline(stages=stages).fit(df).transform(df).drop("text").collect()
    finally:
        spark.stop()
    out = {"documents": len(docs), "languages": len({d.split("-")[0] for d, _ in docs})}
    for what, labels in (("tags", NER_LABELS), ("doc", SENTIMENT_LABELS), ("sentence", SENTIMENT_LABELS)):
        fp32, margins = _labels_and_margins([a for r in rows for a in r[f"{what}_fp32"]], labels)
        int8, _ = _labels_and_margins([a for r in rows for a in r[f"{what}_int8"]], labels)
        same = np.array(fp32) == np.array(int8)
        out[what] = {"compared": len(fp32), "agreement": round(float(same.mean()), 4),
                     "fp32_mean_top1_margin": round(float(np.mean(margins)), 4)}
        print(what, out[what], flush=True)
    return out


# --- entry point ---------------------------------------------------------------------------------
def main(argv: list[str] | None = None) -> dict:
    import os
    import platform
    import tempfile

    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=1000, help="benchmark corpus size (the job's sentences)")
    ap.add_argument("--models", type=Path, default=ROOT / "models")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results")
    ap.add_argument("--agreement", action="store_true", help="measure int8 vs fp32 labels instead of throughput")
    ap.add_argument("--per-language", type=int, default=0,
                    help="--agreement: the first N documents of each language (0: all)")
    a = ap.parse_args(argv)
    models = ensure_models(a.models)
    if a.agreement:
        result = {"int8_agreement": agreement(models, a.per_language)}
    else:
        with tempfile.TemporaryDirectory(prefix="corpus-nlp-bench-classifiers-") as tmp:
            result = {"sentences": a.sentences, "throughput": throughput(a.sentences, Path(tmp), models)}
    result.update(cores=os.cpu_count(), machine=platform.node(), date=datetime.now(timezone.utc).isoformat())
    a.out.mkdir(parents=True, exist_ok=True)
    kind = "agreement" if a.agreement else "throughput"
    path = a.out / f"{datetime.now(timezone.utc):%Y-%m-%d}-classifiers-{kind}.json"
    path.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {path}")
    return result


if __name__ == "__main__":
    main()
