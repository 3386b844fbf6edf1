"""A sequence classifier inside the job's token pass (no Spark): results ride on the last token of what
they classify, and do not depend on how the pass cuts documents into units."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest

from classifier_checkpoints import NER_LABELS, SENTIMENT_LABELS, TEXTS, wordpiece_tokenizer, \
    write_classifier_checkpoint
from pipelines.classify.stages import BertForTokenClassification, DistilBertForSequenceClassification
from pipelines.model.prepare import prepare_model
from pipelines.ner.stages import NerConverter
from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer
from pipelines.annotate.tables import stream_token_table

pytest.importorskip("torch")

DOCS = {"a": f"{TEXTS[0]} {TEXTS[3]}", "b": TEXTS[5], "c": f"{TEXTS[6]} {TEXTS[7]} {TEXTS[2]}"}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory):
    root, tok = tmp_path_factory.mktemp("rollup"), wordpiece_tokenizer()
    tagger = write_classifier_checkpoint(root / "t", "BertForTokenClassification", NER_LABELS, tok, seed=51)
    sentiment = write_classifier_checkpoint(root / "s", "DistilBertForSequenceClassification", SENTIMENT_LABELS,
                                            tok, seed=52)
    return prepare_model(root / "tb", from_dir=tagger).path, prepare_model(root / "sb", from_dir=sentiment).path


def _pass(bundles, over: str, coalesce: bool, max_tokens: int):
    """The token rows of the job's pass over DOCS, as Python dicts."""
    text = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
            SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
            Tokenizer().setInputCols(["sentence"]).setOutputCol("token")]
    tagger = BertForTokenClassification(modelPath=str(bundles[0])).setInputCols(["sentence", "token"])
    classifier = (DistilBertForSequenceClassification(modelPath=str(bundles[1])).setInputCols([over, "token"])
                  .setCoalesceSentences(coalesce))
    steps = [s._step() for s in text + [tagger, NerConverter(), classifier]]
    rb = pa.RecordBatch.from_pydict({"doc_id": list(DOCS), "text": list(DOCS.values())})
    out = pa.Table.from_batches(list(stream_token_table(iter([rb]), steps[:3], steps[3:], ["doc_id"], max_tokens)))
    return out.to_pylist(), steps[-1].classifier()


def _results(rows) -> dict:
    return {(r["doc_id"], r["classification"]["sentence"]): r["classification"] for r in rows if r["classification"]}


def _probabilities(result) -> np.ndarray:
    return np.array([dict(result["scores"])[label] for label in SENTIMENT_LABELS])


def test_each_sentence_once_on_its_last_token_whatever_the_units(bundles):
    whole, classifier = _pass(bundles, "sentence", False, max_tokens=10_000)
    split, _ = _pass(bundles, "sentence", False, max_tokens=1)  # one sentence per unit
    assert _results(whole) == _results(split)
    sentences = {}
    for r in whole:
        sentences.setdefault((r["doc_id"], r["sentence"]), []).append(r)
    assert set(_results(whole)) == set(sentences) and len(sentences) > len(DOCS)
    for key, rows in sentences.items():
        assert [r["classification"] is not None for r in rows] == [False] * (len(rows) - 1) + [True]
        p, = classifier.probabilities([[r["token"] for r in rows]])
        result = _results(whole)[key]
        assert np.abs(_probabilities(result) - p).max() <= 1e-6 and result["label"] == SENTIMENT_LABELS[p.argmax()]
        assert result["score"] == pytest.approx(float(p.max()), abs=1e-6)
    for r in whole:  # a token classifier's tag confidence: its label's probability
        assert 0 < r["ner_confidence"] <= 1


def test_coalesced_sentences_are_their_plain_mean_on_the_documents_last_token(bundles):
    per_sentence = _results(_pass(bundles, "sentence", False, max_tokens=10_000)[0])
    for max_tokens in (10_000, 1):
        rows, _ = _pass(bundles, "sentence", True, max_tokens)
        results = _results(rows)
        assert set(results) == {(d, None) for d in DOCS}
        for doc in DOCS:
            last = max((r for r in rows if r["doc_id"] == doc), key=lambda r: r["token_index"])
            assert last["classification"] == results[(doc, None)]
            mean = np.mean([_probabilities(v) for (d, _), v in per_sentence.items() if d == doc], axis=0)
            assert np.abs(_probabilities(results[(doc, None)]) - mean).max() <= 1e-6


def test_a_document_across_units_is_the_weighted_mean_of_all_its_windows(bundles):
    whole, classifier = _pass(bundles, "document", False, max_tokens=10_000)
    split, _ = _pass(bundles, "document", False, max_tokens=1)
    for doc in DOCS:
        tokens = [r["token"] for r in whole if r["doc_id"] == doc]
        p, = classifier.probabilities([tokens])  # one unit: exactly the stage's result
        assert np.abs(_probabilities(_results(whole)[(doc, None)]) - p).max() <= 1e-6
        sentences = {}
        for r in split:
            if r["doc_id"] == doc:
                sentences.setdefault(r["sentence"], []).append(r["token"])
        parts = classifier.weighted_probabilities(list(sentences.values()))  # units of one sentence each
        expected = sum(q * w for q, w in parts) / sum(w for _, w in parts)
        assert np.abs(_probabilities(_results(split)[(doc, None)]) - expected).max() <= 1e-6
