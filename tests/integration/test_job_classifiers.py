"""Fine-tuned classifiers in the annotate job: a token-classification bundle as ner.model, a sequence
classifier (classify.model) filling the classifications table, both from the one fused pass, checked
against transformers on small seeded checkpoints made here."""

from __future__ import annotations

import json
import shutil
from collections import defaultdict

import numpy as np
import pytest
from click.testing import CliRunner
from lake_helpers import commits, job_config, read_table, write_corpus

from classifier_checkpoints import NER_LABELS, SENTIMENT_LABELS, TEXTS, hf_word_logits, wordpiece_tokenizer, \
    write_classifier_checkpoint
from pipelines.classify.classifier import softmax
from pipelines.store import state
from pipelines.tools.cli import main
from pipelines.run.dry_run import dry_run
from pipelines.run.job import JobError, build_stages, model_summaries, run_annotate
from pipelines.model.prepare import prepare_model
from pipelines.ner.tags import converter_chunks

pytest.importorskip("torch")

CORPUS = {
    "de": [("de1", f"{TEXTS[0]} {TEXTS[1]}"), ("de2", TEXTS[2]), ("de3", TEXTS[3])],
    "en": [("en1", f"{TEXTS[5]} {TEXTS[6]}"), ("en2", TEXTS[7]), ("en3", TEXTS[4]), ("en4", "   ")],
}
TEXT_OF = {d: t for rows in CORPUS.values() for d, t in rows}
TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def models(tmp_path_factory):
    root = tmp_path_factory.mktemp("job-classifiers")
    tok = wordpiece_tokenizer()
    tagger = write_classifier_checkpoint(root / "tagger", "BertForTokenClassification", NER_LABELS, tok, seed=41)
    sentiment = write_classifier_checkpoint(root / "sentiment", "DistilBertForSequenceClassification",
                                            SENTIMENT_LABELS, tok, seed=42)
    # the same weights under other label names: another classifier as far as the lake is concerned
    relabelled = root / "relabelled"
    shutil.copytree(sentiment, relabelled)
    config = json.loads((relabelled / "config.json").read_text())
    config["id2label"] = {k: f"class {k}" for k in config["id2label"]}
    config["label2id"] = {v: int(k) for k, v in config["id2label"].items()}
    (relabelled / "config.json").write_text(json.dumps(config))
    return {
        "tagger": (tagger, prepare_model(root / "tagger-bundle", from_dir=tagger).path),
        "sentiment": (sentiment, prepare_model(root / "sentiment-bundle", from_dir=sentiment).path),
        "relabelled": (relabelled, prepare_model(root / "relabelled-bundle", from_dir=relabelled).path),
        "corpus": write_corpus(root / "corpus", CORPUS),
    }


def _sentences(tokens_df) -> dict[tuple[str, int], list]:
    """(doc_id, sentence) -> its token rows, in order."""
    out = defaultdict(list)
    for r in tokens_df.orderBy("doc_id", "token_index").collect():
        out[(r.doc_id, r.sentence)].append(r)
    return out


def _check_scores(row, probabilities: np.ndarray, labels: list[str]) -> None:
    assert row.label == labels[int(probabilities.argmax())]
    assert set(row.scores) == set(labels)
    assert max(abs(row.scores[label] - p) for label, p in zip(labels, probabilities)) <= TOLERANCE
    assert row.score == row.scores[row.label]


