"""TokenEmbedder against direct ONNX Runtime runs of the same model (demo bundle, no Spark)."""

import itertools

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from pipelines.model.embed import TokenEmbedder, plan_batches

SENTENCES = [
    ["Der", "Bürgermeister", "von", "München", "sagte", ":", '"', "Ja", '"', "."],
    ["北", "京", "是", "中", "国", "的", "首", "都", "。"],
    ["Привет", ",", "мир", "!"],
    ["مرحبا", "بالعالم"],
    ["Hello"],
]


@pytest.fixture(scope="module")
def parts(demo_bundle):
    return demo_bundle.create_session(intra_op_threads=1), demo_bundle.load_tokenizer()


def make(parts, **kw):
    session, tokenizer = parts
    return TokenEmbedder(session, tokenizer, **kw)


def direct(parts, words):
    """Reference: each word's pieces from the tokenizer, one unpadded ONNX call, no windows."""
    session, tokenizer = parts
    vocab = tokenizer.get_vocab()
    pieces = [tokenizer.encode(w, add_special_tokens=False).ids or [vocab["[UNK]"]] for w in words]
    ids = [vocab["[CLS]"]] + [p for ps in pieces for p in ps] + [vocab["[SEP]"]]
    x = np.asarray([ids], dtype=np.int64)
    hidden = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
    starts = np.cumsum([1] + [len(p) for p in pieces])
    return hidden, pieces, starts


def test_first_piece_vectors_equal_a_direct_onnx_run(parts):
    results = make(parts).embed(SENTENCES)
    for words, got in zip(SENTENCES, results):
        hidden, _, starts = direct(parts, words)
        assert got.vectors.shape == (len(words), hidden.shape[1])
        np.testing.assert_allclose(got.vectors, hidden[starts[:-1]], atol=1e-4)


def test_mean_pooling_averages_the_pieces(parts):
    words = ["Donaudampfschifffahrtsgesellschaftskapitän", "und", "Weltmeisterschaftsqualifikation"]
    got = make(parts, pooling="mean").embed([words])[0]
    hidden, pieces, starts = direct(parts, words)
    assert max(len(p) for p in pieces) > 1, "the test needs multi-piece words"
    expected = np.stack([hidden[a:b].mean(axis=0) for a, b in zip(starts[:-1], starts[1:])])
    np.testing.assert_allclose(got.vectors, expected, atol=1e-4)


def test_results_do_not_depend_on_batch_size(parts):
    sentences = SENTENCES * 3 + [["wort"] * n for n in (3, 17, 40, 90)]
    reference = make(parts, batch_size=1).embed(sentences)
    for batch_size, max_batch_pieces in ((2, 0), (8, 0), (32, 0), (32, 256), (64, 40)):
        embedder = make(parts, batch_size=batch_size, max_batch_pieces=max_batch_pieces)
        for a, b in zip(reference, embedder.embed(sentences)):
            np.testing.assert_allclose(a.vectors, b.vectors, atol=1e-5)


def test_token_without_pieces_gets_the_unk_vector(parts):
    words = ["Hallo", "\x00", "Welt"]
    got = make(parts).embed([words])[0]
    hidden, pieces, starts = direct(parts, words)
    assert list(got.oov) == [False, True, False]
    assert np.abs(got.vectors[1]).sum() > 0
    np.testing.assert_allclose(got.vectors, hidden[starts[:-1]], atol=1e-4)


def test_a_2000_piece_sentence_keeps_every_token(parts):
    session, tokenizer = parts
    embedder = make(parts, max_sentence_length=128)
    words = []
    while len(embedder.pieces([words])[0][0]) < 2000:  # however the vocabulary splits these words
        words += [f"Wort{i}x" for i in range(len(words), len(words) + 200)]
    ids, owners = embedder.pieces([words])[0]
    got = embedder.embed([words])[0]
    assert got.vectors.shape[0] == len(words)
    assert np.isfinite(got.vectors).all() and (np.abs(got.vectors).sum(axis=1) > 0).all()
    # Tokens in the first window's own region (first three quarters) equal a direct run of that window.
    window = 126
    vocab = tokenizer.get_vocab()
    x = np.asarray([[vocab["[CLS]"], *ids[:window], vocab["[SEP]"]]], dtype=np.int64)
    hidden = session.run(None, {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)})[0][0]
    first_pieces = np.searchsorted(owners, np.arange(len(words)))
    owned = [w for w, p in enumerate(first_pieces) if p < window * 3 // 4]
    np.testing.assert_allclose(got.vectors[owned], hidden[1 + first_pieces[owned]], atol=1e-4)


def test_padding_is_counted(parts):
    embedder = make(parts, batch_size=4)
    embedder.embed([["a"] * 3, ["b"] * 30])
    assert embedder.stats["pieces"] > 0 and embedder.stats["padded_pieces"] > 0


# --- batch planning --------------------------------------------------------------------------------
def _cost(lengths, batches, call_cost):
    return sum(call_cost + (stop - start) * lengths[stop - 1] for start, stop in batches)


def _valid_plan(lengths, batches, max_windows, max_pieces) -> bool:
    """Consecutive batches covering every window, each within the window and (past one window) piece caps."""
    contiguous = [b[0] for b in batches] == [0] + [b[1] for b in batches[:-1]] and batches[-1][1] == len(lengths)
    return contiguous and all(
        0 < stop - start <= max_windows
        and (not max_pieces or stop - start == 1 or (stop - start) * lengths[stop - 1] <= max_pieces)
        for start, stop in batches)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.integers(3, 130), min_size=1, max_size=9), st.integers(1, 5), st.sampled_from([0, 40, 200]),
       st.integers(0, 64))
def test_plan_is_the_cheapest_valid_cut(lengths, max_windows, max_pieces, call_cost):
    lengths = sorted(lengths)
    batches = plan_batches(lengths, max_windows, max_pieces, call_cost)
    assert _valid_plan(lengths, batches, max_windows, max_pieces)
    candidates = []
    for cuts in itertools.product([False, True], repeat=len(lengths) - 1):  # every way to cut, brute force
        bounds = [0] + [i + 1 for i, c in enumerate(cuts) if c] + [len(lengths)]
        candidates.append(list(zip(bounds[:-1], bounds[1:])))
    best = min(_cost(lengths, c, call_cost) for c in candidates if _valid_plan(lengths, c, max_windows, max_pieces))
    assert _cost(lengths, batches, call_cost) == best


def test_plan_pads_less_than_fixed_size_batches():
    rng = np.random.default_rng(7)
    lengths = sorted(int(x) for x in np.clip(rng.lognormal(3.4, 0.6, 600), 3, 128))
    planned = plan_batches(lengths, 32, 1024)
    fixed = [(i, min(i + 32, len(lengths))) for i in range(0, len(lengths), 32)]

    def padding(batches):
        return sum((b - a) * lengths[b - 1] for a, b in batches) / sum(lengths) - 1

    assert padding(planned) < padding(fixed) / 2
    assert _valid_plan(lengths, planned, 32, 1024)
