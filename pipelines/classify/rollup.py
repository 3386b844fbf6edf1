"""A sequence classifier inside the job's token pass (:func:`pipelines.annotate.tables.stream_token_table`).

That pass sees a document as *units* of whole sentences (see :mod:`pipelines.annotate.tables`), and its rows
leave the worker unit by unit, so a classification rides on the token row of the **last token** of
what it classifies: the last token of a sentence (``over: sentence``), or the last token of the
document (``over: document``, or sentences coalesced), the first moment all of it has been through
the model. The job reads the classifications table off those token rows, as it reads entities off
the chunk heads: one model pass for everything.

Per sentence, the result is exactly the stage's (each sentence lies in one unit). Per document:
- ``over: document``: the tokens of a unit are one sequence; a document of several units (more than
  ``max_tokens_per_chunk`` tokens, or 100,000 characters) gets the mean of all its windows'
  probabilities weighted by their pieces, the stage's rule for a long sequence, with windows that
  restart at unit boundaries. A document of one unit gets exactly the stage's result.
- coalesced sentences: the plain mean of its sentences' probabilities (Spark NLP's rule), exactly.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from pipelines.annotation import Ann
from pipelines.classify.steps import SequenceClassifyStep

CLASSIFICATION_TYPE = pa.struct([("sentence", pa.int32()), ("label", pa.string()), ("score", pa.float32()),
                                 ("scores", pa.map_(pa.string(), pa.float32()))])

# row -> (sum of the weighted probabilities so far, sum of the weights)
Running = dict[int, tuple[np.ndarray, float]]


def sentence_runs(tokens: list[Ann]) -> list[tuple[int, int, int]]:
    """(sentence index, start, stop) of each run of consecutive tokens of one sentence."""
    runs: list[tuple[int, int, int]] = []
    for i, t in enumerate(tokens):
        sentence = int(t.metadata.get("sentence", "0"))
        if runs and runs[-1][0] == sentence:
            runs[-1] = (sentence, runs[-1][1], i + 1)
        else:
            runs.append((sentence, i, i + 1))
    return runs


@dataclass(frozen=True)
class SequenceRollup:
    step: SequenceClassifyStep
    per_sentence: bool  # the step reads sentences (else documents)

    @property
    def per_document(self) -> bool:
        """One result per document (documents, or sentences coalesced)."""
        return not self.per_sentence or self.step.coalesce

    def heads(self, units: list, running: Running) -> list[list[dict | None]]:
        """For each unit (:class:`pipelines.annotate.tables.Unit`), for each of its tokens: the classification
        that the token ends, else None. ``running`` holds the documents' partial sums and is updated in
        place; the caller keeps it only when the whole chunk succeeds."""
        classifier = self.step.classifier()
        heads: list[list[dict | None]] = [[None] * len(u.tokens) for u in units]
        if self.per_sentence:
            runs = [sentence_runs(u.tokens) for u in units]
            sequences = [[t.result for t in u.tokens[a:b]] for u, rs in zip(units, runs) for _, a, b in rs]
            probabilities = iter(classifier.probabilities(sequences) if sequences else [])
            for k, (u, rs) in enumerate(zip(units, runs)):
                for sentence, _, stop in rs:
                    p = next(probabilities)
                    if self.step.coalesce:
                        _add(running, u.row, p, 1.0)  # Spark NLP: the plain mean of the sentences
                    else:
                        heads[k][stop - 1] = self._result(sentence, p)
        else:
            for u, (p, weight) in zip(units, classifier.weighted_probabilities([[t.result for t in u.tokens]
                                                                                  for u in units])):
                _add(running, u.row, p, weight)
        if self.per_document:
            for k, u in enumerate(units):
                if u.last and u.row in running:
                    total, weight = running.pop(u.row)
                    heads[k][-1] = self._result(None, (total / weight).astype(np.float32))
        return heads

    def _result(self, sentence: int | None, p: np.ndarray) -> dict:
        best = int(np.argmax(p))
        labels = self.step.labels
        return {"sentence": sentence, "label": labels[best], "score": float(p[best]),
                "scores": [(label, float(x)) for label, x in zip(labels, p)]}


def _add(running: Running, row: int, p: np.ndarray, weight: float) -> None:
    total, weights = running.get(row, (0.0, 0.0))
    running[row] = (total + p.astype(np.float64) * weight, weights + weight)
