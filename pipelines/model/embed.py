"""Token embeddings from a BERT model bundle: WordPiece, windows, length-sorted batches, ONNX Runtime or
OpenVINO (:mod:`pipelines.model.runtime`).

Pure Python and NumPy (no Spark): the BertEmbeddings stage calls :meth:`TokenEmbedder.embed` on the
sentences of a whole Arrow batch at once, so that sorting by length keeps padding small.

Guarantees Spark NLP does not give:
- every token gets exactly one vector: a token whose text yields no WordPiece (a control character,
  say) is fed to the model as ``[UNK]``; a sentence longer than ``max_sentence_length`` pieces is
  embedded through overlapping windows and each piece takes its vector from the window where it has
  the most context on both sides;
- padding is masked, so a token's vector does not depend on the batch it was computed in.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from pipelines.model.runtime import as_model_session

POOLING_STRATEGIES = ("first", "mean")


# What one ONNX Runtime call costs beyond its pieces, in pieces' worth of time: fp32 mBERT on one core
# runs 8x12 calls at ~430 pieces/s and 8x40 at ~515 (python -m pipelines.model.bench --threads 1).
CALL_COST_PIECES = 32


def plan_batches(lengths: list[int], max_windows: int, max_pieces: int = 0,
                 call_cost: int = CALL_COST_PIECES) -> list[tuple[int, int]]:
    """Cut windows sorted by length (ascending) into consecutive batches, as [start, stop) pairs.

    Each batch is padded to its longest window, so where to cut decides the padding. Dynamic programming
    finds the cuts that minimise padded pieces + ``call_cost`` per call, with at most ``max_windows``
    windows and (unless 0) ``max_pieces`` padded pieces per call, a single window always allowed. Dense
    lengths then make full batches and the sparse long tail small ones: padding falls several-fold
    against fixed-size batches, for the same number of calls or fewer.
    """
    n = len(lengths)
    cost = [0.0] + [float("inf")] * n
    cut = [0] * (n + 1)
    for stop in range(1, n + 1):
        longest = lengths[stop - 1]
        widest = max_windows if not max_pieces else max(1, min(max_windows, max_pieces // max(longest, 1)))
        for start in range(max(0, stop - widest), stop):
            c = cost[start] + call_cost + (stop - start) * longest
            if c < cost[stop]:
                cost[stop], cut[stop] = c, start
    batches, stop = [], n
    while stop:
        batches.append((cut[stop], stop))
        stop = cut[stop]
    return batches[::-1]


def empty_stats() -> dict:
    """The embedder's running counters: windows, real and padding pieces fed to the model, calls, seconds in
    them; pieces computed in bf16, and worker sessions that were asked for bf16 but run fp32 (their CPU lacks it)."""
    return {"windows": 0, "pieces": 0, "padded_pieces": 0, "model_calls": 0, "model_seconds": 0.0, "bf16_pieces": 0,
            "bf16_fallbacks": 0}


@dataclass(frozen=True)
class EmbeddedSentence:
    vectors: np.ndarray  # (n_tokens, dim) float32
    first_piece_ids: np.ndarray  # (n_tokens,) id of each token's first WordPiece
    oov: np.ndarray  # (n_tokens,) bool: the first piece is [UNK]


@dataclass(frozen=True)
class _Window:
    sentence: int
    start: int  # first piece of the sentence inside this window
    ids: np.ndarray  # piece ids, without [CLS]/[SEP]
    rows: np.ndarray  # positions in the model output (1 + piece - start) this window supplies
    targets: np.ndarray  # for each of those rows: the token it belongs to


class TokenEmbedder:
    """Turns tokenized sentences into one vector per token. Build once per Python worker."""

    def __init__(self, session, tokenizer, *, max_sentence_length=128, batch_size=8, pooling="first",
                 max_batch_pieces=0):
        """``session``: a :class:`pipelines.model.runtime.ModelSession` (ONNX Runtime or OpenVINO, from
        :func:`pipelines.model.runtime.open_session`), or an ``onnxruntime.InferenceSession``."""
        if pooling not in POOLING_STRATEGIES:
            raise ValueError(f"pooling must be one of {POOLING_STRATEGIES}, got {pooling!r}")
        if not 3 <= max_sentence_length <= 512:
            raise ValueError(f"maxSentenceLength must be in [3, 512], got {max_sentence_length}")
        self.session = as_model_session(session)
        self.tokenizer = tokenizer
        self.window = max_sentence_length - 2  # room for [CLS] and [SEP]
        self.batch_size = max(1, int(batch_size))
        self.max_batch_pieces = max(0, int(max_batch_pieces))
        self.pooling = pooling
        vocab = tokenizer.get_vocab()
        self.unk_id, self.cls_id, self.sep_id = vocab["[UNK]"], vocab["[CLS]"], vocab["[SEP]"]
        self.pad_id = vocab.get("[PAD]", 0)
        # The graph's first output: BERT's last_hidden_state, or a token classifier's logits (one score per
        # label instead of a vector: windows and first-piece pooling apply the same way).
        self.dimension = self.session.output_dim
        self.stats = empty_stats()
        self.stats["bf16_fallbacks"] = int(self.session.fell_back)
        self._bf16 = self.session.precision == "bf16"

    # --- pieces -----------------------------------------------------------------------------
    def pieces(self, sentences: list[list[str]]) -> list[tuple[np.ndarray, np.ndarray]]:
        """For each sentence: (piece ids, token index of each piece); every token has >= 1 piece."""
        encodings = self.tokenizer.encode_batch(sentences, is_pretokenized=True, add_special_tokens=False)
        out = []
        for words, enc in zip(sentences, encodings):
            ids, word_ids = enc.ids, enc.word_ids
            piece_ids: list[int] = []
            owners: list[int] = []
            j, n = 0, len(ids)
            for w in range(len(words)):
                first = len(piece_ids)
                while j < n and word_ids[j] == w:
                    piece_ids.append(ids[j])
                    owners.append(w)
                    j += 1
                if len(piece_ids) == first:  # the normalizer erased the whole token
                    piece_ids.append(self.unk_id)
                    owners.append(w)
            out.append((np.asarray(piece_ids, dtype=np.int64), np.asarray(owners, dtype=np.int64)))
        return out

    # --- windows ----------------------------------------------------------------------------
    def _windows(self, sentence: int, ids: np.ndarray, owners: np.ndarray) -> list[_Window]:
        n, size = len(ids), self.window
        if n <= size:
            starts = [0]
        else:
            stride = max(1, size // 2)
            starts = list(range(0, n - size, stride)) + [n - size]
        positions = np.arange(n)
        if len(starts) == 1:
            best = np.zeros(n, dtype=np.int64)
        else:
            # context a piece has in each window: distance to the nearer edge (-1 outside the window)
            s = np.asarray(starts)[:, None]
            context = np.minimum(positions - s, s + size - 1 - positions)
            best = context.argmax(axis=0)
        if self.pooling == "first":
            is_first = np.ones(n, dtype=bool)
            is_first[1:] = owners[1:] != owners[:-1]
        windows = []
        for k, start in enumerate(starts):
            mine = best == k
            if self.pooling == "first":
                mine &= is_first
            p = positions[mine]
            windows.append(_Window(sentence, start, ids[start : start + size], 1 + p - start, owners[p]))
        return windows

    # --- model ------------------------------------------------------------------------------
    def embed(self, sentences: list[list[str]]) -> list[EmbeddedSentence]:
        pieces = self.pieces(sentences)
        results = [np.zeros((len(words), self.dimension), dtype=np.float32) for words in sentences]
        counts = [np.bincount(owners, minlength=len(words)) for (_, owners), words in zip(pieces, sentences)]
        windows = [w for i, (ids, owners) in enumerate(pieces) if len(ids) for w in self._windows(i, ids, owners)]
        windows.sort(key=lambda w: len(w.ids))
        lengths = [len(w.ids) + 2 for w in windows]  # with [CLS] and [SEP]
        for start, stop in plan_batches(lengths, self.batch_size, self.max_batch_pieces):
            batch = windows[start:stop]
            hidden = self._run(batch)
            for w, h in zip(batch, hidden):
                # np.add.at: a token may own several rows (mean pooling); with "first" rows are unique
                np.add.at(results[w.sentence], w.targets, h[w.rows])
        out = []
        for (ids, owners), vectors, n_pieces in zip(pieces, results, counts):
            if self.pooling == "mean" and len(ids):
                vectors /= np.maximum(n_pieces, 1)[:, None]
            first_index = np.searchsorted(owners, np.arange(len(vectors)))
            first_ids = ids[first_index] if len(ids) else np.zeros(0, dtype=np.int64)
            out.append(EmbeddedSentence(vectors, first_ids, first_ids == self.unk_id))
        return out

    def _run(self, batch: list[_Window]) -> np.ndarray:
        longest = max(len(w.ids) for w in batch) + 2
        input_ids = np.full((len(batch), longest), self.pad_id, dtype=np.int64)
        mask = np.zeros((len(batch), longest), dtype=np.int64)
        for row, w in enumerate(batch):
            n = len(w.ids)
            input_ids[row, 0] = self.cls_id
            input_ids[row, 1 : n + 1] = w.ids
            input_ids[row, n + 1] = self.sep_id
            mask[row, : n + 2] = 1
        real = int(mask.sum())
        self.stats["windows"] += len(batch)
        self.stats["pieces"] += real
        self.stats["padded_pieces"] += mask.size - real
        self.stats["model_calls"] += 1
        self.stats["bf16_pieces"] += real if self._bf16 else 0
        feeds = {"input_ids": input_ids, "attention_mask": mask, "token_type_ids": np.zeros_like(input_ids)}
        started = time.perf_counter()
        hidden = self.session.run(feeds)
        self.stats["model_seconds"] += time.perf_counter() - started
        return hidden
