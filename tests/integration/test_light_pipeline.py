"""LightPipeline: the fitted native stages run on Python strings in the driver, and give what
``PipelineModel.transform`` gives on the same rows, in Spark NLP's return shapes."""

import numpy as np
import pytest
from pyspark.ml import Pipeline
from sparknlp.annotation import Annotation

from pipelines import LightPipeline
from pipelines.ner.stages import NerConverter, NerDLModel
from pipelines.ner.train import train_ner
from pipelines.resources import ner_sample_dir
from pipelines.annotate.stages import (BertEmbeddings, DocumentAssembler, MultilingualSentenceDetector, SentenceDetector,
                                       Tokenizer)

TEXTS = [
    "Angela Merkel besuchte Paris. Dr. Weiß stimmte zu.",
    "L'été à Paris était très chaud. Les cafés étaient pleins!",
    "北京是中国的首都。今天天气很好！",
    "Emoji 👨‍👩‍👧‍👦 and\u200bzero width, ctrl\x07char, U.S.A. (ok) 🇩🇪!",
    "",
    "   \n\t ",
]
COLUMNS = ["document", "sentence", "token", "embeddings", "ner", "ner_chunk"]


@pytest.fixture(scope="module")
def ner_dir(demo_bundle, tmp_path_factory):
    # One epoch on the bundled dev sample (seconds): a real tagger, whatever its quality.
    out = tmp_path_factory.mktemp("light") / "ner"
    train_ner(ner_sample_dir() / "dev.conll", None, demo_bundle.path, out, epochs=1, log=None)
    return out


def pipeline(demo_bundle, ner_dir, detector):
    return Pipeline(stages=[
        DocumentAssembler().setInputCol("text").setOutputCol("document"),
        detector.setInputCols(["document"]).setOutputCol("sentence"),
        Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
        BertEmbeddings.loadSavedModel(str(demo_bundle.path)).setInputCols(["sentence", "token"]).setOutputCol("embeddings"),
        NerDLModel.loadSavedModel(str(ner_dir)).setIncludeConfidence(True).setInputCols(["sentence", "token", "embeddings"]).setOutputCol("ner"),
        NerConverter().setInputCols(["sentence", "token", "ner"]).setOutputCol("ner_chunk"),
    ])


@pytest.mark.torch  # ner_dir trains a tagger
@pytest.mark.parametrize("detector", [SentenceDetector, MultilingualSentenceDetector])
def test_light_pipeline_equals_transform(spark, demo_bundle, ner_dir, detector):
    df = spark.createDataFrame([(i, t) for i, t in enumerate(TEXTS)], "id int, text string")
    model = pipeline(demo_bundle, ner_dir, detector()).fit(df)
    rows = {r.id: r for r in model.transform(df).collect()}

    light = LightPipeline(model, parse_embeddings=True)
    full = light.fullAnnotate(TEXTS)
    assert len(full) == len(TEXTS)
    for i, annotated in enumerate(full):
        assert list(annotated) == COLUMNS
        for col in COLUMNS:
            expected = rows[i][col]
            got = annotated[col]
            assert all(isinstance(a, Annotation) for a in got)
            assert [(a.annotatorType, a.begin, a.end, a.result, a.metadata) for a in got] == \
                   [(e.annotatorType, e.begin, e.end, e.result, dict(e.metadata)) for e in expected], (i, col)
            for a, e in zip(got, expected):
                np.testing.assert_allclose(a.embeddings, e.embeddings, atol=1e-5)
    # One epoch tags little but "O"; the confidences (4 decimals, compared above) show the tagger computed.
    assert len({a.metadata["confidence"] for row in full for a in row["ner"]}) > 3

    one = light.annotate(TEXTS[0])
    assert one == {col: [a.result for a in full[0][col]] for col in COLUMNS}
    assert light.annotate(TEXTS[:2]) == [light.annotate(TEXTS[0]), light.annotate(TEXTS[1])]
    assert len(light.fullAnnotate(TEXTS[1])) == 1  # a list of one dict for one string, as Spark NLP
    assert LightPipeline(model).fullAnnotate(TEXTS[0])[0]["embeddings"][0].embeddings == []


def test_light_pipeline_runs_no_spark_job(spark, demo_bundle):
    stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
              SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
              Tokenizer().setInputCols(["sentence"]).setOutputCol("token"),
              BertEmbeddings.loadSavedModel(str(demo_bundle.path)).setInputCols(["sentence", "token"])]
    tracker = spark.sparkContext.statusTracker()
    spark.sparkContext.setJobGroup("light-pipeline-check", "must stay empty")
    try:
        result = LightPipeline(stages).annotate(["Eins zwei. Drei.", "Vier"])
    finally:
        spark.sparkContext.setLocalProperty("spark.jobGroup.id", None)
    assert tracker.getJobIdsForGroup("light-pipeline-check") == []
    assert result[0]["token"] == ["Eins", "zwei", ".", "Drei", "."] and result[1]["embeddings"] == ["Vier"]


def test_light_pipeline_refuses_what_it_cannot_run(demo_bundle):
    with pytest.raises(TypeError, match="DocumentAssembler"):
        LightPipeline([Tokenizer().setInputCols(["sentence"])])
    with pytest.raises(TypeError, match="str' or list"):
        LightPipeline([DocumentAssembler().setInputCol("text")]).annotate(42)