def test_token_classifier_as_ner_and_document_classifier_then_incremental_runs(spark, tmp_path, models, demo_bundle):
    (tagger_ckpt, tagger), (sentiment_ckpt, sentiment) = models["tagger"], models["sentiment"]
    config = job_config(tmp_path / "lake", models["corpus"], demo_bundle.path, ner__model=str(tagger),
                        classify__model=str(sentiment), incremental=True)
    result = run_annotate(config, spark=spark)

    tokens = read_table(spark, result.tables["token_embeddings"])
    assert {"embedding", "ner", "classification"} <= set(tokens.columns)
    sentences = _sentences(tokens)
    expected_entities = set()
    for (doc, sentence), rows in sentences.items():  # every token's tag: HF's argmax of its first piece
        probabilities = softmax(hf_word_logits(tagger_ckpt, [r.token for r in rows]))
        tags = [NER_LABELS[k] for k in probabilities.argmax(1)]
        assert [r.ner for r in rows] == tags
        assert np.abs(np.array([r.ner_confidence for r in rows]) - probabilities.max(1)).max() <= TOLERANCE
        for first, last, entity in converter_chunks(tags):
            begin, end = rows[first].begin, rows[last].end
            expected_entities.add((doc, sentence, begin, end, entity, TEXT_OF[doc][begin:end + 1]))
    entities = read_table(spark, result.tables["entities"]).collect()
    assert {(e.doc_id, e.sentence, e.begin, e.end, e.entity, e.text) for e in entities} == expected_entities
    assert len(entities) == len(expected_entities) == result.manifest["counts"]["entities"] > 0

    classified = read_table(spark, result.tables["classifications"])
    assert classified.columns == ["doc_id", "sentence", "label", "score", "scores", "run_id", "lang"]
    rows = classified.collect()
    assert sorted(r.doc_id for r in rows) == sorted(d for d, t in TEXT_OF.items() if t.strip())  # one per document
    for r in rows:
        assert r.sentence is None
        words = [t.token for (doc, _), ts in sorted(sentences.items()) if doc == r.doc_id for t in ts]
        _check_scores(r, softmax(hf_word_logits(sentiment_ckpt, words)), SENTIMENT_LABELS)
    counts = result.manifest["counts"]
    assert counts["classifications"] == len(rows) and counts["quarantined_rows"] == 1
    assert result.manifest["classify"]["labels"] == SENTIMENT_LABELS

    again = run_annotate(config, spark=spark)  # nothing changed: nothing to do
    assert again.manifest["input"]["annotated_partitions"] == [] and again.manifest["input"]["skipped_as_done"] == 2
    assert {r.run_id for r in read_table(spark, result.tables["classifications"]).collect()} == {result.run_id}
    plan = dry_run(config, spark)  # the dry run computes the same fingerprint and reads the same tables
    assert plan.fingerprint == result.manifest["fingerprint"]
    assert plan.partitions == [("lang=de", "skip", "done"), ("lang=en", "skip", "done")]
    assert _cli_dry_run_fingerprint(config, "--ner", str(tagger), "--classify", str(sentiment)) == plan.fingerprint

    # same weights under other labels: another fingerprint, so an incremental run would redo every partition
    relabelled = config.model_copy(update={"classify": config.classify.model_copy(
        update={"model": str(models["relabelled"][1])})})
    assert _fingerprint(relabelled, demo_bundle) != _fingerprint(config, demo_bundle) == result.manifest["fingerprint"]


def test_a_partition_deleted_from_the_input_leaves_every_table(spark, tmp_path, models, demo_bundle):
    corpus = tmp_path / "corpus"
    shutil.copytree(models["corpus"], corpus)
    config = job_config(tmp_path / "lake", corpus, demo_bundle.path, ner__model=str(models["tagger"][1]),
                        classify__model=str(models["sentiment"][1]), incremental=True)
    first = run_annotate(config, spark=spark)
    tables = ("token_embeddings", "quarantine", "entities", "classifications")

    def rows_per_lang():
        return {t: {r.lang: r["count"] for r in read_table(spark, first.tables[t]).groupBy("lang").count().collect()}
                for t in tables}

    before = rows_per_lang()
    assert all("en" in before[t] for t in tables), before  # every table holds rows of the partition to delete
    shutil.rmtree(corpus / "lang=en")
    removed = run_annotate(config.model_copy(update={"deleted_partitions": "remove"}), spark=spark)
    assert removed.manifest["input"]["deleted_partitions"]["removed"] == [{"lang": "en"}]
    assert rows_per_lang() == {t: {k: v for k, v in before[t].items() if k != "en"} for t in tables}
    for t in tables:  # each by a commit of the run that removed it
        assert commits(spark, first.tables[t])[-1] == ("DELETE", removed.run_id)


