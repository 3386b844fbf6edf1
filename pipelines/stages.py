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
from pipelines import native
from pipelines.text.sentences import DEFAULT_LANGUAGE
from pipelines.text.tokens import DEFAULT_CONTEXT_CHARS, TokenizerRules

_FUSION_ATTR = "_corpus_nlp_fusion"


def verified_bundle(path: str):
    """Load a model bundle on the driver with its hashes checked, once per bundle version."""
    from pathlib import Path

    manifest = Path(path) / "manifest.json"
    stamp = manifest.stat().st_mtime_ns if manifest.exists() else None
    return _verified_bundle(str(Path(path).resolve()), stamp)


@functools.lru_cache(maxsize=16)
def _verified_bundle(path: str, manifest_mtime):
    from pipelines.model.bundle import ModelBundle

    return ModelBundle.load(path, verify=True)


def _param(name: str, doc: str, converter) -> Param:
    return Param(Params._dummy(), name, doc, typeConverter=converter)


class _NativeStage(Transformer, DefaultParamsReadable, DefaultParamsWritable):
    outputCol = _param("outputCol", "name of the annotation column this stage writes", TypeConverters.toString)
    annotator_type = A.DOCUMENT

    def setOutputCol(self, value):
        return self._set(outputCol=value)

    def getOutputCol(self) -> str:
        return self.getOrDefault(self.outputCol)

    def _set_init(self, kwargs):
        return self._set(**{k: v for k, v in kwargs.items() if v is not None})

    # subclasses: the picklable step, and the Spark metadata of the output column
    def _step(self):
        raise NotImplementedError

    def _column_metadata(self) -> dict:
        return {"annotatorType": self.annotator_type}

    def _transform(self, dataset: DataFrame) -> DataFrame:
        fused = getattr(dataset, _FUSION_ATTR, None)
        base, stages = fused if fused is not None else (dataset, [])
        stages = stages + [self]
        out = run_native_stages(base, stages)
        setattr(out, _FUSION_ATTR, (base, stages))
        return out


def run_native_stages(base: DataFrame, stages: list[_NativeStage]) -> DataFrame:
    """One mapInArrow pass over ``base`` that adds each stage's output column."""
    steps = [s._step() for s in stages]
    _check_inputs(base, steps)
    fields = list(base.schema.fields) + [StructField(s.output_col, A.spark_type(), True) for s in steps]
    out = base.mapInArrow(lambda batches: native.annotate_batches(batches, steps), StructType(fields))
    new_cols = {s.getOutputCol(): s._column_metadata() for s in stages}
    return out.select(
        *[F.col(c).alias(c, metadata=new_cols[c]) if c in new_cols else F.col(c) for c in out.columns]
    )


def _check_inputs(base: DataFrame, steps) -> None:
    available = list(base.columns)
    for step in steps:
        for name in step.inputs():
            if name not in available:
                raise ValueError(
                    f"{type(step).__name__.replace('Step', '')}: input column {name!r} not found; "
                    f"columns available at this point: {available}"
                )
        available.append(step.output_col)


# ------------------------------------------------------------------------------------------------
class DocumentAssembler(_NativeStage):
    """Raw text column -> ``document`` annotation (null/empty text -> one empty document)."""

    inputCol = _param("inputCol", "text column", TypeConverters.toString)
    idCol = _param("idCol", "optional id column (kept for Spark NLP compatibility)", TypeConverters.toString)
    metadataCol = _param("metadataCol", "optional map column (Spark NLP compatibility)", TypeConverters.toString)
    cleanupMode = _param("cleanupMode", "text cleanup; only 'disabled' keeps offsets into the original text",
                         TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCol=None, outputCol=None, cleanupMode=None):
        super().__init__()
        self._setDefault(inputCol="text", outputCol="document", cleanupMode="disabled")
        self._set_init(self._input_kwargs)

    def setInputCol(self, value):
        return self._set(inputCol=value)

    def setIdCol(self, value):
        return self._set(idCol=value)

    def setMetadataCol(self, value):
        return self._set(metadataCol=value)

    def setCleanupMode(self, value):
        return self._set(cleanupMode=value)

    def _step(self):
        mode = self.getOrDefault(self.cleanupMode)
        if mode != "disabled":
            raise ValueError(
                f"DocumentAssembler cleanupMode={mode!r} is not supported by the native engine: it rewrites "
                "the text, and our offsets always point into the original text. Use 'disabled'."
            )
        return native.AssembleStep(self.getOrDefault(self.inputCol), self.getOutputCol(), mode)


class _HasInputCols(Params):
    inputCols = _param("inputCols", "annotation columns this stage reads", TypeConverters.toListString)

    def setInputCols(self, *value):
        cols = list(value[0]) if len(value) == 1 and isinstance(value[0], (list, tuple)) else list(value)
        return self._set(inputCols=cols)

    def getInputCols(self) -> list[str]:
        return self.getOrDefault(self.inputCols)


