"""Fine-tuned classifier stages through Spark: Hugging Face's scores and labels, NerConverter on top, one pass.

The same ONNX models in the real Spark NLP annotators: tests/integration/test_classifiers_sparknlp.py."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from pyspark.ml import Pipeline

from classifier_checkpoints import NER_LABELS, SENTIMENT_LABELS, hf_word_logits, wordpiece_tokenizer, \
    write_classifier_checkpoint
from pipelines.classify.classifier import softmax
from pipelines.classify.stages import (
    BertForSequenceClassification,
    BertForTokenClassification,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
)
from pipelines.model.prepare import prepare_model
from pipelines.ner.stages import NerConverter
from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer

torch = pytest.importorskip("torch")

DOCS = [
    ("a", "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland. Größere Straßen führen nach Köln."),
    ("b", "Le président réside au palais de l'Élysée à Paris."),
    ("c", "John Smith works for Acme Corporation in New York. The food was terrible! What a wonderful film."),
    ("d", ""),
]
STAGES = {
    "BertForTokenClassification": (BertForTokenClassification, NER_LABELS),
    "DistilBertForTokenClassification": (DistilBertForTokenClassification, NER_LABELS),
    "BertForSequenceClassification": (BertForSequenceClassification, SENTIMENT_LABELS),
    "DistilBertForSequenceClassification": (DistilBertForSequenceClassification, SENTIMENT_LABELS),
}


@pytest.fixture(scope="module")
def bundles(tmp_path_factory) -> dict[str, tuple[Path, Path]]:
    tok = wordpiece_tokenizer()
    root = tmp_path_factory.mktemp("classifier-stages")
    out = {}
    for i, (arch, (_, labels)) in enumerate(STAGES.items()):
        ckpt = write_classifier_checkpoint(root / arch, arch, labels, tok, seed=20 + i)
        out[arch] = (ckpt, prepare_model(root / f"{arch}-bundle", from_dir=ckpt).path)
    return out


def _text_stages():
    return [DocumentAssembler().setInputCol("text").setOutputCol("document"),
            SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
            Tokenizer().setInputCols(["sentence"]).setOutputCol("token")]


def _scores(annotation, labels) -> np.ndarray:
    return np.array([float(annotation.metadata[label]) for label in labels])


@pytest.mark.parametrize("architecture", ["BertForTokenClassification", "DistilBertForTokenClassification"])
def test_token_classifier_stage_equals_transformers(spark, bundles, architecture):
    ckpt, bundle = bundles[architecture]
    stage_class, labels = STAGES[architecture]
    tagger = stage_class.loadSavedModel(str(bundle)).setInputCols(["sentence", "token"]).setOutputCol("ner")
    assert tagger.getClasses() == labels
    converter = NerConverter().setInputCols(["sentence", "token", "ner"]).setOutputCol("ner_chunk")
    df = spark.createDataFrame(DOCS, "doc_id string, text string")
    out = Pipeline(stages=_text_stages() + [tagger, converter]).fit(df).transform(df)
    plan = out._jdf.queryExecution().executedPlan().toString()
    assert plan.count("MapInArrow") == 1, plan  # text stages, classifier and converter: one Python pass
    assert out.schema["ner"].metadata["annotatorType"] == "named_entity"

    worst, tokens_seen = 0.0, 0
    for row in out.orderBy("doc_id").collect():
        assert len(row.ner) == len(row.token)  # one tag per token
        for sentence in row.sentence:
            index = sentence.metadata["sentence"]
            tokens = [t for t in row.token if t.metadata["sentence"] == index]
            tags = [a for a in row.ner if a.metadata["sentence"] == index]
            assert [(a.begin, a.end, a.metadata["word"]) for a in tags] == [(t.begin, t.end, t.result) for t in tokens]
            theirs = softmax(hf_word_logits(ckpt, [t.result for t in tokens]))
            ours = np.stack([_scores(a, labels) for a in tags])
            worst = max(worst, float(np.abs(ours - theirs).max()))
            assert [a.result for a in tags] == [labels[k] for k in theirs.argmax(1)]
            assert all(set(a.metadata) == {"sentence", "word", *labels} for a in tags)
            tokens_seen += len(tokens)
        for chunk in row.ner_chunk:  # NerConverter reads the tags unchanged
            assert chunk.result == row.text[chunk.begin:chunk.end + 1]
            assert chunk.metadata["entity"] in {label[2:] for label in labels if label != "O"}
    assert tokens_seen > 40 and worst <= 1e-4


@pytest.mark.parametrize("architecture", ["BertForSequenceClassification", "DistilBertForSequenceClassification"])
def test_sequence_classifier_stage_equals_transformers(spark, bundles, architecture):
    ckpt, bundle = bundles[architecture]
    stage_class, labels = STAGES[architecture]
    per_sentence = stage_class.loadSavedModel(str(bundle)).setInputCols(["sentence", "token"]).setOutputCol("class")
    per_document = stage_class.loadSavedModel(str(bundle)).setInputCols(["document", "token"]).setOutputCol("doc_class")
    coalesced = (stage_class.loadSavedModel(str(bundle)).setInputCols(["sentence", "token"])
                 .setOutputCol("coalesced").setCoalesceSentences(True))
    df = spark.createDataFrame(DOCS, "doc_id string, text string")
    out = Pipeline(stages=_text_stages() + [per_sentence, per_document, coalesced]).fit(df).transform(df)
    assert out.schema["class"].metadata["annotatorType"] == "category"

    worst = 0.0
    for row in out.orderBy("doc_id").collect():
        if not row.token:
            assert row["class"] == [] and row.doc_class == [] and row.coalesced == []
            continue
        assert len(row["class"]) == len(row.sentence)
        sentence_probs = []
        for sentence, category in zip(row.sentence, row["class"]):
            words = [t.result for t in row.token if t.metadata["sentence"] == sentence.metadata["sentence"]]
            theirs = softmax(hf_word_logits(ckpt, words))
            ours = _scores(category, labels)
            worst = max(worst, float(np.abs(ours - theirs).max()))
            assert category.result == labels[int(theirs.argmax())]
            assert (category.begin, category.end) == (sentence.begin, sentence.end)
            assert category.metadata["sentence"] == sentence.metadata["sentence"]
            sentence_probs.append(ours)
        document, = row.doc_class  # the whole document's tokens as one sequence
        theirs = softmax(hf_word_logits(ckpt, [t.result for t in row.token]))
        worst = max(worst, float(np.abs(_scores(document, labels) - theirs).max()))
        assert document.result == labels[int(theirs.argmax())]
        coalesced_row, = row.coalesced  # Spark NLP: mean over the sentences, at the first sentence
        mean = np.mean(sentence_probs, axis=0)
        assert np.abs(_scores(coalesced_row, labels) - mean).max() <= 1e-6
        assert coalesced_row.result == labels[int(mean.argmax())]
        assert (coalesced_row.begin, coalesced_row.end) == (row.sentence[0].begin, row.sentence[0].end)
    assert worst <= 1e-4


def test_wrong_bundle_for_the_stage_is_one_clear_error(bundles):
    with pytest.raises(Exception, match="is a sequence classifier .*use it with BertForSequenceClassification"):
        BertForTokenClassification.loadSavedModel(str(bundles["BertForSequenceClassification"][1]))
    with pytest.raises(ValueError, match="is a distilbert model; use DistilBertForTokenClassification"):
        BertForTokenClassification.loadSavedModel(str(bundles["DistilBertForTokenClassification"][1]))

