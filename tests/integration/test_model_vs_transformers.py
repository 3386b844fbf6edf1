"""The bundle against Hugging Face transformers on the same random checkpoint.

Needs the optional torch extra (torch + transformers); skipped without it.
"""

from __future__ import annotations

import shutil
import unicodedata
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
transformers = pytest.importorskip("transformers")

from pipelines.model import ModelBundle  # noqa: E402
from pipelines.model.checkpoint import train_wordpiece_tokenizer, write_random_checkpoint  # noqa: E402
from pipelines.model.prepare import prepare_model  # noqa: E402

pytestmark = pytest.mark.torch

TRAIN = [
    "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland.",
    "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
    "Le président réside au palais de l'Élysée à Paris. Où est le café?",
    "¿Dónde está la estación? Mañana viajaré a Sevilla con mi niña.",
    "北京是中华人民共和国的首都。東京は日本の首都です。서울은 대한민국의 수도입니다.",
    "Москва — столица России. Η Αθήνα είναι η πρωτεύουσα της Ελλάδας.",
    "القاهرة هي عاصمة مصر. नई दिल्ली भारत की राजधानी है।",
    "The quick brown fox jumps over the lazy dog. 🙂 #tag @user 3.5% (Jane Doe) said: \"fine!\"",
] * 3

# accents (no stripping), CJK, emoji, control chars, odd whitespace, unknown words
PROBES = [
    "Größere Straßen führen über die Brücke nach Köln.",
    "ÉLYSÉE élysée Élysée à où ñ ç ø å ß ł ő",
    "北京東京서울 中文字符测试，日本語のテキスト。",
    "emoji 🙂👍🏽 🇩🇪 ❤️ family 👨‍👩‍👧 end",
    "ctrl\x00a\x07b\x1bc\x7fd\u200be\ufeff\ufffdf",
    "tabs\tand\nnew\r\nlines\u00a0nbsp\u3000ideographic\u2028sep",
    "Zzyzx unseenword Ünïcödé «quotes» „Anführung“ — dash… ellipsis",
    "punct!?.,;:()[]{}<>/\\|@#$%^&*_+=~`'\"",
    "[CLS] inline [SEP] specials [MASK]",
    "",
    "a" * 120 + " long word over 100 chars",
]

TINY = dict(num_layers=2, hidden_size=64, num_heads=4, intermediate_size=128, max_position_embeddings=128)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    tok = train_wordpiece_tokenizer(TRAIN, vocab_size=600)
    return write_random_checkpoint(tmp_path_factory.mktemp("hf") / "ckpt", tok, seed=7, **TINY)


@pytest.fixture(scope="module")
def hf_model(ckpt):
    model, info = transformers.BertModel.from_pretrained(str(ckpt), output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    return model.eval()


@pytest.fixture(scope="module")
def bundle(ckpt, tmp_path_factory) -> ModelBundle:
    return prepare_model(tmp_path_factory.mktemp("b") / "fp32", from_dir=ckpt)


def _batch(tok, texts, pad_to=None, with_pairs=False):
    encs = [tok.encode(t, "zweiter Satz hier") if with_pairs else tok.encode(t) for t in texts]
    n = pad_to or max(len(e.ids) for e in encs)
    ids = np.zeros((len(encs), n), np.int64)
    mask, tt = np.zeros_like(ids), np.zeros_like(ids)
    for i, e in enumerate(encs):
        k = len(e.ids)
        ids[i, :k], mask[i, :k], tt[i, :k] = e.ids, e.attention_mask, e.type_ids
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}


def _hf(model, feeds) -> np.ndarray:
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in feeds.items()})
    return out.last_hidden_state.numpy()