class SentenceDetector(_NativeStage, _HasInputCols):
    """Rule-based sentence boundaries (sentencex); sentences are ``document`` annotations."""

    useAbbreviations = _param("useAbbreviations", "abbreviation-aware rules (always on)", TypeConverters.toBoolean)
    detectLists = _param("detectLists", "list-item aware rules (always on)", TypeConverters.toBoolean)
    customBounds = _param("customBounds", "extra strings that end a sentence", TypeConverters.toListString)
    useCustomBoundsOnly = _param("useCustomBoundsOnly", "split only at customBounds", TypeConverters.toBoolean)
    explodeSentences = _param("explodeSentences", "one row per sentence (not supported)", TypeConverters.toBoolean)
    minLength = _param("minLength", "shorter sentences merge into the next", TypeConverters.toInt)
    maxLength = _param("maxLength", "longer sentences are cut at whitespace", TypeConverters.toInt)
    splitLength = _param("splitLength", "force a cut at whitespace past this length", TypeConverters.toInt)
    language = _param("language", "segmentation rules' language (ISO 639-1; 'xx' generic)", TypeConverters.toString)
    languageCol = _param("languageCol", "column holding each row's language code", TypeConverters.toString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, language=None, languageCol=None):
        super().__init__()
        self._setDefault(
            inputCols=["document"], outputCol="sentence", useAbbreviations=True, detectLists=True,
            customBounds=[], useCustomBoundsOnly=False, explodeSentences=False, minLength=0,
            maxLength=99999, language=DEFAULT_LANGUAGE,
        )
        self._set_init(self._input_kwargs)

    def setCustomBounds(self, value):
        return self._set(customBounds=value)

    def setUseCustomBoundsOnly(self, value):
        return self._set(useCustomBoundsOnly=value)

    def setUseAbbreviations(self, value):
        return self._set(useAbbreviations=value)

    def setDetectLists(self, value):
        return self._set(detectLists=value)

    def setExplodeSentences(self, value):
        return self._set(explodeSentences=value)

    def setMinLength(self, value):
        return self._set(minLength=value)

    def setMaxLength(self, value):
        return self._set(maxLength=value)

    def setSplitLength(self, value):
        return self._set(splitLength=value)

    def setLanguage(self, value):
        return self._set(language=value)

    def setLanguageCol(self, value):
        return self._set(languageCol=value)

    def _step(self):
        if self.getOrDefault(self.explodeSentences):
            raise ValueError("SentenceDetector explodeSentences=True is not supported by the native engine; "
                             "explode the sentence column with pyspark.sql.functions.explode instead.")
        g = self.getOrDefault
        return native.SentenceStep(
            self.getInputCols()[0], self.getOutputCol(), g(self.language),
            g(self.languageCol) if self.isDefined(self.languageCol) else None,
            {
                "min_length": g(self.minLength),
                "max_length": g(self.maxLength),
                "split_length": g(self.splitLength) if self.isDefined(self.splitLength) else None,
                "custom_bounds": tuple(g(self.customBounds)),
                "use_custom_bounds_only": g(self.useCustomBoundsOnly),
            },
        )


class Tokenizer(_NativeStage, _HasInputCols):
    """Spark NLP's rule-based tokenizer, plus one token per CJK ideograph; never drops a character."""

    annotator_type = A.TOKEN
    targetPattern = _param("targetPattern", "regex of token candidates", TypeConverters.toString)
    contextChars = _param("contextChars", "characters split off the start and end of candidates",
                          TypeConverters.toListString)
    prefixPattern = _param("prefixPattern", r"regex starting with \A; overrides contextChars", TypeConverters.toString)
    suffixPattern = _param("suffixPattern", r"regex ending with \z; overrides contextChars", TypeConverters.toString)
    infixPatterns = _param("infixPatterns", "regexes with groups, one token per group", TypeConverters.toListString)
    exceptions = _param("exceptions", "strings kept as one token, spaces included", TypeConverters.toListString)
    caseSensitiveExceptions = _param("caseSensitiveExceptions", "match exceptions case-sensitively",
                                     TypeConverters.toBoolean)
    splitChars = _param("splitChars", "characters that split tokens inside (kept as tokens)", TypeConverters.toListString)
    splitPattern = _param("splitPattern", "regex that splits tokens inside (kept as tokens)", TypeConverters.toString)
    minLength = _param("minLength", "tokens shorter than this are removed", TypeConverters.toInt)
    maxLength = _param("maxLength", "tokens longer than this are cut into pieces", TypeConverters.toInt)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None):
        super().__init__()
        self._setDefault(
            inputCols=["sentence"], outputCol="token", targetPattern=r"\S+", contextChars=list(DEFAULT_CONTEXT_CHARS),
            infixPatterns=[], exceptions=[], caseSensitiveExceptions=True, splitChars=[], minLength=0, maxLength=99999,
        )
        self._set_init(self._input_kwargs)

    def setTargetPattern(self, value):
        return self._set(targetPattern=value)

    def setContextChars(self, value):
        return self._set(contextChars=value)

    def addContextChars(self, value):
        return self._set(contextChars=self.getOrDefault(self.contextChars) + [value])

    def setPrefixPattern(self, value):
        return self._set(prefixPattern=value)

    def setSuffixPattern(self, value):
        return self._set(suffixPattern=value)

    def setInfixPatterns(self, value):
        return self._set(infixPatterns=value)

    def addInfixPattern(self, value):
        return self._set(infixPatterns=[value] + self.getOrDefault(self.infixPatterns))

    def setExceptions(self, value):
        return self._set(exceptions=value)

    def addException(self, value):
        return self._set(exceptions=self.getOrDefault(self.exceptions) + [value])

    def setCaseSensitiveExceptions(self, value):
        return self._set(caseSensitiveExceptions=value)

    def setSplitChars(self, value):
        return self._set(splitChars=value)

    def addSplitChars(self, value):
        return self._set(splitChars=self.getOrDefault(self.splitChars) + [value])

    def setSplitPattern(self, value):
        return self._set(splitPattern=value)

    def setMinLength(self, value):
        return self._set(minLength=value)

    def setMaxLength(self, value):
        return self._set(maxLength=value)

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


