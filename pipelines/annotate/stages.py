"""Native stages with Spark NLP's names, parameters, defaults and output columns.

Each stage is a pyspark.ml ``Transformer`` (Params with defaults and setters,
``DefaultParamsReadable``/``DefaultParamsWritable``, so ``Pipeline``/``PipelineModel.save/load`` work),
and also works alone: ``df.transform(Tokenizer().transform)``.

Fusion: a stage that receives the DataFrame another native stage just returned does not stack a second
Python pass on it. It rebuilds the pass from the earlier stage's input with both stages' steps, so
DocumentAssembler -> SentenceDetector -> Tokenizer -> BertEmbeddings is ONE ``mapInArrow`` over the
input rows, and the intermediate DataFrames are never executed.
"""

from __future__ import annotations

import functools

from pyspark import keyword_only
from pyspark.ml import Transformer
from pyspark.ml.param import Param, Params, TypeConverters
from pyspark.ml.util import DefaultParamsReadable, DefaultParamsWritable
from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import StructField, StructType

from pipelines import annotation as A
from pipelines.annotate import native
from pipelines.text import pragmatic
from pipelines.text.sentences import DEFAULT_LANGUAGE
from pipelines.text.tokens import DEFAULT_CONTEXT_CHARS, TokenizerRules

_FUSION_ATTR = "_corpus_nlp_fusion"


def verified_model(path: str, kind: str = "bundle"):
    """The model at ``path`` (a directory or any Hadoop URI, fetched through the session: see
    :mod:`pipelines.store.model_paths`), loaded on the driver with every file's hash checked, once per version:
    a model bundle (``kind`` "bundle") or an NER model directory ("ner")."""
    from pipelines.store.model_paths import local_dir

    path = local_dir(path)
    manifest = path / ("ner.json" if kind == "ner" else "manifest.json")
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else None
    return _verified_model(str(path.resolve()), kind, stamp)


def verified_bundle(path: str):
    return verified_model(path, "bundle")


@functools.lru_cache(maxsize=16)
def _verified_model(path: str, kind: str, manifest_mtime):
    if kind == "ner":
        from pipelines.ner.model import NerModel

        return NerModel.load(path, verify=True)
    from pipelines.model.bundle import ModelBundle

    return ModelBundle.load(path, verify=True)


