"""The `sparknlp` engine for real: our bundle inside Spark NLP 5.5.3's BertEmbeddings, a saved Spark NLP model
back into a bundle, the two engines' vectors against each other, and the job end to end.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner

from lake_helpers import job_config, write_corpus
from sparknlp_losses import spark_nlp_loses_part_of

from pipelines.annotate import sparknlp_engine

from pipelines.store import state
from pipelines.tools.cli import main
from pipelines.config import parse_config
from pipelines.run.job import JobError, run_annotate
from pipelines.model.bundle import BundleError, ModelBundle
from pipelines.model.demo import SAMPLE_CORPUS_DIR
from pipelines.model.sparknlp_io import bundle_from_sparknlp
from pipelines.annotate.stages import BertEmbeddings

DOCS_PER_LANGUAGE = 4
TOLERANCE = 1e-4
pytestmark = pytest.mark.sparknlp  # the Spark NLP jar: Spark 3.5 only


def sample_texts() -> list[tuple[str, str]]:
    rows = []
    for part in sorted(SAMPLE_CORPUS_DIR.glob("lang=*/*.parquet")):
        table = pq.read_table(part).to_pylist()
        rows += [(r["doc_id"], r["text"]) for r in table if r["text"] and r["text"].strip()][:DOCS_PER_LANGUAGE]
    return rows


@pytest.fixture(scope="module")
def text_config():
    return parse_config({})


@pytest.fixture(scope="module")
def their_bert(spark, demo_bundle, tmp_path_factory):
    """Spark NLP's own BertEmbeddings, loaded from our bundle's export."""
    folder = tmp_path_factory.mktemp("sparknlp") / "export"
    return sparknlp_engine.embeddings_from_bundle(demo_bundle, spark, folder)


@pytest.fixture(scope="module")
def saved_model(their_bert, tmp_path_factory):
    """What `.write().save()` of the real Spark NLP writes."""
    path = tmp_path_factory.mktemp("sparknlp") / "saved"
    their_bert.write().overwrite().save(str(path))
    return path


@pytest.fixture(scope="module")
def spark_nlp_tokens(spark, text_config):
    """The sample corpus through the real DocumentAssembler, SentenceDetector and Tokenizer."""
    from pyspark.ml import Pipeline

    df = spark.createDataFrame(sample_texts(), "doc_id string, text string")
    return Pipeline(stages=sparknlp_engine.text_stages(text_config)).fit(df).transform(df).cache()


def embed_both(tokens_df, their_bert, bundle_path, max_sentence_length=128):
    """Spark NLP's and our BertEmbeddings over the same token column; per document (theirs, ours)."""
    theirs = their_bert.setInputCols(["sentence", "token"]).setOutputCol("theirs") \
        .setMaxSentenceLength(max_sentence_length).transform(tokens_df)
    ours = BertEmbeddings(modelPath=str(bundle_path), maxSentenceLength=max_sentence_length) \
        .setInputCols(["sentence", "token"]).setOutputCol("ours").transform(theirs)
    return {r.doc_id: (r.theirs, r.ours, r.token) for r in ours.select("doc_id", "theirs", "ours", "token").collect()}


def sentences_without_known_losses(theirs, ours, tokenizer):
    """(theirs, ours) token pairs of the sentences Spark NLP sees exactly as we do: the model gets the same
    WordPieces there, so the vectors must agree."""
    by_sentence: dict[str, list] = {}
    for t, o in zip(theirs, ours):
        by_sentence.setdefault(t.metadata["sentence"], []).append((t, o))
    return [pairs for pairs in by_sentence.values()
            if not any(spark_nlp_loses_part_of(o.result, tokenizer) for _, o in pairs)]


