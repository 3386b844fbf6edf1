"""Fine-tuned classifiers as native stages, with Spark NLP's names, params and annotations.

- :mod:`pipelines.classify.classifier`  ``TokenClassifier`` / ``SequenceClassifier``: a classifier bundle over
  tokenized text (pure Python + NumPy + ONNX Runtime; the windows and batch planner of :mod:`pipelines.model.embed`)
- :mod:`pipelines.classify.steps`       the picklable steps that run inside the fused ``mapInArrow`` pass
- :mod:`pipelines.classify.stages`      ``BertForTokenClassification``, ``DistilBertForTokenClassification``,
  ``BertForSequenceClassification``, ``DistilBertForSequenceClassification``

Bundles come from ``corpus-nlp prepare-model --from-dir FINE_TUNED_CHECKPOINT`` (see
:mod:`pipelines.model.heads`).
"""
