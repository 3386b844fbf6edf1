"""``LightPipeline``: annotate a few texts in this process, without a Spark job, as Spark NLP's does.

A fitted pipeline of native stages is a list of Spark-free steps (:mod:`pipelines.annotate.native`); this class
runs them directly on Python strings, so a notebook, a web service or a test gets the same annotations
as ``PipelineModel.transform`` in milliseconds, with Spark NLP's return shapes::

    light = LightPipeline(pipeline.fit(df))
    light.annotate("Berlin is big.")          # {"document": [...], "sentence": [...], "token": [...], ...}
    light.fullAnnotate(["a text", "another"])  # [{"token": [Annotation(...), ...], ...}, ...]
"""

from __future__ import annotations

from pipelines.annotate import native


class LightPipeline:
    """Runs the native stages of ``pipelineModel`` (a fitted ``PipelineModel``, or a list of stages) in
    the driver. ``parse_embeddings``: as in Spark NLP, ``fullAnnotate`` leaves ``embeddings`` empty
    unless asked, since a vector per token is most of the bytes."""

    def __init__(self, pipelineModel, parse_embeddings: bool = False):
        from pipelines.annotate.stages import DocumentAssembler

        self.pipeline_model = pipelineModel
        self.parse_embeddings = parse_embeddings
        stages = list(getattr(pipelineModel, "stages", pipelineModel))
        unsupported = [type(s).__name__ for s in stages if not hasattr(s, "_step")]
        if unsupported:
            raise TypeError(f"LightPipeline runs corpus-nlp's native stages only; not {', '.join(unsupported)} "
                            "(use sparknlp.base.LightPipeline for Spark NLP's own annotators)")
        if not stages or not isinstance(stages[0], DocumentAssembler):
            raise TypeError("LightPipeline needs a pipeline that starts with a DocumentAssembler")
        for stage in stages:  # NerDLModel's storage-ref rule, as in a Spark run
            check = getattr(stage, "_check_embeddings_of_stages", None)
            if check is not None:
                check(stages)
        self._steps = [s._step() for s in stages]
        self._text_col = self._steps[0].input_col
        # Other raw inputs (an id, metadata or language column) have no value here: the stages' defaults apply.
        self._other_inputs = [c for c in native.raw_inputs(self._steps) if c != self._text_col]

    def _run(self, texts: list[str]) -> list[dict[str, list]]:
        columns = {self._text_col: list(texts), **{c: [None] * len(texts) for c in self._other_inputs}}
        native.run_steps(columns, self._steps)
        outputs = [s.output_col for s in self._steps]
        return [{col: columns[col][i] for col in outputs} for i in range(len(texts))]

    def fullAnnotate(self, target: str | list[str]) -> list[dict]:
        """One dict per text (a list even for one string, as Spark NLP): output column -> list of
        ``sparknlp.annotation.Annotation`` (:class:`pipelines.annotation.Ann`, the same six fields, where
        spark-nlp's Python does not import)."""
        Annotation = annotation_class()

        def convert(a):
            vector = [float(x) for x in a.embeddings] if self.parse_embeddings and a.embeddings is not None else []
            return Annotation(a.annotatorType, a.begin, a.end, a.result, dict(a.metadata), vector)

        return [{col: [convert(a) for a in anns] for col, anns in row.items()} for row in self._run(_texts(target))]

    def annotate(self, target: str | list[str]) -> dict | list[dict]:
        """Output column -> list of ``result`` strings; a dict for one string, a list of dicts for a list."""
        rows = [{col: [a.result for a in anns] for col, anns in row.items()} for row in self._run(_texts(target))]
        return rows[0] if isinstance(target, str) else rows

    def transform(self, dataframe):
        """The Spark way, for symmetry with Spark NLP's LightPipeline."""
        return self.pipeline_model.transform(dataframe)


def annotation_class() -> type:
    """Spark NLP's ``Annotation``, which its LightPipeline returns. The native steps do not need spark-nlp,
    so a process where it does not import (not installed, or Python 3.12+ without setuptools: it imports
    distutils) still annotates, with our own ``Ann``: same fields, same order, compared by value."""
    try:
        from sparknlp.annotation import Annotation
    except ImportError:
        from pipelines.annotation import Ann

        return Ann
    return Annotation


def _texts(target) -> list[str]:
    if isinstance(target, str):
        return [target]
    if isinstance(target, (list, tuple)) and all(isinstance(t, str) for t in target):
        return list(target)
    raise TypeError("argument for annotation must be 'str' or list[str]")
