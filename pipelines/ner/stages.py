"""NerDLModel and NerConverter: Spark NLP's names, parameters, defaults and columns, native steps.

Both are native stages, so DocumentAssembler -> SentenceDetector -> Tokenizer -> BertEmbeddings ->
NerDLModel -> NerConverter is still ONE ``mapInArrow`` over the input rows::

    ner = NerDLModel.loadSavedModel("models/demo-ner").setInputCols(["sentence", "token", "embeddings"])
    chunks = NerConverter().setInputCols(["sentence", "token", "ner"]).setOutputCol("ner_chunk")
"""

from __future__ import annotations

from pyspark import keyword_only
from pyspark.ml.param import TypeConverters
from pyspark.sql import DataFrame

from pipelines import annotation as A
from pipelines.ner.steps import ConverterStep, NerStep
from pipelines.annotate.stages import (HasBatchSize, HasInputCols, HasIntraOpThreads, HasModelPath, HasStorageRef, NativeStage,
                                       stage_param, verified_model)


class NerDLModel(NativeStage, HasInputCols, HasModelPath, HasBatchSize, HasStorageRef, HasIntraOpThreads):
    """Char-CNN + BiLSTM + CRF tagger: one ``named_entity`` annotation (IOB2 tag) per token."""

    annotator_type = A.NAMED_ENTITY
    includeConfidence = stage_param("includeConfidence", "add 'confidence' (max softmax of the emission scores)",
                                    TypeConverters.toBoolean)
    includeAllConfidenceScores = stage_param("includeAllConfidenceScores", "add one score per tag (and 'confidence')",
                                             TypeConverters.toBoolean)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, modelPath=None, batchSize=None, includeConfidence=None,
                 includeAllConfidenceScores=None, intraOpThreads=None):
        super().__init__()
        self._setDefault(inputCols=["sentence", "token", "embeddings"], outputCol="ner", batchSize=8,
                         includeConfidence=False, includeAllConfidenceScores=False, intraOpThreads=0)
        self._set_init(self._input_kwargs)

    @classmethod
    def loadSavedModel(cls, path: str, spark=None) -> "NerDLModel":
        """A stage on the NER model directory ``path`` (hashes checked, storage ref read)."""
        return cls(modelPath=str(path))._sync_with_model()

    def setModelPath(self, value):
        self._set(modelPath=value)
        return self._sync_with_model()

    def setIncludeConfidence(self, value):
        return self._set(includeConfidence=value)

    def setIncludeAllConfidenceScores(self, value):
        return self._set(includeAllConfidenceScores=value)

    def getStorageRef(self) -> str:
        return self._sync_with_model().getOrDefault(self.storageRef)

    def getClasses(self) -> list[str]:
        """The tags the model predicts (Spark NLP's NerDLModel.getClasses)."""
        return list(self.model().tags)

    def model(self):
        if not self.isDefined(self.modelPath):
            raise ValueError("NerDLModel needs a model: setModelPath(NER_DIR) (train one with "
                             "`corpus-nlp train-ner --config conf/train_ner.yaml`)")
        return verified_model(self.getOrDefault(self.modelPath), "ner")

    def _sync_with_model(self):
        ref = self.model().storage_ref
        if self.isSet(self.storageRef) and self.getOrDefault(self.storageRef) != ref:
            raise ValueError(f"NerDLModel storageRef={self.getOrDefault(self.storageRef)!r} disagrees with the "
                             f"NER model {self.getOrDefault(self.modelPath)}, trained on {ref!r}; unset it")
        return self._set(storageRef=ref)

    def _check_embeddings(self, dataset: DataFrame) -> None:
        """Spark NLP's rule: refuse embeddings from another model than the one the tagger learnt on."""
        col = self.getInputCols()[2]
        if col in dataset.columns:  # else the fused pass reports the missing column with the columns there are
            self.checkEmbeddingsMetadata(dataset.schema[col].metadata or {})

    def _check_embeddings_of_stages(self, stages) -> None:
        """The same check when the stages run without DataFrame.transform (the job's own passes)."""
        col = self.getInputCols()[2]
        producers = [s for s in stages if s is not self and s.getOutputCol() == col]
        if producers:
            self.checkEmbeddingsMetadata(producers[-1]._column_metadata())

    def checkEmbeddingsMetadata(self, meta: dict) -> None:
        """Raise ValueError unless ``meta`` (embeddings column metadata) has this model's storage ref."""
        col = self.getInputCols()[2]
        model = self.model()
        ref, path = meta.get("ref"), self.getOrDefault(self.modelPath)
        if ref is None:
            raise ValueError(
                f"NerDLModel: column {col!r} carries no storage ref (Spark column metadata 'ref'), so it cannot "
                f"be checked against the NER model {path}, trained on embeddings {model.storage_ref!r}: compute "
                f"{col!r} with BertEmbeddings from the bundle whose storage ref is {model.storage_ref!r}")
        if ref != model.storage_ref:
            raise ValueError(
                f"NerDLModel: the NER model {path} was trained on embeddings {model.storage_ref!r}, but column "
                f"{col!r} holds embeddings {ref!r}; their vectors mean different things. Use BertEmbeddings "
                f"with the model bundle whose storage ref is {model.storage_ref!r}, or retrain the NER model "
                f"on the {ref!r} bundle (corpus-nlp train-ner --model THAT_BUNDLE_DIR)")
        dim = meta.get("dimension")
        if dim is not None and int(dim) != model.dimension:
            raise ValueError(f"NerDLModel: column {col!r} has {dim}-dimensional embeddings, the NER model "
                             f"{path} expects {model.dimension}")

    def _transform(self, dataset: DataFrame) -> DataFrame:
        self._sync_with_model()
        self._check_embeddings(dataset)
        return super()._transform(dataset)

    def _step(self):
        from pipelines.store.model_paths import for_executors

        self._sync_with_model()
        g = self.getOrDefault
        sentence_col, token_col, embeddings_col = self.getInputCols()
        return NerStep(sentence_col, token_col, embeddings_col, self.getOutputCol(),
                       for_executors(g(self.modelPath), self.model().path), g(self.batchSize), g(self.includeConfidence),
                       g(self.includeAllConfidenceScores), g(self.intraOpThreads))


class NerConverter(NativeStage, HasInputCols):
    """IOB tags -> ``chunk`` annotations, by Spark NLP's rules (see pipelines.ner.tags.converter_chunks)."""

    annotator_type = A.CHUNK
    preservePosition = stage_param("preservePosition", "offsets of the original text (ours always are)",
                                   TypeConverters.toBoolean)
    whiteList = stage_param("whiteList", "keep only these entity types (empty: all)", TypeConverters.toListString)

    @keyword_only
    def __init__(self, *, inputCols=None, outputCol=None, whiteList=None):
        super().__init__()
        self._setDefault(inputCols=["sentence", "token", "ner"], outputCol="ner_chunk", preservePosition=True,
                         whiteList=[])
        self._set_init(self._input_kwargs)

    def setPreservePosition(self, value):
        return self._set(preservePosition=value)

    def setWhiteList(self, value):
        return self._set(whiteList=list(value))

    def _step(self):
        sentence_col, token_col, ner_col = self.getInputCols()
        # preservePosition: our tokens never rewrite the text, so both settings give original offsets.
        return ConverterStep(sentence_col, token_col, ner_col, self.getOutputCol(),
                             tuple(self.getOrDefault(self.whiteList)))
