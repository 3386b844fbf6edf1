"""Native text stages against the real Spark NLP 5.5.3 annotators, row by row.

The corpus (:func:`pipelines.text.parity.corpus`) is the project's real sample texts plus generated
documents over 14 scripts with lists, abbreviations, decimals, URLs, e-mails, quotes, brackets,
ellipses, CJK and Thai, and hostile Unicode. Every annotation (result, begin, end, metadata) must be
equal, except in documents where the README documents a deliberate difference; each deliberate
difference has its own test below, showing what Spark NLP loses and that we do not.
"""

import pytest
from pyspark.ml import Pipeline

from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer
from pipelines.text import parity

COLUMNS = ["document", "sentence", "token"]
pytestmark = pytest.mark.sparknlp  # the Spark NLP jar: Spark 3.5 only


def _sparknlp(df, detector=None, tokenizer=None, assembler=None):
    import sparknlp.annotator as sa
    from sparknlp.base import DocumentAssembler as SparkDocumentAssembler

    stages = [
        assembler or SparkDocumentAssembler().setInputCol("text").setOutputCol("document"),
        detector or sa.SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
        tokenizer or sa.Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
    ]
    return Pipeline(stages=stages).fit(df).transform(df)


def _native(df, detector=None, tokenizer=None, assembler=None):
    return Pipeline(stages=[
        assembler or DocumentAssembler(inputCol="text"),
        detector or SentenceDetector(inputCols=["document"]),
        tokenizer or Tokenizer(inputCols=["sentence"]),
    ]).fit(df).transform(df)


def _rows(df, jvm):
    rows = [r.asDict(recursive=True) for r in df.select("doc_id", "text", *COLUMNS).collect()]
    return parity.normalise(rows, COLUMNS, jvm_offsets=jvm)


@pytest.fixture(scope="module")
def docs():
    return parity.corpus()


@pytest.fixture(scope="module")
def both(spark, docs):
    df = spark.createDataFrame(docs, "doc_id string, text string").repartition(4).cache()
    return _rows(_native(df), jvm=False), _rows(_sparknlp(df), jvm=True)


def test_corpus_is_large_multilingual_and_deterministic(docs):
    assert len(docs) >= 2000
    assert len(parity.scripts_in(t for _, t in docs)) >= 10
    assert parity.corpus() == docs


def test_every_annotation_equals_spark_nlp_outside_documented_differences(docs, both):
    ours, theirs = both
    texts = dict(docs)
    skip = lambda d, c: parity.deliberate_difference(texts[d], c) is not None  # noqa: E731
    rates = parity.compare(ours, theirs, COLUMNS, skip)
    for column in COLUMNS:
        assert rates[column].documents > 1000, column
        assert rates[column].differing == [], (column, rates[column].differing[:5])


def test_documents_with_cjk_differ_only_by_tokens_cut_at_ideographs(docs, both):
    ours, theirs = both
    cjk = [d for d, t in docs if parity.deliberate_difference(t, "token") == "one token per CJK ideograph"]
    assert len(cjk) > 300
    assert [d for d in cjk if ours[d]["sentence"] != theirs[d]["sentence"]] == []
    assert [d for d in cjk if not parity.splits_only_at_cjk(ours[d]["token"], theirs[d]["token"], dict(docs)[d])] == []


OPTION_DOCS = [
    ("o-1", "Hello Mr. Smith; how are you?\n\nI am fine. 1. First item 2. Second item. Dr. Who is here."),
    ("o-2", "e.g. this is it. The U.S. economy grew 3.5% in Jan. and Feb. of 2024. Visit http://a.b.com now!"),
    ("o-3", "I love New York. It is a new york state of mind; NEW YORK is big. The e-mail came in."),
    ("o-4", "(a) apples (b) bananas (c) cherries. A. Lincoln was here... Then he left. What?! No way!"),
]


