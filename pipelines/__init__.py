"""corpus-nlp: multilingual corpus annotation on Spark with Spark NLP's annotation contract.

The stages mirror Spark NLP's Python classes; the job runs from a notebook or your own code::

    from pipelines import DocumentAssembler, SentenceDetector, Tokenizer, BertEmbeddings
    from pipelines import NerDLModel, NerConverter
    from pipelines import BertForTokenClassification, BertForSequenceClassification  # + DistilBert*
    from pipelines import LightPipeline   # annotate a few texts in this process, without a Spark job
    from pipelines import load_config, run_annotate, dry_run

The package's layers, each a folder: ``text`` and ``model`` (rules and models, no Spark), ``annotate`` (the
stages and their Python steps), ``ner`` and ``classify`` (their stages, steps and training), ``store`` (the
lake and its state), ``run`` (the annotate job), ``spark`` (sessions and jars), ``tools`` (the command line
and operator tools).
"""

import importlib

__version__ = "0.1.0"

# Lazy, so that `import pipelines` (e.g. in a Python worker or the CLI) does not import pyspark.
_EXPORTS = {
    **dict.fromkeys(("DocumentAssembler", "SentenceDetector", "MultilingualSentenceDetector", "Tokenizer",
                     "BertEmbeddings"), "pipelines.annotate.stages"),
    **dict.fromkeys(("NerDLModel", "NerConverter"), "pipelines.ner.stages"),
    **dict.fromkeys(("BertForTokenClassification", "DistilBertForTokenClassification",
                     "BertForSequenceClassification", "DistilBertForSequenceClassification"),
                    "pipelines.classify.stages"),
    "LightPipeline": "pipelines.annotate.light",
    "load_config": "pipelines.config", "parse_config": "pipelines.config",
    "run_annotate": "pipelines.run.job", "dry_run": "pipelines.run.dry_run",
}


def __getattr__(name):
    module = _EXPORTS.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module), name)
