"""Class probabilities from a classifier bundle, over tokenized text. No Spark.

Both classifiers are :class:`pipelines.model.embed.TokenEmbedder` s over a graph whose output is ``logits``
instead of ``last_hidden_state``: the same WordPiece handling (a token without pieces is fed as
``[UNK]``), the same overlapping windows for text longer than ``max_sentence_length`` pieces, and the
same length-sorted batch planner.

- :class:`TokenClassifier`: one probability vector per token, from the logits of its **first piece**
  (Spark NLP labels a token by its first WordPiece); in a long sentence each token takes them from the
  window where it has the most context on both sides, so every token gets a label.
- :class:`SequenceClassifier`: one probability vector per sequence. A sequence that fits one window
  gets the softmax of its logits (what the model gives). A longer one is cut into the same overlapping
  windows and gets the **mean of the windows' probabilities, each weighted by its number of pieces**:
  every part of the text counts (nothing is truncated), and a short tail window counts less than a full
  one.
"""

from __future__ import annotations

import numpy as np

from pipelines.model.embed import TokenEmbedder, plan_batches


def softmax(logits: np.ndarray) -> np.ndarray:
    """Softmax over the last axis, in float64 for the sums, returned as float32 (Spark NLP's float scores)."""
    z = logits.astype(np.float64)
    z = np.exp(z - z.max(axis=-1, keepdims=True))
    return (z / z.sum(axis=-1, keepdims=True)).astype(np.float32)


class TokenClassifier(TokenEmbedder):
    """Token-classification bundle -> per-token class probabilities (first-piece labelling)."""

    def __init__(self, session, tokenizer, **settings):
        super().__init__(session, tokenizer, pooling="first", **settings)

    def logits(self, sentences: list[list[str]]) -> list[np.ndarray]:
        """For each sentence: ``(n_tokens, n_labels)`` logits, each token's from its first piece."""
        return [e.vectors for e in self.embed(sentences)]

    def probabilities(self, sentences: list[list[str]]) -> list[np.ndarray]:
        return [softmax(v) for v in self.logits(sentences)]


class SequenceClassifier(TokenEmbedder):
    """Sequence-classification bundle -> one probability vector per sequence of tokens."""

    def __init__(self, session, tokenizer, **settings):
        super().__init__(session, tokenizer, pooling="first", **settings)

    def window_logits(self, sequences: list[list[str]]) -> list[list[tuple[int, int, np.ndarray]]]:
        """For each sequence: (first piece, pieces in the window, logits) of each of its windows, in text order."""
        pieces = self.pieces(sequences)
        windows = [w for i, (ids, owners) in enumerate(pieces) if len(ids) for w in self._windows(i, ids, owners)]
        windows.sort(key=lambda w: len(w.ids))
        out: list[list[tuple[int, int, np.ndarray]]] = [[] for _ in sequences]
        lengths = [len(w.ids) + 2 for w in windows]  # with [CLS] and [SEP]
        for start, stop in plan_batches(lengths, self.batch_size, self.max_batch_pieces):
            batch = windows[start:stop]
            for w, logits in zip(batch, self._run(batch)):
                out[w.sentence].append((w.start, len(w.ids), logits))
        return [sorted(ws, key=lambda w: w[0]) for ws in out]

    def probabilities(self, sequences: list[list[str]]) -> list[np.ndarray]:
        """Softmax of the logits; over several windows, their length-weighted mean (module docstring)."""
        return [p for p, _ in self.weighted_probabilities(sequences)]

    def weighted_probabilities(self, sequences: list[list[str]]) -> list[tuple[np.ndarray, float]]:
        """For each sequence: its probabilities and their weight (the pieces of all its windows), so that
        parts of one text classified apart combine into the same weighted mean over all their windows."""
        out = []
        for windows in self.window_logits(sequences):
            weights = np.asarray([n for _, n, _ in windows], dtype=np.float64)
            probs = softmax(np.stack([logits for _, _, logits in windows]))
            out.append(((weights @ probs / weights.sum()).astype(np.float32), float(weights.sum())))
        return out
