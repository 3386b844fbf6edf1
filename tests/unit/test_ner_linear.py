"""The NumPy linear-chain CRF of the demo NER model (pipelines/ner/linear.py): its hand-written gradient, its
partition function, and its ONNX graph against the NumPy emissions it was trained with."""

import itertools

import numpy as np

from pipelines.ner.linear import (LinearCrfParams, _small_products, _small_products_t, context_features,
                                  crf_nll_grad, emissions, export_onnx)
from pipelines.ner.tags import allowed_transitions

TAGS = ["O", "B-LOC", "I-LOC", "B-PER", "I-PER"]


def crf_inputs(seed=0):
    rng = np.random.default_rng(seed)
    lengths = np.array([4, 1, 3])
    mask = np.arange(4)[None, :] < lengths[:, None]
    em = rng.normal(size=(3, 4, len(TAGS))) * mask[:, :, None]
    tags = np.array([[1, 2, 0, 3], [0, 0, 0, 0], [3, 4, 4, 0]]) * mask
    allowed, allowed_start = (np.asarray(a) for a in allowed_transitions(TAGS))
    trans = np.where(allowed, rng.normal(size=(5, 5)), -1e4)
    start = np.where(allowed_start, rng.normal(size=5), -1e4)
    end = rng.normal(size=5)
    return em, tags, mask, trans, start, end


def test_the_nll_is_the_one_of_every_path_enumerated():
    em, tags, mask, trans, start, end = crf_inputs()
    nll = crf_nll_grad(em, tags, mask, trans, start, end)[0]

    def score(seq, e):
        return start[seq[0]] + sum(e[i, s] for i, s in enumerate(seq)) + end[seq[-1]] + sum(
            trans[a, b] for a, b in zip(seq, seq[1:]))

    expected = []
    for b, n in enumerate(mask.sum(axis=1)):
        all_paths = [score(p, em[b]) for p in itertools.product(range(len(TAGS)), repeat=int(n))]
        log_z = np.logaddexp.reduce(all_paths)
        expected.append(log_z - score(list(tags[b, :n]), em[b]))
    assert abs(nll - np.mean(expected)) < 1e-9


def test_the_gradient_is_the_numerical_one():
    em, tags, mask, trans, start, end = crf_inputs(1)
    _, d_em, d_trans, d_start, d_end = crf_nll_grad(em, tags, mask, trans, start, end)
    allowed, allowed_start = (np.asarray(a) for a in allowed_transitions(TAGS))
    h = 1e-6
    args = {"em": em, "trans": trans, "start": start, "end": end}
    for name, grad, where in (("em", d_em, np.broadcast_to(mask[:, :, None], em.shape)), ("trans", d_trans, allowed),
                              ("start", d_start, allowed_start), ("end", d_end, np.ones_like(end, bool))):
        for index in zip(*np.nonzero(where)):
            f = []
            for step in (h, -h):
                moved = args[name].copy()
                moved[index] += step
                f.append(crf_nll_grad(**{**args, name: moved}, tags=tags, mask=mask)[0])
            assert abs((f[0] - f[1]) / (2 * h) - grad[index]) < 1e-5, (name, index)


def test_blocked_products_equal_the_plain_ones():
    rng = np.random.default_rng(2)
    a, b, g = rng.normal(size=(1000, 640)), rng.normal(size=(640, 7)), rng.normal(size=(1000, 7))
    np.testing.assert_allclose(_small_products(a, b), a @ b, rtol=1e-12, atol=1e-10)
    np.testing.assert_allclose(_small_products_t(a, g), a.T @ g, rtol=1e-12, atol=1e-10)


def test_the_onnx_graph_computes_the_numpy_emissions_whatever_the_padding(tmp_path):
    import onnxruntime as ort

    rng = np.random.default_rng(3)
    dim, n_chars, k, context = 6, 9, len(TAGS), 2
    p = LinearCrfParams(rng.normal(size=((2 * context + 1) * dim, k)), rng.normal(size=(n_chars, k)),
                        rng.normal(size=(n_chars, k)), rng.normal(size=k), np.zeros((k, k)), np.zeros(k), np.zeros(k))
    p.first_char[0] = p.char_bag[0] = 0.0
    export_onnx(p, tmp_path / "tagger.onnx", dim, context)
    session = ort.InferenceSession(str(tmp_path / "tagger.onnx"), providers=["CPUExecutionProvider"])
    lengths = np.array([5, 2, 1])
    mask = np.arange(5)[None, :] < lengths[:, None]
    emb = rng.normal(size=(3, 5, dim)).astype(np.float32)
    chars = rng.integers(1, n_chars, size=(3, 5, 4)) * mask[:, :, None]
    chars[0, 1, 2:] = 0  # a shorter word
    # garbage in the padding of the embeddings: the graph must not let it reach the real tokens
    expected = emissions(p, context_features((emb * mask[:, :, None]).astype(np.float64), context), chars, mask)
    got = session.run(["emissions"], {"embeddings": emb, "char_ids": chars, "lengths": lengths})[0]
    np.testing.assert_allclose(got, expected, atol=1e-4)
    # one sentence alone, with no padding tokens and a wider character matrix: the same scores
    wide = np.zeros((1, 2, 7), dtype=np.int64)
    wide[0, :, :4] = chars[1, :2]
    alone = session.run(["emissions"], {"embeddings": emb[1:2, :2], "char_ids": wide, "lengths": lengths[1:2]})[0]
    np.testing.assert_allclose(alone[0], got[1, :2], atol=1e-5)