@pytest.mark.parametrize("strategy", ["none", "prepend", "append"])
def test_options_agree_with_spark_nlp(spark, strategy):
    import sparknlp.annotator as sa

    df = spark.createDataFrame(OPTION_DOCS, "doc_id string, text string")
    bounds, exceptions = [r"\n\n", ";"], ["New York", "e-mail"]
    theirs = _rows(_sparknlp(
        df,
        detector=sa.SentenceDetector().setInputCols(["document"]).setOutputCol("sentence").setCustomBounds(bounds)
        .setCustomBoundsStrategy(strategy).setUseAbbreviations(strategy != "none").setDetectLists(strategy != "append"),
        tokenizer=sa.Tokenizer().setInputCols(["sentence"]).setOutputCol("token").setExceptions(exceptions)
        .setCaseSensitiveExceptions(strategy == "none"),
    ), jvm=True)
    ours = _rows(_native(
        df,
        detector=SentenceDetector(inputCols=["document"], customBounds=bounds, customBoundsStrategy=strategy,
                                  useAbbreviations=strategy != "none", detectLists=strategy != "append"),
        tokenizer=Tokenizer(inputCols=["sentence"], exceptions=exceptions, caseSensitiveExceptions=strategy == "none"),
    ), jvm=False)
    assert ours == theirs


def test_document_assembler_id_and_metadata_columns_as_spark_nlp(spark):
    from sparknlp.base import DocumentAssembler as SparkDocumentAssembler

    df = spark.createDataFrame([("d1", "Some text.", {"source": "web", "sentence": "7"})],
                               "doc_id string, text string, meta map<string,string>")
    theirs = SparkDocumentAssembler().setInputCol("text").setIdCol("doc_id").setMetadataCol("meta") \
        .setOutputCol("document").transform(df).first().document[0]
    ours = DocumentAssembler(inputCol="text", idCol="doc_id", metadataCol="meta").transform(df).first().document[0]
    assert ours.metadata == theirs.metadata == {"source": "web", "id": "d1", "sentence": "0"}
    assert (ours.begin, ours.end, ours.result) == (theirs.begin, theirs.end, theirs.result)


# ------------------------------------------------------------------------------------------------
# Deliberate differences (README "Differences from Spark NLP"): what Spark NLP loses, and that we do not.
def _coverage_loss(text, tokens):
    """Non-whitespace characters of ``text`` no token covers at its right place."""
    covered = {i for result, b, e, _ in tokens if 0 <= b and text[b:e + 1] == result for i in range(b, e + 1)}
    return [ch for i, ch in enumerate(text) if not ch.isspace() and i not in covered]


DELIBERATE = {
    "marker characters": ("Bullet ╞ and \uf050 here. Tokens ↇ too.", {}, {}),
    "cjk ideographs": ("北京是中国的首都。", {}, {}),
    "split chars kept": ("state-of-the-art design", {}, {"splitChars": ["-"]}),
    "long token cut": ("a supercalifragilistic word", {}, {"maxLength": 5}),
    "long sentence cut": ("Short one. " + "word " * 12 + "end.", {"maxLength": 30}, {}),
    "split length offsets": ("Supercalifragilistic is long.", {"splitLength": 10}, {}),
    "control characters": ("\x07Bell rings. \x1bEscape.", {}, {}),
    "astral offsets": ("Emoji 🙂 then. Next 😀 one.", {}, {}),
}


@pytest.mark.parametrize("case", list(DELIBERATE))
def test_deliberate_difference(spark, case):
    import sparknlp.annotator as sa

    text, sd_params, tk_params = DELIBERATE[case]
    df = spark.createDataFrame([("d", text)], "doc_id string, text string")
    spark_sd = sa.SentenceDetector().setInputCols(["document"]).setOutputCol("sentence")
    spark_tk = sa.Tokenizer().setInputCols(["sentence"]).setOutputCol("token")
    for k, v in sd_params.items():
        getattr(spark_sd, "set" + k[0].upper() + k[1:])(v)
    for k, v in tk_params.items():
        getattr(spark_tk, "set" + k[0].upper() + k[1:])(v)
    raw = _sparknlp(df, spark_sd, spark_tk).first()
    ours = _rows(_native(df, SentenceDetector(inputCols=["document"], **sd_params),
                         Tokenizer(inputCols=["sentence"], **tk_params)), jvm=False)["d"]["token"]
    theirs_raw = [(t.result, t.begin, t.end, t.metadata) for t in raw.token]  # the JVM's own offsets

    assert _coverage_loss(text, ours) == []  # ours: every character, at its place
    if case == "cjk ideographs":  # Spark NLP keeps the run whole, so BERT sees only its first character
        assert any(len(r) > 1 and parity.deliberate_difference(r, "token") for r, *_ in theirs_raw)
        assert all(len(r) == 1 for r, *_ in ours if "\u4e00" <= r[0] <= "\u9fff")
    else:  # Spark NLP loses characters, or points at the wrong ones
        assert _coverage_loss(text, theirs_raw) != []
