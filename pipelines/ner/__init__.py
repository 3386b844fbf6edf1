"""Named entities, natively: Spark NLP's NerDLApproach -> NerDLModel -> NerConverter without Spark NLP.

- :mod:`pipelines.ner.conll`   ``read_conll``: CoNLL files (IOB1/IOB2/BIOES -> IOB2), errors at ``file:line``
- :mod:`pipelines.ner.train`   ``train_ner``: BERT embeddings of a model bundle -> char-CNN + BiLSTM + CRF
  (PyTorch, training only) -> NER_DIR (``tagger.onnx``, ``ner.json``, ``metrics.json``)
- :mod:`pipelines.ner.model`   ``NerModel``: NER_DIR at inference (ONNX Runtime + NumPy Viterbi, no torch)
- :mod:`pipelines.ner.stages`  ``NerDLModel``, ``NerConverter``: native Spark stages (fused with the others)
- :mod:`pipelines.ner.tables`  ``with_entities`` (a DataFrame of entities from the fused stages); the job's entities
  table comes from the token pass (:mod:`pipelines.annotate.tables`)
- :mod:`pipelines.ner.linear`  ``train_linear_ner``: a linear-chain CRF over the embeddings, trained with NumPy
  (no torch), written as the same NER_DIR
- :mod:`pipelines.ner.demo`    ``build_demo_ner``: that CRF trained on the bundled NER sample (the demo NER model)
"""
