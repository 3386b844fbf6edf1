"""Spark NLP's annotation type without importing spark-nlp: the native engine does not need it (and its
Python imports distutils, which Python 3.12 no longer ships)."""

import json
import subprocess
import sys
from pathlib import Path

from pipelines.annotation import spark_type

ROOT = Path(__file__).resolve().parents[2]


def test_the_annotation_type_is_spark_nlps_to_the_last_nullable_flag():
    # spark-nlp is a dependency, so it must import here too: on Python 3.12+ through the distutils that the
    # declared setuptools provides
    from sparknlp.annotation import Annotation

    assert spark_type() == Annotation.arrayType()
    assert spark_type().jsonValue() == Annotation.arrayType().jsonValue()


NATIVE = """
import json, sys
sys.modules["sparknlp"] = None  # what an absent (or unimportable) spark-nlp gives: ImportError
import pipelines.tools.cli, pipelines.run.job, pipelines.annotate.stages
from pipelines import LightPipeline
from pipelines.annotation import spark_type
from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer
spark_type()
stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
          SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
          Tokenizer().setInputCols(["sentence"]).setOutputCol("token")]
full = LightPipeline(stages).fullAnnotate("Eins zwei. Drei.")
print(json.dumps({col: [[type(a).__name__, a.annotatorType, a.begin, a.end, a.result, a.metadata, a.embeddings]
                        for a in anns] for col, anns in full[0].items()}))
"""


def test_the_native_path_and_light_pipeline_run_without_spark_nlp():
    proc = subprocess.run([sys.executable, "-c", NATIVE], capture_output=True, text=True, cwd=ROOT)
    assert proc.returncode == 0, proc.stderr[-2000:]
    without = json.loads(proc.stdout)
    assert {a[0] for anns in without.values() for a in anns} == {"Ann"}  # our own, with the same six fields

    from pipelines import LightPipeline
    from pipelines.annotate.stages import DocumentAssembler, SentenceDetector, Tokenizer

    stages = [DocumentAssembler().setInputCol("text").setOutputCol("document"),
              SentenceDetector().setInputCols(["document"]).setOutputCol("sentence"),
              Tokenizer().setInputCols(["sentence"]).setOutputCol("token")]
    with_sparknlp = LightPipeline(stages).fullAnnotate("Eins zwei. Drei.")[0]
    assert {type(a).__module__ for anns in with_sparknlp.values() for a in anns} == {"sparknlp.annotation"}
    assert {col: [a[1:] for a in anns] for col, anns in without.items()} == \
           {col: [[a.annotatorType, a.begin, a.end, a.result, a.metadata, a.embeddings] for a in anns]
            for col, anns in with_sparknlp.items()}
    assert [a.result for a in with_sparknlp["token"]] == ["Eins", "zwei", ".", "Drei", "."]
