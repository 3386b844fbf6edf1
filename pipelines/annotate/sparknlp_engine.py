"""The `sparknlp` engine: the same pipeline from the real Spark NLP annotators.

For clusters that have the Spark NLP jar (a Databricks library, or ``--packages
com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3`` for Spark 3.5; a job that starts Spark itself hands it the
jars of ``pipelines.spark.jars``). It emits the same annotation columns, so the lake's tables are derived from
them exactly as for the native engine. It inherits Spark NLP's behaviour, including its known losses
(tokens beyond maxSentenceLength get no embedding); the native engine is the one without them.

The embeddings model, in this order:

1. ``model.sparknlp_model_path``: a BertEmbeddings saved by Spark NLP (``BertEmbeddings.load``);
2. ``model.sparknlp_pretrained`` when the config sets it: ``BertEmbeddings.pretrained(name, lang)``
   (needs John Snow Labs' model store);
3. otherwise the model bundle ``model.bundle``, the one the native engine uses: its ONNX graph and
   vocabulary are exported once into the cache (``pipelines.model.sparknlp_io``) and imported with
   ``BertEmbeddings.loadSavedModel``, so both engines run the same model and no model hub is needed.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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


# A class of the jar, and one of org.tensorflow:ndarray, which Java serialization of Spark NLP's BERT needs.
_REQUIRED_CLASSES = {
    "com.johnsnowlabs.nlp.DocumentAssembler": "the Spark NLP jar",
    "org.tensorflow.ndarray.buffer.LongDataBuffer": "the jar org.tensorflow:ndarray:0.3.3 (Spark NLP's BERT models "
                                                    "cannot be sent to executors without it)",
}
# Spark NLP's classifier annotators also link TensorFlow's Java API while loading an ONNX model.
_CLASSIFIER_CLASS = ("org.tensorflow.Tensor", "the jar org.tensorflow:tensorflow-core-api:0.4.2 (Spark NLP's "
                                              "classifier annotators cannot load a model without it)")


def require_jar(spark, classifiers: bool = False) -> None:
    """One actionable error unless the session has the jars the engine needs (``classifiers``: those of
    Spark NLP's classifier annotators too)."""
    from py4j.java_gateway import JavaClass

    required = {**_REQUIRED_CLASSES, **dict([_CLASSIFIER_CLASS] if classifiers else [])}
    for class_name, what in required.items():
        try:
            found = spark._jvm
            for part in class_name.split("."):
                found = getattr(found, part)
        except Exception:  # Spark Connect has no _jvm: let Spark NLP itself report
            return
        if not isinstance(found, JavaClass):
            raise SparkNlpUnavailable(
                f"engine: sparknlp needs {what} on the cluster, and this Spark session does not have it. "
                "Install it (Databricks: Maven libraries com.johnsnowlabs.nlp:spark-nlp_2.12:5.5.3 and "
                "org.tensorflow:ndarray:0.3.3, plus org.tensorflow:tensorflow-core-api:0.4.2 for classifiers; "
                "spark-submit: --jars with the files `python -m pipelines.spark.jars paths sparknlp` lists), let the "
                "job start Spark itself (it hands over the jars `make jars` fetched), or use engine: native, "
                "which needs no jar.")


def model_source(config: JobConfig) -> str:
    """``saved``, ``pretrained`` or ``bundle``: where the engine's BertEmbeddings comes from."""
    m = config.model
    if m.sparknlp_model_path:
        return "saved"
    if "sparknlp_pretrained" in m.model_fields_set:
        return "pretrained"
    return "bundle"


def model_info(config: JobConfig) -> SparkNlpModel:
    if model_source(config) == "bundle":
        manifest = _bundle(config).manifest
        return SparkNlpModel(storage_ref=manifest.storage_ref, name=manifest.name, dimension=manifest.dimension,
                             precision=manifest.precision, kind=manifest.kind)
    m = config.model
    name = m.sparknlp_model_path or m.sparknlp_pretrained
    return SparkNlpModel(storage_ref=name, name=name)


def _bundle(config: JobConfig):
    """The bundle the run imports (built by the job first where it is the demo one)."""
    from pipelines.model.bundle import ModelBundle

    return ModelBundle.load(config.model.bundle)


def export_folder(bundle) -> Path:
    """The cache folder of ``bundle``'s Spark NLP export, named by what the bundle holds."""
    from pipelines.cache import cache_dir

    digest = bundle.manifest.files["model.onnx"][:16]
    return cache_dir() / "sparknlp-models" / f"{bundle.manifest.storage_ref}-{digest}"


def embeddings_from_bundle(bundle, spark, folder: str | Path | None = None):
    """The real Spark NLP ``BertEmbeddings`` running ``bundle``'s graph, set up as the bundle says."""
    from sparknlp.annotator import BertEmbeddings

    from pipelines.model.sparknlp_io import export_for_sparknlp

    target = Path(folder) if folder else export_folder(bundle)
    if folder or not (target / "model.onnx").exists():
        export_for_sparknlp(bundle, target)
    m = bundle.manifest
    return (BertEmbeddings.loadSavedModel(str(target), spark).setCaseSensitive(m.case_sensitive)
            .setDimension(m.dimension).setStorageRef(m.storage_ref))


def sparknlp_classifier_name(manifest) -> str:
    """The Spark NLP annotator that runs a classifier bundle: Bert/DistilBert For Token/Sequence Classification."""
    prefix = {"bert": "Bert", "distilbert": "DistilBert"}[manifest.model_type]
    return prefix + {"token-classification": "ForTokenClassification",
                     "sequence-classification": "ForSequenceClassification"}[manifest.task]


def classifier_from_bundle(bundle, spark, folder: str | Path | None = None):
    """The real Spark NLP classifier annotator running a classifier ``bundle``'s graph (the same export as
    :func:`embeddings_from_bundle`: ``model.onnx``, ``assets/vocab.txt``, ``assets/labels.txt``)."""
    import sparknlp.annotator

    from pipelines.model.sparknlp_io import export_for_sparknlp

    require_jar(spark, classifiers=True)  # one line naming the jar, not a NoClassDefFoundError trace
    target = Path(folder) if folder else export_folder(bundle)
    if folder or not (target / "model.onnx").exists():
        export_for_sparknlp(bundle, target)
    annotator = getattr(sparknlp.annotator, sparknlp_classifier_name(bundle.manifest))
    return annotator.loadSavedModel(str(target), spark).setCaseSensitive(bundle.manifest.case_sensitive)


def embeddings(config: JobConfig, spark):
    from sparknlp.annotator import BertEmbeddings

    source = model_source(config)
    m = config.model
    if source == "saved":
        return BertEmbeddings.load(m.sparknlp_model_path)
    if source == "pretrained":
        return BertEmbeddings.pretrained(m.sparknlp_pretrained, m.sparknlp_lang)
    return embeddings_from_bundle(_bundle(config), spark)


def text_stages(config: JobConfig):
    """DocumentAssembler, SentenceDetector and Tokenizer of Spark NLP, with the job's parameters."""
    from sparknlp.annotator import SentenceDetector, Tokenizer
    from sparknlp.base import DocumentAssembler

    s = config.stages
    tokenizer = Tokenizer().setInputCols(["sentence"]).setOutputCol("token").setExceptions(s.tokenizer.exceptions) \
        .setCaseSensitiveExceptions(s.tokenizer.case_sensitive_exceptions).setMinLength(s.tokenizer.min_length) \
        .setMaxLength(s.tokenizer.max_length).setTargetPattern(s.tokenizer.target_pattern)
    if s.tokenizer.context_chars is not None:
        tokenizer.setContextChars(s.tokenizer.context_chars)
    if s.tokenizer.split_chars:
        tokenizer.setSplitChars(s.tokenizer.split_chars)
    if s.tokenizer.split_pattern:
        tokenizer.setSplitPattern(s.tokenizer.split_pattern)
    sd = s.sentence_detector  # Spark NLP has one rule set, the pragmatic one, whatever `kind` says
    detector = SentenceDetector().setInputCols(["document"]).setOutputCol("sentence") \
        .setCustomBounds(sd.custom_bounds).setCustomBoundsStrategy(sd.custom_bounds_strategy) \
        .setUseCustomBoundsOnly(sd.use_custom_bounds_only).setUseAbbreviations(sd.use_abbreviations) \
        .setDetectLists(sd.detect_lists).setMinLength(sd.min_length).setMaxLength(sd.max_length)
    if sd.split_length:
        detector.setSplitLength(sd.split_length)
    return [DocumentAssembler().setInputCol(config.input.text_col).setOutputCol("document"), detector, tokenizer]


def build_pipeline(config: JobConfig, spark=None):
    from pyspark.ml import Pipeline
    from pyspark.sql import SparkSession

    s = config.stages
    bert = embeddings(config, spark or SparkSession.getActiveSession())
    return Pipeline(stages=[
        *text_stages(config),
        bert.setInputCols(["sentence", "token"]).setOutputCol("embeddings")
        .setMaxSentenceLength(s.embeddings.max_sentence_length).setBatchSize(s.embeddings.batch_size),
    ])