class BertEmbeddings(_NativeStage, _HasInputCols):
    """One ``word_embeddings`` annotation per token from a BERT model bundle (ONNX Runtime)."""

    annotator_type = A.WORD_EMBEDDINGS
    modelPath = _param("modelPath", "model bundle directory (corpus-nlp prepare-model / demo-model)",
                       TypeConverters.toString)
    dimension = _param("dimension", "vector size; must match the bundle", TypeConverters.toInt)
    batchSize = _param("batchSize", "windows per ONNX Runtime call, at most", TypeConverters.toInt)
    maxBatchPieces = _param("maxBatchPieces", "padded WordPieces per ONNX Runtime call, at most (0: no cap)",
                            TypeConverters.toInt)
    maxSentenceLength = _param("maxSentenceLength", "WordPieces per window, [CLS]/[SEP] included (<= 512)",
                               TypeConverters.toInt)
    caseSensitive = _param("caseSensitive", "must agree with the bundle's tokenizer", TypeConverters.toBoolean)
    pooling = _param("pooling", "'first' (Spark NLP) or 'mean' of the token's pieces", TypeConverters.toString)
    intraOpThreads = _param("intraOpThreads", "ONNX Runtime threads per task; 0 = spark.task.cpus",
                            TypeConverters.toInt)
    storageRef = _param("storageRef", "which model produced the vectors (from the bundle)", TypeConverters.toString)
    providers = _param("providers", "ONNX Runtime execution providers, in order of preference",
                       TypeConverters.toListString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, modelPath=None, batchSize=None, maxSentenceLength=None,
                 pooling=None, intraOpThreads=None, maxBatchPieces=None):
        super().__init__()
        self._setDefault(inputCols=["sentence", "token"], outputCol="embeddings", batchSize=8,
                         maxBatchPieces=0, maxSentenceLength=128, pooling="first", intraOpThreads=0,
                         providers=["CPUExecutionProvider"])
        self._set_init(self._input_kwargs)

    @classmethod
    def loadSavedModel(cls, path: str, spark=None) -> "BertEmbeddings":
        """Spark NLP's spelling of 'use this local model'; reads the bundle's dimension and storage ref."""
        return cls(modelPath=str(path))._sync_with_bundle()

    def setModelPath(self, value):
        self._set(modelPath=value)
        return self._sync_with_bundle()

    def setBatchSize(self, value):
        return self._set(batchSize=value)

    def setMaxBatchPieces(self, value):
        return self._set(maxBatchPieces=value)

    def setMaxSentenceLength(self, value):
        return self._set(maxSentenceLength=value)

    def setCaseSensitive(self, value):
        return self._set(caseSensitive=value)

    def setPooling(self, value):
        return self._set(pooling=value)

    def setIntraOpThreads(self, value):
        return self._set(intraOpThreads=value)

    def setProviders(self, value):
        """E.g. ["CUDAExecutionProvider", "CPUExecutionProvider"] on GPU executors (needs onnxruntime-gpu)."""
        return self._set(providers=value)

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
        manifest = self.bundle().manifest
        for param, value in ((self.dimension, manifest.dimension), (self.caseSensitive, manifest.case_sensitive)):
            if self.isSet(param) and self.getOrDefault(param) != value:
                raise ValueError(f"BertEmbeddings {param.name}={self.getOrDefault(param)} disagrees with the "
                                 f"model bundle ({value}); unset it or use a matching bundle")
        self._setDefault(dimension=manifest.dimension, caseSensitive=manifest.case_sensitive)
        return self._set(storageRef=manifest.storage_ref)

    def _column_metadata(self) -> dict:
        return {"annotatorType": self.annotator_type, "dimension": self.getDimension(),
                "ref": self.getStorageRef()}

    def _step(self):
        self._sync_with_bundle()
        g = self.getOrDefault
        sentence_col, token_col = self.getInputCols()
        return native.EmbedStep(
            sentence_col, token_col, self.getOutputCol(), str(self.bundle().path), g(self.maxSentenceLength),
            g(self.batchSize), g(self.pooling), g(self.intraOpThreads), tuple(g(self.providers)),
            g(self.maxBatchPieces),
        )
