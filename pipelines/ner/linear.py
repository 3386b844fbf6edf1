"""A linear-chain CRF tagger over BERT embeddings, trained with NumPy: the demo NER model without PyTorch.

Why not the NerDL tagger (char-CNN + BiLSTM + CRF, :mod:`pipelines.ner.tagger`) for the demo: it trains
with PyTorch, and PyTorch from PyPI is the CUDA build (~4.6 GB of CUDA libraries), which `make demo`
would install only to train a model on 1,500 template sentences over random-weight BERT vectors. This
model is the classic alternative -- a CRF whose emission scores are linear in the features -- small
enough that its gradient is written out by hand (forward-backward) and trained in seconds:

    emissions(t) = W . [e(t-2); e(t-1); e(t); e(t+1); e(t+2)]      BERT vectors of the token and its
                                                                    neighbours (zeros outside the sentence)
                 + F[id of the token's first character]            e.g. capitalised or not, per script
                 + mean over the token's characters of C[id]        a bag of characters (suffixes, scripts)
                 + b

then the same IOB2-constrained CRF (transitions, start, end) as the NerDL tagger's. The loss is the
CRF's negative log-likelihood plus an L2 penalty on W, F and C: convex, so the zero start needs no
random initialisation, and the only randomness is the seeded order of the mini-batches. Everything
runs in float64 NumPy in a fixed order: the same sample and bundle give the same bytes.

It writes the NER_DIR every NerDLModel reads (:mod:`pipelines.ner.model`, format 1): ``tagger.onnx``
with the same inputs and output as the exported NerDL network (``embeddings``, ``char_ids``,
``lengths`` -> ``emissions``), built node by node with ``onnx.helper`` (as :mod:`pipelines.model.onnx_bert`
builds the encoder), ``ner.json`` (its ``hyperparameters.architecture`` says ``linear-crf``) and
``metrics.json``, measured through the written ONNX graph and the NumPy Viterbi (the inference path).
This module never imports torch.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from pipelines.ner.conll import read_conll
from pipelines.ner.metrics import entity_scores
from pipelines.ner.model import MANIFEST, ONNX_FILE, NerManifest, viterbi
from pipelines.ner.tags import allowed_transitions
from pipelines.text.tokens import TokenizerRules

_FORBIDDEN = -1e4  # as pipelines.ner.model: the score of a transition IOB2 does not allow
OPSET = 17
IR_VERSION = 8  # IR 8 <-> opset 17, as the encoder graphs (pipelines.model.onnx_bert)


# --- the model: parameters and its emissions in NumPy (what the ONNX graph computes) ------------------------
@dataclass
class LinearCrfParams:
    W: np.ndarray            # ((2 * context + 1) * D, K)
    first_char: np.ndarray   # (n_chars, K); row 0 (padding) stays zero
    char_bag: np.ndarray     # (n_chars, K); row 0 (padding) stays zero
    bias: np.ndarray         # (K,)
    transitions: np.ndarray  # (K, K), unconstrained (the constraints are applied at use and at load)
    start: np.ndarray        # (K,)
    end: np.ndarray          # (K,)

    NAMES = ("W", "first_char", "char_bag", "bias", "transitions", "start", "end")

    @classmethod
    def zeros(cls, features: int, n_chars: int, k: int) -> LinearCrfParams:
        return cls(np.zeros((features, k)), np.zeros((n_chars, k)), np.zeros((n_chars, k)), np.zeros(k),
                   np.zeros((k, k)), np.zeros(k), np.zeros(k))

    def arrays(self) -> list[np.ndarray]:
        return [getattr(self, n) for n in self.NAMES]


def context_features(emb: np.ndarray, context: int) -> np.ndarray:
    """(B, T, D) padded embeddings (zeros past each sentence's end) -> (B, T, (2c+1)D): the vectors of
    tokens t-c .. t+c, zeros outside the sentence."""
    b, t, d = emb.shape
    padded = np.zeros((b, t + 2 * context, d), dtype=emb.dtype)
    padded[:, context : context + t] = emb
    return np.concatenate([padded[:, o : o + t] for o in range(2 * context + 1)], axis=2)


def char_terms(p: LinearCrfParams, chars: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The first-character and bag-of-characters scores (B, T, K), and each token's character count."""
    count = np.maximum((chars > 0).sum(axis=2, keepdims=True), 1).astype(np.float64)
    return p.first_char[chars[:, :, 0]] + p.char_bag[chars].sum(axis=2) / count, count


def emissions(p: LinearCrfParams, feats: np.ndarray, chars: np.ndarray, mask: np.ndarray) -> np.ndarray:
    chars_k, _ = char_terms(p, chars)
    b, t, f = feats.shape
    return (_small_products(feats.reshape(b * t, f), p.W).reshape(b, t, -1) + chars_k + p.bias) * mask[:, :, None]


# OpenBLAS runs a matrix product on all cores once m*n*k passes 4 * 65536; these products (a batch's
# ~1,000 tokens x 640 features x 7 tags) are too small to gain from that, and on a busy 2-core machine
# its threads spinning for each other doubled the training time (13 s of CPU instead of 6). So they are
# done in row blocks under that size: one thread, and a fixed order of summation (the same bytes).
_ONE_THREAD = 4 * 65536


def _small_products(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``a @ b`` in blocks of rows of ``a``."""
    rows = max(1, _ONE_THREAD // max(1, a.shape[1] * b.shape[1]))
    return np.concatenate([a[r : r + rows] @ b for r in range(0, len(a), rows)]) if len(a) else a @ b


def _small_products_t(a: np.ndarray, g: np.ndarray) -> np.ndarray:
    """``a.T @ g``, summed over blocks of rows in order."""
    rows = max(1, _ONE_THREAD // max(1, a.shape[1] * g.shape[1]))
    out = np.zeros((a.shape[1], g.shape[1]))
    for r in range(0, len(a), rows):
        out += a[r : r + rows].T @ g[r : r + rows]
    return out


# --- the CRF: negative log-likelihood and its gradient, batched ---------------------------------------------
def _logsumexp(x: np.ndarray, axis: int) -> np.ndarray:
    m = x.max(axis=axis, keepdims=True)
    return np.squeeze(m, axis) + np.log(np.exp(x - m).sum(axis=axis))


def crf_nll_grad(em: np.ndarray, tags: np.ndarray, mask: np.ndarray, trans: np.ndarray, start: np.ndarray,
                 end: np.ndarray) -> tuple[float, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Mean NLL of the gold ``tags`` (B, T) over the batch, and its gradient w.r.t. the emissions (B, T, K)
    and the (constrained) transitions, start and end scores. Forward-backward in log space; ``mask`` (B, T)
    marks the real tokens (every sentence has at least one)."""
    b, t, k = em.shape
    lengths = mask.sum(axis=1)
    rows = np.arange(b)
    alpha = np.empty((b, t, k))
    alpha[:, 0] = start + em[:, 0]
    for i in range(1, t):
        nxt = _logsumexp(alpha[:, i - 1, :, None] + trans[None], axis=1) + em[:, i]
        alpha[:, i] = np.where(mask[:, i, None], nxt, alpha[:, i - 1])
    last = alpha[rows, lengths - 1]
    log_z = _logsumexp(last + end, axis=1)
    beta = np.empty((b, t, k))
    beta[:, t - 1] = end
    for i in range(t - 2, -1, -1):
        cand = _logsumexp(trans[None] + (em[:, i + 1] + beta[:, i + 1])[:, None, :], axis=2)
        beta[:, i] = np.where(mask[:, i + 1, None], cand, end)
    maskf = mask.astype(np.float64)
    unary = np.exp(alpha + beta - log_z[:, None, None]) * maskf[:, :, None]
    gold = np.zeros_like(unary)
    np.put_along_axis(gold, tags[:, :, None], 1.0, axis=2)
    gold *= maskf[:, :, None]
    d_em = unary - gold
    # pairwise marginals of (t-1, t), t = 1 .. length-1
    pair = np.exp(alpha[:, :-1, :, None] + trans[None, None] + (em[:, 1:] + beta[:, 1:])[:, :, None, :]
                  - log_z[:, None, None, None]) * maskf[:, 1:, None, None]
    gold_pair = np.zeros((k, k))
    np.add.at(gold_pair, (tags[:, :-1][mask[:, 1:]], tags[:, 1:][mask[:, 1:]]), 1.0)
    d_trans = pair.sum(axis=(0, 1)) - gold_pair
    d_start = unary[:, 0] - gold[:, 0]
    d_end = unary[rows, lengths - 1] - gold[rows, lengths - 1]
    first, final = tags[:, 0], tags[rows, lengths - 1]
    gold_score = ((em * gold).sum(axis=(1, 2)) + start[first] + end[final]
                  + (trans[tags[:, :-1], tags[:, 1:]] * maskf[:, 1:]).sum(axis=1))
    nll = float((log_z - gold_score).mean())
    return nll, d_em / b, d_trans / b, d_start.sum(axis=0) / b, d_end.sum(axis=0) / b


class _Adam:
    def __init__(self, shapes: list[tuple], lr: float, beta1: float = 0.9, beta2: float = 0.999, eps: float = 1e-8):
        self.lr, self.b1, self.b2, self.eps, self.step_count = lr, beta1, beta2, eps, 0
        self.m = [np.zeros(s) for s in shapes]
        self.v = [np.zeros(s) for s in shapes]

    def step(self, params: list[np.ndarray], grads: list[np.ndarray], lr: float) -> None:
        self.step_count += 1
        c1, c2 = 1 - self.b1 ** self.step_count, 1 - self.b2 ** self.step_count
        for p, g, m, v in zip(params, grads, self.m, self.v):
            m *= self.b1
            m += (1 - self.b1) * g
            v *= self.b2
            v += (1 - self.b2) * g * g
            p -= lr * (m / c1) / (np.sqrt(v / c2) + self.eps)


# --- the ONNX graph ------------------------------------------------------------------------------------------
def export_onnx(p: LinearCrfParams, path, emb_dim: int, context: int) -> None:
    """Write the emission scores as an ONNX graph: (embeddings (B,T,D) float, char_ids (B,T,C) int64, lengths
    (B,) int64) -> emissions (B,T,K), zero past each sentence's end; batch, tokens and chars dynamic."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    k = p.bias.shape[0]
    nodes, inits = [], []

    def const(name, array):
        inits.append(numpy_helper.from_array(np.asarray(array), name))
        return name

    def node(op, inputs, output, **attrs):
        nodes.append(helper.make_node(op, inputs, [output], name=output, **attrs))
        return output

    f32 = lambda a: np.asarray(a, dtype=np.float32)  # noqa: E731
    i64 = lambda a: np.asarray(a, dtype=np.int64)  # noqa: E731
    # the real tokens: position < length (the embeddings past a sentence's end are zeroed, so that the
    # neighbours of the last tokens are zeros whatever the padding holds, as in training)
    shape = node("Shape", ["embeddings"], "shape")
    n_tokens = node("Gather", [shape, const("one", i64(1))], "n_tokens")
    steps = node("Range", [const("zero", i64(0)), n_tokens, "one"], "steps")
    steps_row = node("Unsqueeze", [steps, const("axis0", i64([0]))], "steps_row")
    lengths_col = node("Unsqueeze", ["lengths", const("axis1", i64([1]))], "lengths_col")
    real = node("Less", [steps_row, lengths_col], "real")
    realf = node("Cast", [real], "realf", to=TensorProto.FLOAT)
    real3 = node("Unsqueeze", [realf, const("axis2", i64([2]))], "real3")
    x = node("Mul", ["embeddings", real3], "x")
    # neighbours: pad `context` zero tokens on both sides, then slide a window of n_tokens
    padded = node("Pad", [x, const("pads", i64([0, context, 0, 0, context, 0])), const("pad_value", f32(0.0))],
                  "padded")
    shifted = []
    for o in range(2 * context + 1):
        end = node("Add", [n_tokens, const(f"offset{o}", i64(o))], f"end{o}")
        shifted.append(node("Slice", [padded, const(f"start{o}", i64([o])),
                                      node("Unsqueeze", [end, "axis0"], f"end{o}_1d"), "axis1"], f"window{o}"))
    feats = node("Concat", shifted, "features", axis=2)
    scores = node("MatMul", [feats, const("W", f32(p.W))], "context_scores")
    # characters: the first one's row, and the mean of every real character's row (id 0 is padding)
    first_ids = node("Slice", ["char_ids", const("zero_1d", i64([0])),
                               const("one_1d", i64([1])), "axis2"], "first_ids")
    first = node("Squeeze", [node("Gather", [const("first_char", f32(p.first_char)), first_ids], "first_rows"),
                             "axis2"], "first_scores")
    bag = node("ReduceSum", [node("Gather", [const("char_bag", f32(p.char_bag)), "char_ids"], "bag_rows"), "axis2"],
               "bag_sum", keepdims=0)
    realc = node("Cast", [node("Greater", ["char_ids", const("zero_id", i64(0))], "is_char")], "is_charf",
                 to=TensorProto.FLOAT)
    count = node("Max", [node("ReduceSum", [realc, "axis2"], "n_chars", keepdims=1), const("one_f", f32(1.0))],
                 "n_chars_1")
    bag_mean = node("Div", [bag, count], "bag_scores")
    total = node("Add", [node("Add", [node("Add", [scores, first], "sum1"), bag_mean], "sum2"),
                         const("bias", f32(p.bias))], "sum3")
    nodes.append(helper.make_node("Mul", [total, real3], ["emissions"], name="emissions"))
    graph = helper.make_graph(
        nodes, "linear_crf_emissions",
        [helper.make_tensor_value_info("embeddings", TensorProto.FLOAT, ["batch", "tokens", emb_dim]),
         helper.make_tensor_value_info("char_ids", TensorProto.INT64, ["batch", "tokens", "chars"]),
         helper.make_tensor_value_info("lengths", TensorProto.INT64, ["batch"])],
        [helper.make_tensor_value_info("emissions", TensorProto.FLOAT, ["batch", "tokens", k])],
        inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", OPSET)],
                              producer_name="corpus-nlp", producer_version="linear-crf")
    model.ir_version = IR_VERSION
    onnx.checker.check_model(model)
    Path(path).write_bytes(model.SerializeToString(deterministic=True))


# --- training ------------------------------------------------------------------------------------------------
@dataclass
class _Padded:
    feats: np.ndarray
    chars: np.ndarray
    mask: np.ndarray
    tags: np.ndarray


def train_linear_ner(
    train_file,
    dev_file,
    bundle_path,
    out_dir,
    epochs: int = 20,
    *,
    batch_size: int = 32,
    learning_rate: float = 0.03,  # 20 epochs at 0.03: dev F1 0.88 on the demo (0.01: 0.86 at 15, 0.87 at 30)
    l2: float = 1e-4,
    context: int = 2,
    max_chars: int = 32,
    min_char_count: int = 2,
    seed: int = 0,
    max_sentence_length: int = 128,
    embed_batch_size: int = 32,
    pooling: str = "first",
    threads: int = 0,
    log: Callable[[str], None] | None = print,
):
    """Train on ``train_file`` (CoNLL, retokenized as the pipeline cuts), keep the epoch with the best dev
    entity F1, and write NER_DIR ``out_dir`` (see the module doc). Returns a
    :class:`pipelines.ner.train.NerTrainResult`."""
    from pipelines.ner.train import char_matrix, check_out_dir, embedded_data, retokenize, write_checked_model

    log = log or (lambda _m: None)
    started = time.time()
    out = Path(out_dir)
    check_out_dir(out)
    threads = threads or max(1, os.cpu_count() or 1)
    rng = np.random.default_rng(seed)

    train_data, dev_data = read_conll(train_file), read_conll(dev_file)
    log(train_data.summary())
    log(dev_data.summary())
    rules = TokenizerRules()
    train_sents = [retokenize(s, rules) for s in train_data.sentences]
    dev_sents = [retokenize(s, rules) for s in dev_data.sentences]
    data = embedded_data(train_sents, dev_sents, [], bundle_path, min_char_count, log, threads=threads,
                         max_sentence_length=max_sentence_length, batch_size=embed_batch_size, pooling=pooling)
    tags, chars, char_ids, bundle = data.tags, data.chars, data.char_ids, data.bundle
    train, dev, dim, k = data.train, data.dev, data.dimension, len(data.tags)

    def padded(data, idx) -> _Padded:
        lengths = [len(data.tokens[i]) for i in idx]
        longest = max(lengths)
        emb = np.zeros((len(idx), longest, dim), dtype=np.float64)
        tag = np.zeros((len(idx), longest), dtype=np.int64)
        for r, i in enumerate(idx):
            emb[r, : lengths[r]] = data.vectors[i]
            tag[r, : lengths[r]] = data.tags[i]
        mask = np.arange(longest)[None, :] < np.asarray(lengths)[:, None]
        return _Padded(context_features(emb, context), char_matrix([data.tokens[i] for i in idx], char_ids,
                                                                    max_chars, longest), mask, tag)

    allowed, allowed_start = (np.asarray(a) for a in allowed_transitions(tags))

    def constrained(p: LinearCrfParams):
        return (np.where(allowed, p.transitions, _FORBIDDEN), np.where(allowed_start, p.start, _FORBIDDEN), p.end)

    def decode(p: LinearCrfParams, data) -> list[list[str]]:
        trans, start, end = constrained(p)
        out_tags = []
        for b in range(0, len(data.tokens), 64):
            batch = padded(data, list(range(b, min(b + 64, len(data.tokens)))))
            em = emissions(p, batch.feats, batch.chars, batch.mask)
            for r, n in enumerate(batch.mask.sum(axis=1)):
                out_tags.append([tags[j] for j in viterbi(em[r, :n], trans, start, end)])
        return out_tags

    # the batches are built once (similar lengths together, less padding); their order is shuffled per epoch
    order = sorted(range(len(train.tokens)), key=lambda i: (len(train.tokens[i]), i))
    batches = [padded(train, order[b : b + batch_size]) for b in range(0, len(order), batch_size)]
    params = LinearCrfParams.zeros((2 * context + 1) * dim, len(chars) + 2, k)
    adam = _Adam([a.shape for a in params.arrays()], learning_rate)
    log(f"training a linear-chain CRF (NumPy): {len(train.tokens)} sentences, {k} tags, {len(chars)} characters, "
        f"{sum(a.size for a in params.arrays())} parameters")
    history: list[dict] = []
    best_f1, best_epoch, best = -1.0, 0, None
    for epoch in range(1, epochs + 1):
        t0 = time.time()
        total = 0.0
        for bi in rng.permutation(len(batches)):
            batch = batches[bi]
            trans, start, end = constrained(params)
            em = emissions(params, batch.feats, batch.chars, batch.mask)
            nll, d_em, d_trans, d_start, d_end = crf_nll_grad(em, batch.tags, batch.mask, trans, start, end)
            total += nll * len(batch.tags)
            flat = d_em.reshape(-1, k)
            d_w = _small_products_t(batch.feats.reshape(-1, batch.feats.shape[2]), flat) + l2 * params.W
            _, count = char_terms(params, batch.chars)
            d_first = np.zeros_like(params.first_char)
            np.add.at(d_first, batch.chars[:, :, 0], d_em)
            d_bag = np.zeros_like(params.char_bag)
            np.add.at(d_bag, batch.chars, np.broadcast_to((d_em / count)[:, :, None, :],
                                                          batch.chars.shape + (k,)))
            d_first[0] = d_bag[0] = 0.0  # padding
            d_first += l2 * params.first_char
            d_bag += l2 * params.char_bag
            grads = [d_w, d_first, d_bag, d_em.sum(axis=(0, 1)), np.where(allowed, d_trans, 0.0),
                     np.where(allowed_start, d_start, 0.0), d_end]
            adam.step(params.arrays(), grads, learning_rate / (1 + 0.05 * (epoch - 1)))
        f1 = entity_scores(dev.gold, decode(params, dev))["micro"]["f1"]
        # no seconds in the history: metrics.json is the same file for the same inputs (the manifest times it)
        history.append({"epoch": epoch, "loss": round(total / len(train.tokens), 4), "dev_f1": f1})
        marker = ""
        if f1 > best_f1:
            best_f1, best_epoch = f1, epoch
            best = LinearCrfParams(*(a.copy() for a in params.arrays()))
            marker = " *"
        log(f"epoch {epoch:>3}/{epochs}  loss {total / len(train.tokens):8.4f}  dev F1 {f1:.4f}  "
            f"({time.time() - t0:.1f}s){marker}")

    # --- write NER_DIR: tagger.onnx, metrics.json (measured through the ONNX path), ner.json last
    out.mkdir(parents=True, exist_ok=True)
    if (out / MANIFEST).exists():
        (out / MANIFEST).unlink()  # a half-written directory must not look like a model
    export_onnx(best, out / ONNX_FILE, dim, context)
    manifest = NerManifest(
        tags=tags, chars=chars, max_chars=max_chars, transitions=best.transitions.tolist(),
        start_transitions=best.start.tolist(), end_transitions=best.end.tolist(),
        storage_ref=bundle.manifest.storage_ref, embeddings_dimension=dim,
        embeddings={"bundle_name": bundle.manifest.name, "bundle_kind": bundle.manifest.kind,
                    "max_sentence_length": max_sentence_length, "pooling": pooling,
                    "case_sensitive": bundle.manifest.case_sensitive},
        hyperparameters={"architecture": "linear-crf", "trainer": "numpy (pipelines.ner.linear)",
                         "features": f"BERT vectors of tokens t-{context}..t+{context}, first character, "
                                     "mean of the characters",
                         "context": context, "max_chars": max_chars, "min_char_count": min_char_count,
                         "epochs": epochs, "batch_size": batch_size, "learning_rate": learning_rate,
                         "lr_decay": 0.05, "l2": l2, "seed": seed, "optimizer": "adam", "crf": "IOB2-constrained"},
        training={"train_file": str(train_file), "dev_file": str(dev_file), "test_file": None,
                  "train_sentences": len(train.tokens), "dev_sentences": len(dev.tokens), "retokenized": True,
                  "train_scheme": train_data.scheme, "best_epoch": best_epoch, "epochs_run": len(history)},
    )
    batch = padded(dev, list(range(len(dev.tokens))))
    expected = emissions(best, batch.feats, batch.chars, batch.mask)
    return write_checked_model(out, manifest, dev, None, list(expected), best_epoch, history, started, threads, log)
