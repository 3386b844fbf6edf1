"""The `sparknlp` engine: the same pipeline from the real Spark NLP annotators.

For clusters that have the Spark NLP jar (a Databricks library, or
``--packages com.johnsnowlabs.nlp:spark-nlp_2.13:<7.x>`` for Spark 4). It emits the same annotation
columns, so the lake's tables are derived from them exactly as for the native engine. It inherits
Spark NLP's behaviour, including its known losses (tokens beyond maxSentenceLength get no embedding);
the native engine is the one without them.
"""

from __future__ import annotations

from dataclasses import dataclass

from pipelines.config import JobConfig


class SparkNlpUnavailable(RuntimeError):
    pass


@dataclass(frozen=True)
class SparkNlpModel:
    """What the run manifest and the incremental fingerprint need to know about the model."""

    storage_ref: str
    name: str
    dimension: int = 768
    precision: str = "fp32"
    kind: str = "real"


def require_jar(spark) -> None:
    from py4j.java_gateway import JavaClass

    try:
        found = isinstance(spark._jvm.com.johnsnowlabs.nlp.DocumentAssembler, JavaClass)
    except Exception:  # Spark Connect has no _jvm: let Spark NLP itself report
        return
    if not found:
        raise SparkNlpUnavailable(
            "engine: sparknlp needs the Spark NLP jar on the cluster, and this Spark session does not have it. "
            "Install it (Databricks: a Maven library com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0; spark-submit: "
            "--packages com.johnsnowlabs.nlp:spark-nlp_2.13:7.0.0), or use engine: native, which needs no jar.")


def model_info(config: JobConfig) -> SparkNlpModel:
    m = config.model
    name = m.sparknlp_model_path or m.sparknlp_pretrained
    return SparkNlpModel(storage_ref=name, name=name)


def build_pipeline(config: JobConfig):
    from pyspark.ml import Pipeline
    from sparknlp.annotator import BertEmbeddings, SentenceDetector, Tokenizer
    from sparknlp.base import DocumentAssembler

    s = config.stages
    m = config.model
    embeddings = (BertEmbeddings.load(m.sparknlp_model_path) if m.sparknlp_model_path
                  else BertEmbeddings.pretrained(m.sparknlp_pretrained, m.sparknlp_lang))
    tokenizer = Tokenizer().setInputCols(["sentence"]).setOutputCol("token").setExceptions(s.tokenizer.exceptions) \
        .setCaseSensitiveExceptions(s.tokenizer.case_sensitive_exceptions).setMinLength(s.tokenizer.min_length) \
        .setMaxLength(s.tokenizer.max_length).setTargetPattern(s.tokenizer.target_pattern)
    if s.tokenizer.context_chars is not None:
        tokenizer.setContextChars(s.tokenizer.context_chars)
    if s.tokenizer.split_chars:
        tokenizer.setSplitChars(s.tokenizer.split_chars)
    detector = SentenceDetector().setInputCols(["document"]).setOutputCol("sentence") \
        .setCustomBounds(s.sentence_detector.custom_bounds) \
        .setUseCustomBoundsOnly(s.sentence_detector.use_custom_bounds_only) \
        .setMinLength(s.sentence_detector.min_length).setMaxLength(s.sentence_detector.max_length)
    return Pipeline(stages=[
        DocumentAssembler().setInputCol(config.input.text_col).setOutputCol("document"),
        detector,
        tokenizer,
        embeddings.setInputCols(["sentence", "token"]).setOutputCol("embeddings")
        .setMaxSentenceLength(s.embeddings.max_sentence_length).setBatchSize(s.embeddings.batch_size),
    ])