def _cli_dry_run_fingerprint(config, *flags: str) -> str:
    """`corpus-nlp annotate --dry-run` with ``flags`` on ``config``'s corpus, lake and model: its fingerprint."""
    from pipelines import log

    args = ["annotate", "--input", config.input.path, "--output", config.output.path, "--model", config.model.bundle,
            "--incremental", "--dry-run", "--log-format", "json", *flags]
    try:
        cli = CliRunner().invoke(main, args)
    finally:
        log.configure()  # the CLI set JSON output for this process
    assert cli.exit_code == 0, cli.output
    return next(json.loads(line)["fingerprint"] for line in cli.output.splitlines() if '"fingerprint"' in line)


def _cli_run(config, tmp_path):
    """`corpus-nlp annotate --config` on ``config``: its text summary with sample rows, then the JSON summary of
    the same command again (nothing left to do); the first run's manifest and tables, the JSON summary."""
    import types

    import yaml

    from pipelines import log

    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")), encoding="utf-8")
    try:
        text = CliRunner().invoke(main, ["annotate", "--config", str(path), "--incremental", "--show", "3"])
        assert text.exit_code == 0, text.output
        assert "committed" in text.output
        again = CliRunner().invoke(main, ["annotate", "--config", str(path), "--incremental", "--log-format", "json"])
        assert again.exit_code == 0, again.output
    finally:
        log.configure()  # the CLI set JSON output for this process
    summary = json.loads(again.output.strip().splitlines()[-1])
    first = sorted((tmp_path / "lake" / "_runs").glob("*.json"))[0]
    manifest = json.loads(first.read_text())
    return types.SimpleNamespace(manifest=manifest, tables=manifest["tables"], summary=summary)


def _fingerprint(config, bundle) -> str:
    stages = build_stages(config, str(bundle.path), ["doc_id", "text", "lang"], config.ner.model)
    return state.fingerprint(config, *model_summaries(stages))


def test_without_embeddings_one_pass_classifies_each_sentence(spark, tmp_path, models):
    (tagger_ckpt, tagger), (sentiment_ckpt, sentiment) = models["tagger"], models["sentiment"]
    # no embeddings model at all: the run must not need one
    config = job_config(tmp_path / "lake", models["corpus"], tmp_path / "no-such-bundle", ner__model=str(tagger),
                        classify__model=str(sentiment), classify__over="sentence", output__embeddings=False)
    result = _cli_run(config, tmp_path)  # as a user runs it: the summary names the classifier that ran
    assert result.manifest["model"] is None and result.manifest["ner"]["stage"] == "BertForTokenClassification"
    assert result.summary["model"] == result.manifest["classify"]["storage_ref"]
    assert result.summary["model_kind"] == "DistilBertForSequenceClassification"

    tokens = read_table(spark, result.tables["token_embeddings"])
    assert "embedding" not in tokens.columns and tokens.where("ner is null").count() == 0
    sentences = _sentences(tokens)
    rows = read_table(spark, result.tables["classifications"]).collect()
    assert sorted((r.doc_id, r.sentence) for r in rows) == sorted(sentences)  # one per sentence
    assert len({d for d, _ in sentences}) < len(rows)  # some document has several sentences
    for r in rows:
        words = [t.token for t in sentences[(r.doc_id, r.sentence)]]
        _check_scores(r, softmax(hf_word_logits(sentiment_ckpt, words)), SENTIMENT_LABELS)
    assert result.manifest["counts"]["classifications"] == len(rows)


def test_wrong_bundles_are_one_clear_error(spark, tmp_path, models, demo_bundle):
    sentiment = models["sentiment"][1]
    config = job_config(tmp_path / "lake", models["corpus"], demo_bundle.path, ner__model=str(sentiment))
    with pytest.raises(JobError, match="is a sequence-classification bundle, not a token-classification one: it "
                                       "belongs in classify.model"):
        run_annotate(config, spark=spark)
    config = job_config(tmp_path / "lake", models["corpus"], demo_bundle.path, output__embeddings=False)
    with pytest.raises(JobError, match="output.embeddings: false leaves no model to run"):
        run_annotate(config, spark=spark)