def test_spark_nlp_and_native_vectors_agree_on_the_same_tokens(spark_nlp_tokens, their_bert, demo_bundle):
    docs = embed_both(spark_nlp_tokens, their_bert, demo_bundle.path)
    tokenizer = demo_bundle.load_tokenizer()
    compared, languages, worst = 0, set(), 0.0
    for doc_id, (theirs, ours, tokens) in docs.items():
        assert len(ours) == len(tokens)  # ours: one vector per token, always
        if len(theirs) != len(tokens):
            continue  # Spark NLP dropped a token here (see the maxSentenceLength test)
        for sentence in sentences_without_known_losses(theirs, ours, tokenizer):
            for t, o in sentence:
                assert (t.begin, t.end, t.result) == (o.begin, o.end, o.result)
                assert int(t.metadata["pieceId"]) == tokenizer.encode(o.result, add_special_tokens=False).ids[0]
                assert len(t.embeddings) == demo_bundle.manifest.dimension
                worst = max(worst, float(np.max(np.abs(np.asarray(t.embeddings) - np.asarray(o.embeddings)))))
                compared += 1
                languages.add(doc_id.split("-")[0])
    # Most sentences of a multilingual corpus hold an accent, a hyphen or a CJK run somewhere; enough do not,
    # in Latin, Cyrillic and Arabic script.
    assert compared >= 200 and {"en", "de", "ru", "ar"} <= languages, (compared, languages)
    assert worst <= TOLERANCE


def test_what_spark_nlp_loses_inside_a_token_changes_its_vectors_and_ours_keeps_it(spark, text_config, their_bert,
                                                                                   demo_bundle):
    from pyspark.ml import Pipeline

    df = spark.createDataFrame([("a", "Für die Brücke in south-west England sorgt Kent."),
                                ("b", "Fuer die Bruecke in south England sorgt Kent.")], "doc_id string, text string")
    tokens = Pipeline(stages=sparknlp_engine.text_stages(text_config)).fit(df).transform(df)
    docs = embed_both(tokens, their_bert, demo_bundle.path)
    tokenizer = demo_bundle.load_tokenizer()
    theirs, ours, _ = docs["a"]
    assert [spark_nlp_loses_part_of(o.result, tokenizer) for o in ours] == \
           [True, False, True, False, True, False, False, False, False]
    pieces = {o.result: tokenizer.encode(o.result, add_special_tokens=False).ids[0] for o in ours}
    spark_nlp_pieces = {t.result: int(t.metadata["pieceId"]) for t in theirs}
    assert spark_nlp_pieces["Für"] == tokenizer.token_to_id("F") != pieces["Für"]  # "Fur": accent stripped
    delta = [max(abs(a - b) for a, b in zip(t.embeddings, o.embeddings)) for t, o in zip(theirs, ours)]
    assert min(delta[-4:]) > TOLERANCE  # "-west" never reached BERT: every later position moved
    theirs, ours, _ = docs["b"]  # the same sentence without accents or hyphen: no loss, the same vectors
    assert max(max(abs(a - b) for a, b in zip(t.embeddings, o.embeddings)) for t, o in zip(theirs, ours)) <= TOLERANCE


def test_a_model_saved_by_spark_nlp_becomes_a_bundle_with_the_same_vectors(spark, saved_model, spark_nlp_tokens,
                                                                            their_bert, demo_bundle, tmp_path):
    result = CliRunner().invoke(main, ["prepare-model", "--from-sparknlp", str(saved_model), "--out",
                                       str(tmp_path / "imported")])
    assert result.exit_code == 0, result.output
    imported = ModelBundle.load(tmp_path / "imported", verify=True)
    original = demo_bundle.manifest
    m = imported.manifest
    assert (m.storage_ref, m.kind, m.dimension, m.case_sensitive, m.vocab_size) == \
           (original.storage_ref, original.kind, original.dimension, original.case_sensitive, original.vocab_size)
    assert (m.num_layers, m.num_heads, m.intermediate_size, m.max_position_embeddings) == \
           (original.num_layers, original.num_heads, original.intermediate_size, original.max_position_embeddings)
    text = " ".join(t for _, t in sample_texts()[:20])
    assert imported.load_tokenizer().encode(text).ids == demo_bundle.load_tokenizer().encode(text).ids

    docs = embed_both(spark_nlp_tokens, their_bert, imported.path)
    reference = embed_both(spark_nlp_tokens, their_bert, demo_bundle.path)
    for doc_id, (_, ours, _) in docs.items():
        expected = reference[doc_id][1]
        assert [(a.begin, a.end) for a in ours] == [(a.begin, a.end) for a in expected]
        for a, b in zip(ours, expected):
            assert np.max(np.abs(np.asarray(a.embeddings) - np.asarray(b.embeddings))) <= 1e-6


