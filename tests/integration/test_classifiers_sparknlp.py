"""The same ONNX classifier in the real Spark NLP 5.5.3 annotators and in ours: same labels, same scores.

Each bundle is exported as Spark NLP imports it (``model.onnx``, ``assets/vocab.txt``,
``assets/labels.txt``) and loaded with Spark NLP's own ``*ForTokenClassification`` /
``*ForSequenceClassification.loadSavedModel``; both read the token column of Spark NLP's own
DocumentAssembler, SentenceDetector and Tokenizer. Compared: the sentences where Spark NLP loses nothing
inside a token (README "Differences": it strips accents whatever the casing, and keeps only the first
part of a token BERT's basic tokenizer cuts): there both models see the same word pieces, so they must
agree; elsewhere ours keeps the accents a cased model was trained with.
"""

from __future__ import annotations

import numpy as np
import pytest

from sparknlp_losses import spark_nlp_loses_part_of

from classifier_checkpoints import ARCHITECTURES, wordpiece_tokenizer, write_classifier_checkpoint
from pipelines.annotate import sparknlp_engine
from pipelines.classify import stages as ours_stages
from pipelines.config import parse_config
from pipelines.model.bundle import ModelBundle
from pipelines.model.prepare import prepare_model

pytest.importorskip("torch")
pytestmark = pytest.mark.sparknlp  # the Spark NLP jar: Spark 3.5 only

DOCS = [
    ("a", "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland. Größere Straßen führen nach Köln. "
          "John Smith works for Acme Corporation in New York."),
    ("b", "Le président réside au palais à Paris. Marie vit avec Paul dans une grande maison. "
          "Mañana viajaré a Sevilla con María. Juan trabaja en Madrid."),
    ("c", "Москва — столица России. Η Αθήνα είναι η πρωτεύουσα. Владимир живет в Москве."),
    ("d", "The food was terrible! What a wonderful film. I loved every minute of it."),
]
SCORE_TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def spark_nlp_tokens(spark):
    """The documents through Spark NLP's own text annotators."""
    from pyspark.ml import Pipeline

    df = spark.createDataFrame(DOCS, "doc_id string, text string")
    return Pipeline(stages=sparknlp_engine.text_stages(parse_config({}))).fit(df).transform(df).cache()


def _bundle(root, architecture: str, seed: int) -> ModelBundle:
    ckpt = write_classifier_checkpoint(root / architecture, architecture, ARCHITECTURES[architecture],
                                       wordpiece_tokenizer(), seed=seed)
    return ModelBundle.load(prepare_model(root / f"{architecture}-bundle", from_dir=ckpt).path)


def _both(spark, tokens_df, bundle: ModelBundle, export_dir, input_col: str = "sentence"):
    """Spark NLP's annotator and ours on the same columns: rows with (theirs, ours, token, sentence)."""
    name = sparknlp_engine.sparknlp_classifier_name(bundle.manifest)
    theirs = sparknlp_engine.classifier_from_bundle(bundle, spark, export_dir) \
        .setInputCols([input_col, "token"]).setOutputCol("theirs").transform(tokens_df)
    ours = getattr(ours_stages, name).loadSavedModel(str(bundle.path)) \
        .setInputCols([input_col, "token"]).setOutputCol("ours").transform(theirs)
    return ours.select("doc_id", "theirs", "ours", "token", "sentence").orderBy("doc_id").collect()


def _sentences_seen_alike(row, tokenizer) -> set[str]:
    """The sentence indices (metadata ``sentence``) in which Spark NLP loses nothing inside a token."""
    lossy = {t.metadata["sentence"] for t in row.token if spark_nlp_loses_part_of(t.result, tokenizer)}
    return {s.metadata["sentence"] for s in row.sentence} - lossy


def _scores(annotation, labels) -> np.ndarray:
    return np.array([float(annotation.metadata[label]) for label in labels])


