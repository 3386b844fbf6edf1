"""corpus-nlp: multilingual corpus annotation on Spark with Spark NLP's annotation contract.

The stages live in :mod:`pipelines.stages` and mirror Spark NLP's Python classes::

    from pipelines import DocumentAssembler, SentenceDetector, Tokenizer, BertEmbeddings
    from pipelines import NerDLModel, NerConverter
    from pipelines import BertForTokenClassification, BertForSequenceClassification  # + DistilBert*
    from pipelines import LightPipeline   # annotate a few texts in this process, without a Spark job
"""

__version__ = "0.1.0"

_STAGES = {"DocumentAssembler", "SentenceDetector", "MultilingualSentenceDetector", "Tokenizer", "BertEmbeddings"}
_NER_STAGES = {"NerDLModel", "NerConverter"}
_CLASSIFIER_STAGES = {"BertForTokenClassification", "DistilBertForTokenClassification",
                      "BertForSequenceClassification", "DistilBertForSequenceClassification"}


def __getattr__(name):
    if name == "LightPipeline":
        from pipelines.light import LightPipeline

        return LightPipeline
    # Lazy so that `import pipelines` (e.g. in a Python worker or the CLI) does not import pyspark.
    if name in _STAGES:
        from pipelines import stages

        return getattr(stages, name)
    if name in _NER_STAGES:
        from pipelines.ner import stages as ner_stages

        return getattr(ner_stages, name)
    if name in _CLASSIFIER_STAGES:
        from pipelines.classify import stages as classifier_stages

        return getattr(classifier_stages, name)
    raise AttributeError(name)
