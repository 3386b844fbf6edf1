"""corpus-nlp: multilingual corpus annotation on Spark with Spark NLP's annotation contract.

The stages live in :mod:`pipelines.stages` and mirror Spark NLP's Python classes::

    from pipelines import DocumentAssembler, SentenceDetector, Tokenizer, BertEmbeddings
"""

__version__ = "0.1.0"

_STAGES = {"DocumentAssembler", "SentenceDetector", "Tokenizer", "BertEmbeddings"}


def __getattr__(name):
    # Lazy so that `import pipelines` (e.g. in a Python worker or the CLI) does not import pyspark.
    if name in _STAGES:
        from pipelines import stages

        return getattr(stages, name)
    raise AttributeError(name)
