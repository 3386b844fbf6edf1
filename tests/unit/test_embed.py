"""TokenEmbedder against direct ONNX Runtime runs of the same model (demo bundle, no Spark)."""

import numpy as np
import pytest

from pipelines.embed import TokenEmbedder

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
    for batch_size in (2, 8, 32):
        for a, b in zip(reference, make(parts, batch_size=batch_size).embed(sentences)):
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
