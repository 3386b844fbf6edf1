"""Fine-tuned classifiers with Spark NLP's names, params, defaults and output annotations (native stages).

They fuse with the other native stages into ONE ``mapInArrow`` pass::

    ner = BertForTokenClassification.loadSavedModel("models/ner-bundle").setInputCols(["sentence", "token"])
    chunks = NerConverter().setInputCols(["sentence", "token", "ner"]).setOutputCol("ner_chunk")
    sentiment = DistilBertForSequenceClassification.loadSavedModel("models/sentiment") \\
        .setInputCols(["document", "token"]).setOutputCol("class")

Where they differ from Spark NLP, on purpose: text longer than ``maxSentenceLength`` pieces is not
truncated. A token classifier labels every token (overlapping windows, as BertEmbeddings); a sequence
classifier combines the windows' probabilities (see :mod:`pipelines.classify.classifier`).
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml.param import TypeConverters

from pipelines import annotation as A
from pipelines.classify.steps import CATEGORY, SequenceClassifyStep, TokenClassifyStep
from pipelines.annotate.stages import (
    HasBatchSize,
    HasCaseSensitive,
    HasInputCols,
    HasIntraOpThreads,
    HasMaxBatchPieces,
    HasMaxSentenceLength,
    HasModelPath,
    HasProviders,
    NativeStage,
    stage_param,
    verified_bundle,
)


class ClassifierStage(NativeStage, HasInputCols, HasModelPath, HasBatchSize, HasIntraOpThreads, HasMaxSentenceLength,
                  HasCaseSensitive, HasMaxBatchPieces, HasProviders):
    input_annotator_types = (A.DOCUMENT, A.TOKEN)
    task = ""  # the bundle task this stage runs
    model_type = ""  # "bert" | "distilbert"

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, modelPath=None, batchSize=None, maxSentenceLength=None,
                 caseSensitive=None, intraOpThreads=None, maxBatchPieces=None):
        super().__init__()
        self._setDefault(batchSize=8, maxSentenceLength=128, intraOpThreads=0, maxBatchPieces=0,
                         providers=["CPUExecutionProvider"], **self._own_defaults())
        kwargs = dict(self._input_kwargs)
        model = kwargs.pop("modelPath", None)
        self._set_init(kwargs)
        if model is not None:  # a classifier checks its bundle as it gets it (its labels, its task)
            self.setModelPath(model)

    def _own_defaults(self) -> dict:
        return {}

    @classmethod
    def loadSavedModel(cls, path: str, spark=None):
        """Spark NLP's spelling of 'use this local model': a bundle from ``corpus-nlp prepare-model``."""
        return cls(modelPath=str(path))

    def setModelPath(self, value):
        self._set(modelPath=value)
        return self._sync_with_bundle()

    def getClasses(self) -> list[str]:
        """The labels, in the order of the model's outputs (the checkpoint's id2label)."""
        return list(self.bundle().manifest.labels)

    def bundle(self):
        name = type(self).__name__
        if not self.isDefined(self.modelPath):
            raise ValueError(f"{name} needs a model: setModelPath(BUNDLE_DIR) or {name}.loadSavedModel(BUNDLE_DIR) "
                             "(build the bundle with `corpus-nlp prepare-model --from-dir FINE_TUNED_CHECKPOINT`)")
        bundle = verified_bundle(self.getOrDefault(self.modelPath)).require_task(self.task, name)
        if bundle.manifest.model_type != self.model_type:
            prefix = {"bert": "Bert", "distilbert": "DistilBert"}[bundle.manifest.model_type]
            raise ValueError(f"{name}: model bundle {bundle.path} is a {bundle.manifest.model_type} model; use "
                             f"{prefix}{name.removeprefix('DistilBert').removeprefix('Bert')}")
        return bundle

    def _sync_with_bundle(self):
        manifest = self.bundle().manifest
        if self.isSet(self.caseSensitive) and self.getOrDefault(self.caseSensitive) != manifest.case_sensitive:
            raise ValueError(f"{type(self).__name__} caseSensitive={self.getOrDefault(self.caseSensitive)} disagrees "
                             f"with the model bundle's tokenizer ({manifest.case_sensitive}); unset it")
        length = self.getOrDefault(self.maxSentenceLength)
        if length > manifest.max_position_embeddings:
            raise ValueError(f"{type(self).__name__}: maxSentenceLength={length} exceeds the model's "
                             f"{manifest.max_position_embeddings} positions; set it to at most that")
        self._setDefault(caseSensitive=manifest.case_sensitive)
        return self

    def _step_args(self) -> tuple:
        from pipelines.store.model_paths import for_executors

        self._sync_with_bundle()
        g = self.getOrDefault
        document_col, token_col = self.getInputCols()
        model = for_executors(g(self.modelPath), self.bundle().path)
        return (document_col, token_col, self.getOutputCol(), model, tuple(self.getClasses()),
                g(self.maxSentenceLength), g(self.batchSize), g(self.intraOpThreads), tuple(g(self.providers)),
                g(self.maxBatchPieces))


class TokenClassifierStage(ClassifierStage):
    """One ``named_entity`` annotation per token: ``result`` the label of the token's first WordPiece,
    metadata ``sentence``, ``word`` and every label's probability (as Spark NLP writes them)."""

    annotator_type = A.NAMED_ENTITY
    task = "token-classification"

    def _own_defaults(self) -> dict:
        return {"outputCol": "ner"}

    def _step(self):
        return TokenClassifyStep(*self._step_args())


class BertForTokenClassification(TokenClassifierStage):
    model_type = "bert"


class DistilBertForTokenClassification(TokenClassifierStage):
    model_type = "distilbert"


class SequenceClassifierStage(ClassifierStage):
    """One ``category`` annotation per annotation of the first input column (sentence or document):
    ``result`` the label, metadata ``sentence`` and every label's probability; with ``coalesceSentences``
    one per row, the mean of its sequences' probabilities (as Spark NLP)."""

    annotator_type = CATEGORY
    task = "sequence-classification"
    coalesceSentences = stage_param("coalesceSentences", "one label per row: the mean of its sequences' probabilities",
                               TypeConverters.toBoolean)
    activation = stage_param("activation", "'softmax' (one label per sequence)", TypeConverters.toString)

    def _own_defaults(self) -> dict:
        return {"outputCol": "class", "coalesceSentences": False, "activation": "softmax"}

    def setCoalesceSentences(self, value):
        return self._set(coalesceSentences=value)

    def getCoalesceSentences(self) -> bool:
        return self.getOrDefault(self.coalesceSentences)

    def setActivation(self, value):
        if value != "softmax":
            raise ValueError(f"{type(self).__name__}: activation {value!r} is not supported; only 'softmax' (the "
                             "single-label checkpoints prepare-model converts)")
        return self._set(activation=value)

    def _step(self):
        return SequenceClassifyStep(*self._step_args(), coalesce=self.getCoalesceSentences())


class BertForSequenceClassification(SequenceClassifierStage):
    model_type = "bert"


class DistilBertForSequenceClassification(SequenceClassifierStage):
    model_type = "distilbert"