def stage_param(name: str, doc: str, converter) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class NativeStage(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    outputCol = stage_param("outputCol", "name of the annotation column this stage writes", TypeConverters.toString)
    annotator_type = A.DOCUMENT

    def setOutputCol(self, value):
        return self._set(outputCol=value)

    def getOutputCol(self) -> str:
        return self.getOrDefault(self.outputCol)

    def _set_init(self, kwargs):
        """Constructor keywords, through the setters where there are some: their checks hold for both.
        (Not ``modelPath``: a stage's constructor does not load its model, ``loadSavedModel`` does.)"""
        for name, value in kwargs.items():
            setter = getattr(self, f"set{name[:1].upper()}{name[1:]}", None)
            if value is None:
                continue
            if setter is not None and name != "modelPath":
                setter(value)
            else:
                self._set(**{name: value})
        return self

    # subclasses: the picklable step, and the Spark metadata of the output column
    def _step(self):
        raise NotImplementedError

    def _column_metadata(self) -> dict:
        return {"annotatorType": self.annotator_type}

    def _transform(self, dataset: DataFrame) -> DataFrame:
        # the instance's own attribute: a Spark Connect DataFrame answers any other name with a Column
        fused = vars(dataset).get(_FUSION_ATTR)
        base, stages = fused if fused is not None else (dataset, [])
        stages = stages + [self]
        out = run_native_stages(base, stages)
        setattr(out, _FUSION_ATTR, (base, stages))
        return out


def run_native_stages(base: DataFrame, stages: list[NativeStage], keep: list[str] = (),
                      report=None) -> DataFrame:
    """One mapInArrow pass over ``base`` that adds each stage's output column, a slice of rows at a time
    (:func:`pipelines.annotate.tables.stream_annotations`). ``report`` (a :class:`pipelines.annotate.worker_reports.RunReport`):
    a row that raises is reported there, by its ``keep`` columns, and left out, and the output carries the
    report column until ``report.split`` takes it off; None: the task fails."""
    from pipelines.annotate.tables import stream_annotations
    from pipelines.annotate.worker_reports import with_report_column

    steps = [s._step() for s in stages]
    check_inputs(base, steps, stages)
    schema = StructType(list(base.schema.fields) + [StructField(s.output_col, A.spark_type(), True) for s in steps])

    def annotate(batches):
        if report is None:
            return stream_annotations(batches, steps, list(keep))
        task = report.task()
        return task.attach(stream_annotations(batches, steps, list(keep), task.row_failed), schema)

    out = base.mapInArrow(annotate, with_report_column(schema) if report is not None else schema)
    new_cols = {s.getOutputCol(): s._column_metadata() for s in stages}
    return out.select(
        *[F.col(c).alias(c, metadata=new_cols[c]) if c in new_cols else F.col(c) for c in out.columns]
    )


def check_inputs(base: DataFrame, steps, stages=None) -> None:
    """Every input column exists; with ``stages``, each holds the annotator type the stage reads."""
    available = list(base.columns)
    types = {f.name: f.metadata.get("annotatorType") for f in base.schema.fields}
    for i, step in enumerate(steps):
        stage = stages[i] if stages is not None else None
        name_of = type(stage).__name__ if stage is not None else type(step).__name__.replace("Step", "")
        expected = getattr(stage, "input_annotator_types", None) if stage is not None else None
        for j, name in enumerate(step.inputs()):
            if name not in available:
                raise ValueError(
                    f"{name_of}: input column {name!r} not found; columns available at this point: {available}"
                )
            if expected is not None and j < len(expected) and types.get(name) not in (None, expected[j]):
                raise ValueError(
                    f"{name_of}: input column {name!r} holds {types[name]!r} annotations; expected annotator "
                    f"types {list(expected)} (columns {step.inputs()[:len(expected)]})"
                )
        available.append(step.output_col)
        if stage is not None:
            types[step.output_col] = stage.annotator_type


# ------------------------------------------------------------------------------------------------
# Shared params, as pyspark.ml.param.shared does: one definition, used by every stage that has it.
class HasInputCols(Params):
    """``inputCols`` checked against the annotator types the stage reads (``input_annotator_types``)."""

    inputCols = stage_param("inputCols", "annotation columns this stage reads", TypeConverters.toListString)
    input_annotator_types: tuple[str, ...] | None = None

    def setInputCols(self, *value):
        """Columns to read, one per entry of ``input_annotator_types`` (a list or separate arguments)."""
        cols = list(value[0]) if len(value) == 1 and isinstance(value[0], (list, tuple)) else list(value)
        expected = self.input_annotator_types
        if expected is not None and len(cols) != len(expected):
            raise TypeError(f"setInputCols in {type(self).__name__} expecting {len(expected)} column(s) of "
                             f"annotator type(s) {list(expected)}; got {len(cols)}: {cols}")
        return self._set(inputCols=cols)

    def getInputCols(self) -> list[str]:
        if not self.isDefined(self.inputCols):
            raise ValueError(f"{type(self).__name__}: inputCols not set; set them with setInputCols(...), one "
                             f"column per annotator type {list(self.input_annotator_types or [])}")
        return self.getOrDefault(self.inputCols)


class HasModelPath(Params):
    modelPath: Param[str] = stage_param("modelPath", "model directory (a bundle, or an NER model), or any Hadoop URI",
                                   TypeConverters.toString)

    def setModelPath(self, value: str):
        return self._set(modelPath=value)

    def getModelPath(self) -> str:
        return self.getOrDefault(self.modelPath)


class HasBatchSize(Params):
    batchSize: Param[int] = stage_param("batchSize", "items per model call, at most", TypeConverters.toInt)

    def setBatchSize(self, value: int):
        return self._set(batchSize=value)

    def getBatchSize(self) -> int:
        return self.getOrDefault(self.batchSize)


class HasStorageRef(Params):
    storageRef: Param[str] = stage_param("storageRef", "which model produced the vectors (from the model)",
                                    TypeConverters.toString)

    def setStorageRef(self, value: str):
        return self._set(storageRef=value)


class HasIntraOpThreads(Params):
    intraOpThreads: Param[int] = stage_param("intraOpThreads", "model threads per task; 0 = spark.task.cpus",
                                        TypeConverters.toInt)

    def setIntraOpThreads(self, value: int):
        return self._set(intraOpThreads=value)

    def getIntraOpThreads(self) -> int:
        return self.getOrDefault(self.intraOpThreads)


MAX_POSITIONS = 512  # BERT's position embeddings: no window of a BERT model is longer


class HasMaxSentenceLength(Params):
    """As Spark NLP's ``HasMaxSentenceLengthLimit``: the param and its limit together."""

    maxSentenceLength: Param[int] = stage_param(
        "maxSentenceLength", f"WordPieces per window, [CLS]/[SEP] included (3 to {MAX_POSITIONS})", TypeConverters.toInt)

    def setMaxSentenceLength(self, value: int):
        if not 3 <= value <= MAX_POSITIONS:
            raise ValueError(f"{type(self).__name__}: maxSentenceLength must be in [3, {MAX_POSITIONS}] (WordPieces "
                             f"per window, [CLS] and [SEP] included), got {value}")
        return self._set(maxSentenceLength=value)

    def getMaxSentenceLength(self) -> int:
        return self.getOrDefault(self.maxSentenceLength)


class HasCaseSensitive(Params):
    caseSensitive: Param[bool] = stage_param("caseSensitive", "must agree with the bundle's tokenizer",
                                        TypeConverters.toBoolean)

    def setCaseSensitive(self, value: bool):
        return self._set(caseSensitive=value)

    def getCaseSensitive(self) -> bool:
        return self.getOrDefault(self.caseSensitive)


class HasMaxBatchPieces(Params):
    maxBatchPieces: Param[int] = stage_param("maxBatchPieces", "padded WordPieces per model call, at most (0: no cap)",
                                        TypeConverters.toInt)

    def setMaxBatchPieces(self, value: int):
        return self._set(maxBatchPieces=value)


class HasProviders(Params):
    providers: Param[list[str]] = stage_param("providers", "ONNX Runtime execution providers, in order of preference",
                                         TypeConverters.toListString)

    def setProviders(self, value: list[str]):
        """E.g. ["CUDAExecutionProvider", "CPUExecutionProvider"] on GPU executors (needs onnxruntime-gpu)."""
        return self._set(providers=list(value))


class HasMinMaxLength(Params):
    minLength = stage_param("minLength", "minimum length", TypeConverters.toInt)
    maxLength = stage_param("maxLength", "maximum length", TypeConverters.toInt)

    def setMinLength(self, value: int):
        if value < 0:
            raise ValueError("minLength must be greater equal than 0")
        return self._set(minLength=value)

    def setMaxLength(self, value: int):
        if value < self.getOrDefault(self.minLength):
            raise ValueError("maxLength must be greater equal than minLength")
        return self._set(maxLength=value)

    def getMinLength(self) -> int:
        return self.getOrDefault(self.minLength)

    def getMaxLength(self) -> int:
        return self.getOrDefault(self.maxLength)


# ------------------------------------------------------------------------------------------------
class DocumentAssembler(NativeStage):
    """Raw text column -> ``document`` annotation (null/empty text -> one empty document).

    Metadata as Spark NLP's: ``sentence: "0"``, plus ``id`` (the ``idCol`` value) and the ``metadataCol``
    map's entries when those are set.
    """

    inputCol = stage_param("inputCol", "text column", TypeConverters.toString)
    idCol = stage_param("idCol", "column whose value becomes the document's 'id' metadata", TypeConverters.toString)
    metadataCol = stage_param("metadataCol", "map<string,string> column merged into the document's metadata",
                         TypeConverters.toString)
    cleanupMode = stage_param("cleanupMode", "text cleanup; only 'disabled' keeps offsets into the original text",
                         TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCol=None, outputCol=None, idCol=None, metadataCol=None, cleanupMode=None):
        super().__init__()
        self._setDefault(inputCol="text", outputCol="document", cleanupMode="disabled")
        self._set_init(self._input_kwargs)

    def setInputCol(self, value: str):
        return self._set(inputCol=value)

    def setIdCol(self, value: str):
        return self._set(idCol=value)

    def setMetadataCol(self, value: str):
        return self._set(metadataCol=value)

    def setCleanupMode(self, value: str):
        return self._set(cleanupMode=value)

    def _step(self):
        mode = self.getOrDefault(self.cleanupMode)
        if mode != "disabled":
            raise ValueError(
                f"DocumentAssembler cleanupMode={mode!r} is not supported by the native engine: it rewrites "
                "the text, and our offsets always point into the original text. Use 'disabled'."
            )
        optional = lambda p: self.getOrDefault(p) if self.isDefined(p) else None  # noqa: E731
        return native.AssembleStep(self.getOrDefault(self.inputCol), self.getOutputCol(), mode,
                                   optional(self.idCol), optional(self.metadataCol))


class _SentenceParams(HasInputCols, HasMinMaxLength):
    input_annotator_types = (A.DOCUMENT,)
    explodeSentences = stage_param("explodeSentences", "one row per sentence (not supported)", TypeConverters.toBoolean)
    splitLength = stage_param("splitLength", "pack words into pieces of at most this length (a word is never cut)",
                         TypeConverters.toInt)

    def setExplodeSentences(self, value: bool):
        return self._set(explodeSentences=value)

    def setSplitLength(self, value: int):
        return self._set(splitLength=value)

    def _check_explode(self):
        if self.getOrDefault(self.explodeSentences):
            raise ValueError(f"{type(self).__name__} explodeSentences=True is not supported by the native engine; "
                             "explode the sentence column with pyspark.sql.functions.explode instead.")

    def _length_options(self) -> dict:
        g = self.getOrDefault
        return {"min_length": g(self.minLength), "max_length": g(self.maxLength),
                "split_length": g(self.splitLength) if self.isDefined(self.splitLength) else None}


class SentenceDetector(NativeStage, _SentenceParams):
    """Spark NLP's rule-based SentenceDetector (the pragmatic rules), sentence by sentence the same.

    Sentences are ``document`` annotations with ``sentence: "<index>"`` metadata. For text in scripts
    those rules do not know (。, ।, ؟ ...), use :class:`MultilingualSentenceDetector`.
    """

    useAbbreviations = stage_param("useAbbreviations", "protect the periods of Spark NLP's abbreviation lists",
                              TypeConverters.toBoolean)
    detectLists = stage_param("detectLists", "break before list items (1. 2. / (a) (b))", TypeConverters.toBoolean)
    customBounds = stage_param("customBounds", "regular expressions (Java syntax) that end a sentence",
                          TypeConverters.toListString)
    useCustomBoundsOnly = stage_param("useCustomBoundsOnly", "split only at customBounds", TypeConverters.toBoolean)
    customBoundsStrategy = stage_param("customBoundsStrategy", "none (drop the matched bound), prepend or append "
                                  "(keep it at the start of the next / end of this sentence)",
                                  TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, useAbbreviations=None, detectLists=None,
                 customBounds=None, useCustomBoundsOnly=None, customBoundsStrategy=None, splitLength=None,
                 minLength=None, maxLength=None):
        super().__init__()
        self._setDefault(
            outputCol="sentence", useAbbreviations=True, detectLists=True, customBounds=[],
            useCustomBoundsOnly=False, customBoundsStrategy="none", explodeSentences=False, minLength=0,
            maxLength=99999,
        )
        self._set_init(self._input_kwargs)

    def setCustomBounds(self, value: list[str]):
        return self._set(customBounds=list(value))

    def setUseCustomBoundsOnly(self, value: bool):
        return self._set(useCustomBoundsOnly=value)

    def setCustomBoundsStrategy(self, value: str):
        if value not in pragmatic.CUSTOM_BOUNDS_STRATEGIES:
            raise ValueError(f"{value} is not a valid strategy for custom bounds. "
                             f"Possible Values: ({', '.join(pragmatic.CUSTOM_BOUNDS_STRATEGIES)}).")
        return self._set(customBoundsStrategy=value)

    def setUseAbbreviations(self, value: bool):
        return self._set(useAbbreviations=value)

    def setDetectLists(self, value: bool):
        return self._set(detectLists=value)

    def rules(self) -> pragmatic.PragmaticRules:
        g = self.getOrDefault
        return pragmatic.PragmaticRules(
            use_abbreviations=g(self.useAbbreviations), detect_lists=g(self.detectLists),
            custom_bounds=tuple(g(self.customBounds)), use_custom_bounds_only=g(self.useCustomBoundsOnly),
            custom_bounds_strategy=g(self.customBoundsStrategy),
        )

    def _step(self):
        self._check_explode()
        return native.SentenceStep(self.getInputCols()[0], self.getOutputCol(), self.rules(), self._length_options())


class MultilingualSentenceDetector(NativeStage, _SentenceParams):
    """Rule-based sentence boundaries for ~300 languages (sentencex): 。！？ । ؟ and the like.

    Not a Spark NLP annotator: the same output schema as SentenceDetector, other rules. ``language``
    (ISO 639-1, 'xx' for generic rules) or a per-row ``languageCol`` picks the rule set.
    """

    language = stage_param("language", "segmentation rules' language (ISO 639-1; 'xx' generic)", TypeConverters.toString)
    languageCol = stage_param("languageCol", "column holding each row's language code", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, language=None, languageCol=None, splitLength=None,
                 minLength=None, maxLength=None):
        super().__init__()
        self._setDefault(outputCol="sentence", explodeSentences=False, minLength=0, maxLength=99999,
                         language=DEFAULT_LANGUAGE)
        self._set_init(self._input_kwargs)

    def setLanguage(self, value: str):
        return self._set(language=value)

    def setLanguageCol(self, value: str):
        return self._set(languageCol=value)

    def _step(self):
        self._check_explode()
        g = self.getOrDefault
        return native.MultilingualSentenceStep(
            self.getInputCols()[0], self.getOutputCol(), g(self.language),
            g(self.languageCol) if self.isDefined(self.languageCol) else None, self._length_options(),
        )


class Tokenizer(NativeStage, HasInputCols, HasMinMaxLength):
    """Spark NLP's rule-based Tokenizer, plus one token per CJK ideograph; never drops a character.

    Patterns (targetPattern, infixPatterns, prefixPattern, suffixPattern, splitPattern, exceptions) are
    Java regular expressions, as in Spark NLP; what cannot be carried over raises a clear error.
    """

    annotator_type = A.TOKEN
    input_annotator_types = (A.DOCUMENT,)
    targetPattern = stage_param("targetPattern", "regex of token candidates", TypeConverters.toString)
    contextChars = stage_param("contextChars", "characters split off the start and end of candidates",
                          TypeConverters.toListString)
    prefixPattern = stage_param("prefixPattern", r"regex starting with \A; overrides contextChars", TypeConverters.toString)
    suffixPattern = stage_param("suffixPattern", r"regex ending with \z; overrides contextChars", TypeConverters.toString)
    infixPatterns = stage_param("infixPatterns", "regexes with groups, one token per group", TypeConverters.toListString)
    exceptions = stage_param("exceptions", "regexes whose matches stay one token, spaces included",
                        TypeConverters.toListString)
    caseSensitiveExceptions = stage_param("caseSensitiveExceptions", "match exceptions case-sensitively",
                                     TypeConverters.toBoolean)
    splitChars = stage_param("splitChars", "characters that split tokens inside (kept as tokens)", TypeConverters.toListString)
    splitPattern = stage_param("splitPattern", "regex that splits tokens inside (kept as tokens; may be zero-width)",
                          TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, targetPattern=None, contextChars=None, exceptions=None,
                 caseSensitiveExceptions=None, splitChars=None, splitPattern=None, minLength=None, maxLength=None):
        super().__init__()
        self._setDefault(
            outputCol="token", targetPattern=r"\S+", contextChars=list(DEFAULT_CONTEXT_CHARS),
            infixPatterns=[], exceptions=[], caseSensitiveExceptions=True, splitChars=[], minLength=0, maxLength=99999,
        )
        self._set_init(self._input_kwargs)

    def setTargetPattern(self, value: str):
        return self._set(targetPattern=value)

    def setContextChars(self, value: list[str]):
        if not all(len(c) == 1 for c in value):
            raise ValueError("All elements in context chars must have length == 1")
        return self._set(contextChars=list(value))

    def addContextChars(self, value: str):
        return self.setContextChars(self.getOrDefault(self.contextChars) + [value])

    def setPrefixPattern(self, value: str):
        return self._set(prefixPattern=value)

    def setSuffixPattern(self, value: str):
        return self._set(suffixPattern=value)

    def setInfixPatterns(self, value: list[str]):
        return self._set(infixPatterns=list(value))

    def addInfixPattern(self, value: str):
        return self._set(infixPatterns=[value] + self.getOrDefault(self.infixPatterns))

    def setExceptions(self, value: list[str]):
        return self._set(exceptions=list(value))

    def addException(self, value: str):
        return self._set(exceptions=self.getOrDefault(self.exceptions) + [value])

    def setCaseSensitiveExceptions(self, value: bool):
        return self._set(caseSensitiveExceptions=value)

    def setSplitChars(self, value: list[str]):
        if not all(len(c) == 1 or (len(c) == 2 and c[0] == "\\") for c in value):
            raise ValueError("All elements in context chars must have length == 1")
        return self._set(splitChars=list(value))

    def addSplitChars(self, value: str):
        return self.setSplitChars(self.getOrDefault(self.splitChars) + [value])

    def setSplitPattern(self, value: str):
        return self._set(splitPattern=value)

    def rules(self) -> TokenizerRules:
        g = self.getOrDefault
        optional = lambda p: g(p) if self.isDefined(p) else None  # noqa: E731
        return TokenizerRules(
            target_pattern=g(self.targetPattern), context_chars=tuple(g(self.contextChars)),
            prefix_pattern=optional(self.prefixPattern), suffix_pattern=optional(self.suffixPattern),
            infix_patterns=tuple(g(self.infixPatterns)), exceptions=tuple(g(self.exceptions)),
            case_sensitive_exceptions=g(self.caseSensitiveExceptions), split_chars=tuple(g(self.splitChars)),
            split_pattern=optional(self.splitPattern), min_length=g(self.minLength), max_length=g(self.maxLength),
        )

    def _step(self):
        return native.TokenStep(self.getInputCols()[0], self.getOutputCol(), self.rules())


class BertEmbeddings(NativeStage, HasInputCols, HasModelPath, HasBatchSize, HasStorageRef, HasIntraOpThreads,
                     HasMaxSentenceLength, HasCaseSensitive, HasMaxBatchPieces, HasProviders):
    """One ``word_embeddings`` annotation per token from a BERT model bundle (ONNX Runtime)."""

    annotator_type = A.WORD_EMBEDDINGS
    input_annotator_types = (A.DOCUMENT, A.TOKEN)
    dimension = stage_param("dimension", "vector size; must match the bundle", TypeConverters.toInt)
    pooling = stage_param("pooling", "'first' (Spark NLP) or 'mean' of the token's pieces", TypeConverters.toString)
    runtime = stage_param("runtime", "onnxruntime or openvino", TypeConverters.toString)
    precision = stage_param("precision", "bundle (the weights' precision) or bf16 (openvino, CPUs with bf16)",
                       TypeConverters.toString)
    unsupportedPrecision = stage_param("unsupportedPrecision", "a CPU without bf16: fail, or fp32 with a warning",
                                  TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, modelPath=None, batchSize=None, maxSentenceLength=None,
                 pooling=None, intraOpThreads=None, maxBatchPieces=None, runtime=None, precision=None,
                 unsupportedPrecision=None):
        super().__init__()
        self._setDefault(inputCols=["sentence", "token"], outputCol="embeddings", batchSize=8,
                         maxBatchPieces=0, maxSentenceLength=128, pooling="first", intraOpThreads=0,
                         providers=["CPUExecutionProvider"], runtime="onnxruntime", precision="bundle",
                         unsupportedPrecision="fail")
        self._set_init(self._input_kwargs)

    @classmethod
    def loadSavedModel(cls, path: str, spark=None) -> "BertEmbeddings":
        """Spark NLP's spelling of 'use this local model'; reads the bundle's dimension and storage ref."""
        return cls(modelPath=str(path))._sync_with_bundle()

    def setModelPath(self, value):
        self._set(modelPath=value)
        return self._sync_with_bundle()

    def setPooling(self, value):
        return self._set(pooling=value)

    def setDimension(self, value):
        return self._set(dimension=value)

    def getStorageRef(self) -> str:
        return self._sync_with_bundle().getOrDefault(self.storageRef)

    def getDimension(self) -> int:
        return self._sync_with_bundle().getOrDefault(self.dimension)

    def bundle(self):
        if not self.isDefined(self.modelPath):
            raise ValueError("BertEmbeddings needs a model: setModelPath(BUNDLE_DIR) "
                             "(build one with `corpus-nlp demo-model` or `corpus-nlp prepare-model`)")
        return verified_bundle(self.getOrDefault(self.modelPath))

    def _sync_with_bundle(self):
        manifest = self.bundle().require_task("embeddings", "BertEmbeddings").manifest
        for param, value in ((self.dimension, manifest.dimension), (self.caseSensitive, manifest.case_sensitive)):
            if self.isSet(param) and self.getOrDefault(param) != value:
                raise ValueError(f"BertEmbeddings {param.name}={self.getOrDefault(param)} disagrees with the "
                                 f"model bundle ({value}); unset it or use a matching bundle")
        self._setDefault(dimension=manifest.dimension, caseSensitive=manifest.case_sensitive)
        return self._set(storageRef=manifest.storage_ref)

    def _column_metadata(self) -> dict:
        return {"annotatorType": self.annotator_type, "dimension": self.getDimension(),
                "ref": self.getStorageRef()}

    def checkRuntime(self) -> str:
        """The precision the model will run at on this machine, or a one-line error saying what to change
        (the driver's check; every worker checks its own CPU again)."""
        from pipelines.model.runtime import check_runtime

        g = self.getOrDefault
        return check_runtime(g(self.runtime), g(self.precision), g(self.unsupportedPrecision),
                             self.bundle().manifest.precision)

    def _step(self):
        from pipelines.store.model_paths import for_executors

        self._sync_with_bundle()
        self.checkRuntime()
        g = self.getOrDefault
        sentence_col, token_col = self.getInputCols()
        return native.EmbedStep(
            sentence_col, token_col, self.getOutputCol(), for_executors(g(self.modelPath), self.bundle().path),
            g(self.maxSentenceLength),
            g(self.batchSize), g(self.pooling), g(self.intraOpThreads), tuple(g(self.providers)),
            g(self.maxBatchPieces), g(self.runtime), g(self.precision), g(self.unsupportedPrecision),
        )
