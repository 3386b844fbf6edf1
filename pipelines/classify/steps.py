"""Native steps of the classifier stages (picklable; they run inside the fused mapInArrow pass).

Each step gathers the sequences of every row of the Arrow batch, makes one classifier call over all of
them (so length sorting and batching span rows), and scatters the results back to their rows.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass

import numpy as np

from pipelines import annotation as A
from pipelines.annotation import Ann
from pipelines.annotate.native import Batch
from pipelines.annotate.worker_models import intra_op_threads, loaded, worker_model

CATEGORY = "category"  # Spark NLP's AnnotatorType.CATEGORY


def java_float(x: float) -> str:
    """``Float.toString`` as Java writes it (Spark NLP's scores): "0.25", "1.0", "1.2345E-4"."""
    f = np.float32(x)
    if f == 0:
        return "0.0"
    if 1e-3 <= abs(f) < 1e7:
        text = np.format_float_positional(f, unique=True, trim="0")
        return text if "." in text else text + ".0"
    mantissa, exponent = np.format_float_scientific(f, unique=True, trim="0", exp_digits=1).split("e")
    return f"{mantissa}E{int(exponent)}"


def group_by_span(spans: list[Ann], tokens: list[Ann]) -> list[tuple[int, int, str, list[Ann]]]:
    """Tokens grouped by the annotation of ``spans`` (sentences or documents) that contains them.

    Returns ``(begin, end, sentence, tokens)`` per non-empty group, in text order; ``sentence`` is the
    span's own ``sentence`` metadata (its position among ``spans`` when it has none), as Spark NLP
    numbers them: the job's pass hands over a run of a document's sentences, not all of them. A token
    that no span contains (tokens computed from another column) is not dropped: it joins a group of
    the tokens of its own ``sentence`` metadata, spanning them.
    """
    ordered = sorted(range(len(spans)), key=lambda k: spans[k].begin)
    begins = [spans[k].begin for k in ordered]
    groups: dict[tuple, list[Ann]] = {}
    for t in tokens:
        i = bisect_right(begins, t.begin) - 1
        if i >= 0 and spans[ordered[i]].end >= t.end:
            key: tuple = ("span", ordered[i])
        else:
            key = ("orphans", t.metadata.get("sentence", "0"))
        groups.setdefault(key, []).append(t)
    out = []
    for (kind, value), members in groups.items():
        if kind == "span":
            span = spans[value]
            out.append((span.begin, span.end, span.metadata.get("sentence", str(value)), members))
        else:
            out.append((members[0].begin, members[-1].end, value, members))
    return out


@dataclass(frozen=True)
class _ClassifyStep:
    document_col: str
    token_col: str
    output_col: str
    bundle_path: str
    labels: tuple[str, ...]
    max_sentence_length: int = 128
    batch_size: int = 8
    intra_op_threads: int = 0
    providers: tuple[str, ...] = ("CPUExecutionProvider",)
    max_batch_pieces: int = 0

    def inputs(self) -> list[str]:
        return [self.document_col, self.token_col]

    def _classifier_class(self):
        raise NotImplementedError

    def _key(self) -> tuple:
        return (self._classifier_class().__name__, self.bundle_path, self.max_sentence_length, self.batch_size,
                intra_op_threads(self.intra_op_threads), self.providers, self.max_batch_pieces)

    def stats(self) -> dict:
        """This process's model counters so far, as :meth:`pipelines.annotate.native.EmbedStep.stats`."""
        from pipelines.model.embed import empty_stats

        classifier = loaded(self._key())
        return dict(classifier.stats) if classifier is not None else empty_stats()

    def classifier(self):
        from pipelines.model.bundle import ModelBundle
        from pipelines.store.model_paths import load_on_executor

        def load():
            # Checked by the driver, or (shipped to this executor) by its first worker.
            bundle = load_on_executor(self.bundle_path, ModelBundle.load)
            return self._classifier_class()(
                bundle.create_session(intra_op_threads=intra_op_threads(self.intra_op_threads),
                                      providers=list(self.providers)),
                bundle.load_tokenizer(), max_sentence_length=self.max_sentence_length,
                batch_size=self.batch_size, max_batch_pieces=self.max_batch_pieces)

        return worker_model(self._key(), load)

    def _scores(self, probabilities: np.ndarray) -> dict[str, str]:
        return {label: java_float(p) for label, p in zip(self.labels, probabilities)}

    def _gather(self, batch: Batch):
        """Every row's token groups, and the flat list of their words (one classifier call for the batch)."""
        rows = [group_by_span(docs or [], tokens or [])
                for docs, tokens in zip(batch[self.document_col], batch[self.token_col])]
        words = [[t.result for t in group[3]] for groups in rows for group in groups]
        return rows, words


@dataclass(frozen=True)
class TokenClassifyStep(_ClassifyStep):
    """One ``named_entity`` annotation per token: the label of its first piece, every label's probability."""

    def _classifier_class(self):
        from pipelines.classify.classifier import TokenClassifier

        return TokenClassifier

    def apply(self, batch: Batch) -> list[list[Ann]]:
        rows, words = self._gather(batch)
        probabilities = iter(self.classifier().probabilities(words) if words else [])
        out = []
        for groups in rows:
            row = []
            for _, _, sentence, tokens in groups:
                for t, p in zip(tokens, next(probabilities)):
                    meta = {"sentence": sentence, "word": t.result, **self._scores(p)}
                    row.append(Ann(A.NAMED_ENTITY, t.begin, t.end, self.labels[int(np.argmax(p))], meta))
            out.append(row)
        return out


@dataclass(frozen=True)
class SequenceClassifyStep(_ClassifyStep):
    """One ``category`` annotation per sequence (or per row with ``coalesce``), as Spark NLP writes them."""

    coalesce: bool = False

    def _classifier_class(self):
        from pipelines.classify.classifier import SequenceClassifier

        return SequenceClassifier

    def _category(self, begin: int, end: int, sentence: str, p: np.ndarray) -> Ann:
        return Ann(CATEGORY, begin, end, self.labels[int(np.argmax(p))], {"sentence": sentence, **self._scores(p)})

    def apply(self, batch: Batch) -> list[list[Ann]]:
        rows, words = self._gather(batch)
        probabilities = iter(self.classifier().probabilities(words) if words else [])
        out = []
        for groups in rows:
            scored = [(group, next(probabilities)) for group in groups]
            if self.coalesce and scored:
                # Spark NLP: the plain mean of the sequences' probabilities, anchored at the first sequence
                (begin, end, sentence, _), _ = scored[0]
                mean = np.mean(np.stack([p for _, p in scored]), axis=0, dtype=np.float64).astype(np.float32)
                out.append([self._category(begin, end, sentence, mean)])
            else:
                out.append([self._category(b, e, s, p) for (b, e, s, _), p in scored])
        return out