@pytest.mark.parametrize("with_pairs", [False, True])
def test_onnx_matches_hf_bertmodel_padded(bundle, hf_model, with_pairs):
    tok = bundle.load_tokenizer()
    texts = [p for p in PROBES if p] + ["kurz"]
    feeds = _batch(tok, texts, with_pairs=with_pairs)
    assert (feeds["attention_mask"] == 0).any()  # really padded
    if with_pairs:
        assert (feeds["token_type_ids"] == 1).any()
    ours = bundle.create_session(intra_op_threads=1).run(None, feeds)[0]
    ref = _hf(hf_model, feeds)
    assert ours.shape == ref.shape
    for i, n in enumerate(feeds["attention_mask"].sum(1)):
        np.testing.assert_allclose(ours[i, :n], ref[i, :n], rtol=0, atol=1e-4)


def test_padding_invariance_3x(bundle, hf_model):
    tok = bundle.load_tokenizer()
    sess = bundle.create_session(intra_op_threads=1)
    text = "Größere Straßen führen über die Brücke nach Köln."
    alone = _batch(tok, [text])
    n = alone["input_ids"].shape[1]
    padded = _batch(tok, [text, "北京", "Москва — столица России."], pad_to=3 * n)
    a = sess.run(None, alone)[0][0]
    b = sess.run(None, padded)[0][0, :n]
    np.testing.assert_allclose(b, a, rtol=0, atol=1e-5)
    np.testing.assert_allclose(a, _hf(hf_model, alone)[0], rtol=0, atol=1e-4)


def _slow_tokenizer_cls():
    # transformers 5: BertTokenizerLegacy is the pure-Python one; 4.x: BertTokenizer
    legacy = getattr(transformers, "BertTokenizerLegacy", None)
    return legacy or transformers.BertTokenizer


def test_tokenizer_matches_transformers(bundle, ckpt):
    ours = bundle.load_tokenizer()
    fast = transformers.BertTokenizerFast.from_pretrained(str(ckpt))
    slow = _slow_tokenizer_cls().from_pretrained(str(ckpt))
    auto = transformers.AutoTokenizer.from_pretrained(str(ckpt))
    for text in PROBES:
        mine = ours.encode(text)
        for ref in (fast, auto):
            assert mine.ids == ref(text)["input_ids"], (type(ref).__name__, text)
        assert ours.encode(text, add_special_tokens=False).ids == fast(text, add_special_tokens=False)["input_ids"]
        # The Python tokenizer NFC-normalizes first (the Rust ones do not); on NFC text all agree.
        nfc = unicodedata.normalize("NFC", text)
        assert ours.encode(nfc).ids == slow(nfc)["input_ids"], ("slow", text)


def test_vocab_only_checkpoint_tokenizer_matches_transformers(ckpt, tmp_path):
    src = tmp_path / "vocab_only"
    src.mkdir()
    for f in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json", "special_tokens_map.json"):
        shutil.copy(ckpt / f, src / f)
    b = prepare_model(tmp_path / "bundle", from_dir=src)
    ours = b.load_tokenizer()
    slow = _slow_tokenizer_cls().from_pretrained(str(src))
    fast = transformers.BertTokenizerFast.from_pretrained(str(src))  # converted from vocab.txt
    for text in PROBES:
        assert ours.encode(text).ids == fast(text)["input_ids"], text
        nfc = unicodedata.normalize("NFC", text)
        assert ours.encode(nfc).ids == slow(nfc)["input_ids"], text
    assert b.manifest.case_sensitive is True


def test_pytorch_model_bin_checkpoint(ckpt, bundle, tmp_path):
    src = tmp_path / "bin"
    shutil.copytree(ckpt, src)
    (src / "model.safetensors").unlink()
    sd = {k: torch.from_numpy(v) for k, v in __import__("safetensors.numpy", fromlist=["x"]).load_file(
        str(ckpt / "model.safetensors")).items()}
    torch.save({"bert." + k: v for k, v in sd.items()}, src / "pytorch_model.bin")
    b = prepare_model(tmp_path / "from_bin", from_dir=src)
    assert b.manifest.files["model.onnx"] == bundle.manifest.files["model.onnx"]  # identical graph
    assert not any(p.suffix == ".bin" for p in b.path.rglob("*"))