@pytest.mark.parametrize("architecture", ["BertForTokenClassification", "DistilBertForTokenClassification"])
def test_token_classifier_labels_equal_spark_nlp(spark, spark_nlp_tokens, tmp_path, architecture):
    bundle = _bundle(tmp_path, architecture, seed=40)
    labels = ARCHITECTURES[architecture]
    their_model = sparknlp_engine.classifier_from_bundle(bundle, spark, tmp_path / "export-classes")
    assert sorted(their_model.getClasses()) == sorted(labels)  # labels.txt read as the model's classes

    tokenizer = bundle.load_tokenizer()
    tags_compared, worst, distinct = 0, 0.0, set()
    for row in _both(spark, spark_nlp_tokens, bundle, tmp_path / "export"):
        assert len(row.theirs) == len(row.ours) == len(row.token)  # first-piece labelling: one tag per token
        alike = _sentences_seen_alike(row, tokenizer)
        for theirs, ours, token in zip(row.theirs, row.ours, row.token):
            assert (theirs.begin, theirs.end, theirs.metadata["word"]) == (token.begin, token.end, token.result)
            assert (ours.begin, ours.end, ours.metadata["word"]) == (token.begin, token.end, token.result)
            assert ours.metadata["sentence"] == theirs.metadata["sentence"] == token.metadata["sentence"]
            if token.metadata["sentence"] not in alike:
                continue
            assert ours.result == theirs.result, (row.doc_id, token.result)
            worst = max(worst, float(np.abs(_scores(ours, labels) - _scores(theirs, labels)).max()))
            distinct.add(ours.result)
            tags_compared += 1
    assert tags_compared >= 50 and len(distinct) > 1  # a constant tagger would agree by luck
    assert worst <= SCORE_TOLERANCE


@pytest.mark.parametrize("architecture", ["BertForSequenceClassification", "DistilBertForSequenceClassification"])
def test_sequence_classifier_labels_equal_spark_nlp(spark, spark_nlp_tokens, tmp_path, architecture):
    bundle = _bundle(tmp_path, architecture, seed=41)
    labels = ARCHITECTURES[architecture]

    tokenizer = bundle.load_tokenizer()
    compared, worst, distinct = 0, 0.0, set()
    for row in _both(spark, spark_nlp_tokens, bundle, tmp_path / "export"):
        assert len(row.theirs) == len(row.ours) == len(row.sentence)  # one category per sentence
        alike = _sentences_seen_alike(row, tokenizer)
        for theirs, ours in zip(row.theirs, row.ours):
            assert (ours.begin, ours.end, ours.metadata["sentence"]) == \
                (theirs.begin, theirs.end, theirs.metadata["sentence"])
            if ours.metadata["sentence"] not in alike:
                continue
            assert ours.result == theirs.result, (row.doc_id, ours.metadata["sentence"])
            worst = max(worst, float(np.abs(_scores(ours, labels) - _scores(theirs, labels)).max()))
            distinct.add(ours.result)
            compared += 1
    assert compared >= 6 and len(distinct) > 1
    assert worst <= SCORE_TOLERANCE


def test_a_session_without_the_classifier_jar_is_one_clear_error(spark, tmp_path, monkeypatch):
    bundle = _bundle(tmp_path, "BertForSequenceClassification", seed=42)
    # a class this session cannot have stands in for org.tensorflow.Tensor of a session without the jar
    monkeypatch.setattr(sparknlp_engine, "_CLASSIFIER_CLASS",
                        ("org.tensorflow.NoSuchTensor", sparknlp_engine._CLASSIFIER_CLASS[1]))
    with pytest.raises(sparknlp_engine.SparkNlpUnavailable,
                       match=r"needs the jar org\.tensorflow:tensorflow-core-api:0\.4\.2 .*classifier annotators"):
        sparknlp_engine.classifier_from_bundle(bundle, spark, tmp_path / "export")
    assert not (tmp_path / "export").exists()  # refused before anything was written
