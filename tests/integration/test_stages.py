"""The four native stages in real Spark: Spark NLP's schema and semantics, one Python pass, save/load."""

import numpy as np
import pytest
from chispa import assert_df_equality
from pyspark.ml import Pipeline, PipelineModel

from pipelines.annotation import spark_type
from pipelines.annotate.stages import BertEmbeddings, DocumentAssembler, SentenceDetector, Tokenizer

TEXTS = [
    ("de-1", "Der Bürgermeister von München sagte: „Wir bauen 3,5 km Radwege.“ Dr. Weiß stimmte zu."),
    ("fr-1", "L'été à Paris était très chaud. Les cafés étaient pleins!"),
    ("ru-1", "Москва — столица России. В ней живёт более 12 млн человек."),
    ("ar-1", "القاهرة هي عاصمة مصر. يعيش فيها ملايين الناس."),
    ("hi-1", "दिल्ली भारत की राजधानी है। यहाँ बहुत लोग रहते हैं।"),
    ("zh-1", "北京是中国的首都。今天天气很好！"),
    ("ja-1", "東京は日本の首都です。とても大きい都市です。"),
    ("mix-1", "Emoji 👨‍👩‍👧‍👦 and\u200bzero width, ctrl\x07char, U.S.A. (ok) 🇩🇪!"),
    ("null-1", None),
    ("empty-1", ""),
    ("blank-1", "   \n\t "),
]


@pytest.fixture(scope="module")
def corpus(spark):
    return spark.createDataFrame(TEXTS, "doc_id string, text string")


@pytest.fixture(scope="module")
def pipeline(demo_bundle):
    return Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
        BertEmbeddings.loadSavedModel(str(demo_bundle.path)).setInputCols(["sentence", "token"]).setOutputCol("embeddings"),
    ])


@pytest.fixture(scope="module")
def annotated(pipeline, corpus):
    return pipeline.fit(corpus).transform(corpus).cache()


def test_columns_have_spark_nlp_annotation_schema(annotated, demo_bundle):
    for col in ("document", "sentence", "token", "embeddings"):
        assert annotated.schema[col].dataType == spark_type()
    meta = annotated.schema["embeddings"].metadata
    assert meta == {"annotatorType": "word_embeddings", "dimension": demo_bundle.manifest.dimension,
                    "ref": demo_bundle.manifest.storage_ref}


def test_consecutive_native_stages_cross_into_python_once(annotated):
    plan = annotated._jdf.queryExecution().executedPlan().toString()
    assert plan.count("MapInArrow") == 1, plan


def test_offsets_point_at_the_original_text(annotated):
    for row in annotated.collect():
        text = row.text or ""
        for col in ("document", "sentence", "token", "embeddings"):
            for a in row[col]:
                assert text[a.begin : a.end + 1] == a.result, (row.doc_id, col, a)


def test_no_visible_character_is_lost_and_every_token_has_one_vector(annotated, demo_bundle):
    dim = demo_bundle.manifest.dimension
    for row in annotated.collect():
        text = row.text or ""
        covered = {i for t in row.token for i in range(t.begin, t.end + 1)}
        assert covered == {i for i, ch in enumerate(text) if not ch.isspace()}, row.doc_id
        assert [(e.begin, e.end) for e in row.embeddings] == [(t.begin, t.end) for t in row.token]
        assert all(len(e.embeddings) == dim for e in row.embeddings)


def test_metadata_keys_match_spark_nlp(annotated):
    row = annotated.where("doc_id = 'de-1'").first()
    assert row.document[0].metadata == {"sentence": "0"}
    assert [s.metadata["sentence"] for s in row.sentence] == ["0", "1"]
    assert {t.metadata["sentence"] for t in row.token} == {"0", "1"}
    e = row.embeddings[0]
    assert set(e.metadata) == {"sentence", "token", "pieceId", "isWordStart", "isOOV"}
    assert e.annotatorType == "word_embeddings" and e.metadata["token"] == e.result == "Der"


def test_cjk_characters_are_each_a_token(annotated):
    row = annotated.where("doc_id = 'zh-1'").first()
    assert [t.result for t in row.token][:5] == ["北", "京", "是", "中", "国"]


def test_null_and_empty_text_give_one_empty_document(annotated):
    for doc_id in ("null-1", "empty-1"):
        row = annotated.where(f"doc_id = '{doc_id}'").first()
        d = row.document[0]
        assert (len(row.document), d.annotatorType, d.begin, d.end, d.result, d.metadata) == (
            1, "document", 0, -1, "", {"sentence": "0"})
        assert row.sentence == [] and row.token == [] and row.embeddings == []