def _copy(saved_model, tmp_path) -> Path:
    target = tmp_path / "saved"
    shutil.copytree(saved_model, target)
    return target


@pytest.mark.parametrize("tamper, message", [
    (lambda d: (d / "fields" / "vocabulary" / "extra.pkl").write_bytes(b"\x80\x04K\x01."), "extra.pkl"),
    (lambda d: (d / "bert_tensorflow").write_bytes(b""), "TensorFlow engine"),
    (lambda d: shutil.rmtree(d / "metadata"), "no metadata/part-*"),
    (lambda d: (d / "bert_onnx").write_bytes(b"not a zip"), "not a zip archive"),
    (lambda d: [p.write_bytes(p.read_bytes().replace(b"java.lang.Integer", b"java.lang.Runtime"))
                for p in (d / "fields" / "vocabulary").glob("part-*")], "java.lang.Runtime"),
])
def test_a_saved_model_that_is_not_what_spark_nlp_writes_is_refused_with_one_clear_error(saved_model, tmp_path,
                                                                                         tamper, message):
    saved = _copy(saved_model, tmp_path)
    tamper(saved)
    with pytest.raises(BundleError, match=message):
        bundle_from_sparknlp(saved, tmp_path / "out")
    assert not (tmp_path / "out" / "manifest.json").exists()


def test_the_job_with_engine_sparknlp_writes_the_lake_from_the_real_annotators(spark, demo_bundle, tmp_path):
    rows = sample_texts()
    corpus = write_corpus(tmp_path / "corpus", {"de": [r for r in rows if r[0].startswith("de")][:3],
                                                "ja": [r for r in rows if r[0].startswith("ja")][:3] + [("ja-x", " ")]})
    config = job_config(tmp_path / "lake", corpus, demo_bundle.path, engine="sparknlp")
    result = run_annotate(config, spark=spark)
    manifest = result.manifest
    assert manifest["status"] == "committed" and manifest["engine"] == "sparknlp"
    assert manifest["model"]["storage_ref"] == demo_bundle.manifest.storage_ref
    assert manifest["model"]["kind"] == "demo"
    counts = manifest["counts"]
    assert counts["input_rows"] == 7 and counts["quarantined_rows"] == 1 and counts["annotated_rows"] == 6

    tokens = result.read(spark)
    assert tokens.columns == ["doc_id", "sentence", "token_index", "begin", "end", "token", "embedding", "run_id",
                              "lang"]
    texts = dict(rows)
    collected = tokens.collect()
    assert len(collected) == counts["tokens"] > 0
    for r in collected:
        assert texts[r.doc_id][r.begin:r.end + 1] == r.token
        assert len(r.embedding) == demo_bundle.manifest.dimension
    saved = json.loads(Path(result.manifest_path).read_text())
    assert saved["fingerprint"] == manifest["fingerprint"]
    # same bundle, other tokens: an incremental native run must not take these partitions as done
    native = job_config(tmp_path / "lake", corpus, demo_bundle.path)
    assert state.fingerprint(native, demo_bundle.manifest, None) != manifest["fingerprint"]


def test_a_session_without_a_class_the_engine_needs_says_what_to_install(spark, demo_bundle, tmp_path, monkeypatch):
    # The test session has both jars; a class no jar provides stands for the one a cluster lacks.
    monkeypatch.setitem(sparknlp_engine._REQUIRED_CLASSES, "org.tensorflow.ndarray.buffer.NoSuchBuffer",
                        "the jar org.tensorflow:ndarray:0.3.3")
    corpus = write_corpus(tmp_path / "corpus", {"de": [("de-1", "Der Hund schläft.")]})
    config = job_config(tmp_path / "lake", corpus, demo_bundle.path, engine="sparknlp")
    with pytest.raises(JobError, match=r"needs the jar org\.tensorflow:ndarray:0\.3\.3 .*spark-nlp_2\.12:5\.5\.3"):
        run_annotate(config, spark=spark)