def test_vectors_equal_a_direct_onnx_run_of_the_same_pieces(annotated, demo_bundle):
    session, tokenizer = demo_bundle.create_session(intra_op_threads=1), demo_bundle.load_tokenizer()
    vocab = tokenizer.get_vocab()
    for row in annotated.where("text is not null").collect():
        for s in range(len(row.sentence)):
            tokens = [e for e in row.embeddings if e.metadata["sentence"] == str(s)]
            pieces = [tokenizer.encode(t.result, add_special_tokens=False).ids or [vocab["[UNK]"]] for t in tokens]
            ids = np.asarray([[vocab["[CLS]"], *[p for ps in pieces for p in ps], vocab["[SEP]"]]], dtype=np.int64)
            hidden = session.run(None, {"input_ids": ids, "attention_mask": np.ones_like(ids),
                                        "token_type_ids": np.zeros_like(ids)})[0][0]
            firsts = np.cumsum([1] + [len(p) for p in pieces])[:-1]
            np.testing.assert_allclose(np.asarray([t.embeddings for t in tokens]), hidden[firsts], atol=1e-4)
            assert [t.metadata["pieceId"] for t in tokens] == [str(p[0]) for p in pieces]


def test_pipeline_model_save_and_load_give_the_same_output(pipeline, corpus, annotated, tmp_path):
    model = pipeline.fit(corpus)
    model.write().overwrite().save(str(tmp_path / "pipeline"))
    loaded = PipelineModel.load(str(tmp_path / "pipeline"))
    assert [type(s).__name__ for s in loaded.stages] == ["DocumentAssembler", "SentenceDetector", "Tokenizer",
                                                         "BertEmbeddings"]
    assert loaded.stages[2].getOrDefault("contextChars") == model.stages[2].getOrDefault("contextChars")
    assert_df_equality(loaded.transform(corpus).orderBy("doc_id"), annotated.orderBy("doc_id"), ignore_metadata=True)


def test_stages_chain_with_df_transform_and_batch_size_does_not_matter(corpus, annotated, demo_bundle):
    out = (corpus.transform(DocumentAssembler().transform)
           .transform(SentenceDetector(inputCols=["document"]).transform)
           .transform(Tokenizer(inputCols=["sentence"]).transform)
           .transform(BertEmbeddings(modelPath=str(demo_bundle.path), batchSize=1).transform))
    assert_df_equality(out.select("doc_id", "token").orderBy("doc_id"), annotated.select("doc_id", "token").orderBy("doc_id"))
    a = {r.doc_id: r.embeddings for r in annotated.collect()}
    for r in out.collect():
        got = np.asarray([e.embeddings for e in r.embeddings]).reshape(-1)
        want = np.asarray([e.embeddings for e in a[r.doc_id]]).reshape(-1)
        np.testing.assert_allclose(got, want, atol=1e-5)


def test_missing_input_column_names_the_columns_there_are(corpus, demo_bundle):
    with pytest.raises(ValueError, match=r"input column 'sentence' not found; columns available .*'doc_id'"):
        corpus.transform(Tokenizer(inputCols=["sentence"]).transform)


def test_input_columns_are_checked_against_the_annotator_types(corpus, demo_bundle):
    # Spark NLP has no default inputCols and checks their number at setInputCols (same message shape)
    with pytest.raises(ValueError, match=r"inputCols not set.*\['document'\]"):
        corpus.transform(Tokenizer().transform)
    with pytest.raises(TypeError, match=r"expecting 1 column"):
        Tokenizer().setInputCols(["document", "sentence"])
    tokens = corpus.transform(DocumentAssembler().transform).transform(Tokenizer(inputCols=["document"]).transform)
    with pytest.raises(ValueError, match=r"'token' holds 'token' annotations; expected annotator types \['document'\]"):
        tokens.transform(Tokenizer(inputCols=["token"], outputCol="again").transform)


def test_vectors_equal_hugging_face_bert_on_the_converted_checkpoint(annotated, demo_bundle):
    torch = pytest.importorskip("torch")
    transformers = pytest.importorskip("transformers")
    checkpoint = demo_bundle.path / "checkpoint"
    model = transformers.BertModel.from_pretrained(checkpoint).eval()
    hf_tokenizer = transformers.AutoTokenizer.from_pretrained(checkpoint)
    compared = 0
    for row in annotated.where("text is not null").collect():
        for s in range(len(row.sentence)):
            tokens = [e for e in row.embeddings if e.metadata["sentence"] == str(s)]
            pieces = [hf_tokenizer.encode(t.result, add_special_tokens=False) or [hf_tokenizer.unk_token_id]
                      for t in tokens]
            ids = [hf_tokenizer.cls_token_id, *[p for ps in pieces for p in ps], hf_tokenizer.sep_token_id]
            with torch.inference_mode():
                hidden = model(input_ids=torch.tensor([ids])).last_hidden_state[0].numpy()
            firsts = np.cumsum([1] + [len(p) for p in pieces])[:-1]
            np.testing.assert_allclose(np.asarray([t.embeddings for t in tokens]), hidden[firsts], atol=1e-4)
            compared += len(tokens)
    assert compared > 100
