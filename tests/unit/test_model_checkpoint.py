"""WordPiece training, random HF checkpoints, prepare_model (no torch needed)."""

from __future__ import annotations

import json
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file, save_file

from pipelines.model import BundleError, ModelBundle
from pipelines.model.checkpoint import SPECIAL_TOKENS, train_wordpiece_tokenizer, write_random_checkpoint
from pipelines.model.demo import MBERT_VOCAB_SIZE, pad_vocab_tokenizer
from pipelines.model.onnx_bert import build_bert_onnx
from pipelines.model.prepare import _safetensors_manual, prepare_model, tokenizer_from_vocab

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland.",
    "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
    "Le président réside au palais de l'Élysée à Paris.",
    "¿Dónde está la estación? Mañana viajaré a Sevilla.",
    "北京是中华人民共和国的首都。東京は日本の首都です。서울은 수도입니다.",
    "Москва — столица России. Η Αθήνα είναι η πρωτεύουσα.",
    "The quick brown fox jumps over the lazy dog. 🙂 #tag @user 3.5%",
] * 4

PROBES = [
    "Größere Straßen in Köln",
    "ÉLYSÉE élysée",
    "北京東京서울",
    "unknownwordzzz 🙂",
    "tab\there\nnew line",
]

TINY = dict(num_layers=2, hidden_size=32, num_heads=4, intermediate_size=64, max_position_embeddings=64)


@pytest.fixture(scope="module")
def tok():
    return train_wordpiece_tokenizer(TEXTS, vocab_size=500)


@pytest.fixture(scope="module")
def ckpt(tok, tmp_path_factory) -> Path:
    return write_random_checkpoint(tmp_path_factory.mktemp("ckpt") / "tiny", tok, seed=3, name="tiny-bert", **TINY)


def _run(bundle: ModelBundle, text_ids: list[list[int]]) -> np.ndarray:
    n = max(map(len, text_ids))
    ids = np.zeros((len(text_ids), n), np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(text_ids):
        ids[i, : len(r)], mask[i, : len(r)] = r, 1
    sess = bundle.create_session(intra_op_threads=1)
    return sess.run(None, {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)})[0]


# --------------------------------------------------------------- tokenizer
def test_wordpiece_specials_and_bert_semantics(tok):
    assert [tok.id_to_token(i) for i in range(5)] == SPECIAL_TOKENS
    enc = tok.encode("Größere Straßen 北京 🙂")
    assert enc.tokens[0] == "[CLS]" and enc.tokens[-1] == "[SEP]"
    assert enc.tokens[1:3] == ["Größere", "Straßen"]
    assert enc.tokens[3:6] == ["北", "京", "🙂"]
    assert tok.encode("Größere", add_special_tokens=False).tokens == ["Größere"]
    # every piece after the first in a word is a ## continuation
    assert all(t.startswith("##") for t in tok.encode("Zzyzxq", add_special_tokens=False).tokens[1:])
    # special tokens are special (skipped on decode), ## pieces are not
    assert tok.decode(tok.encode("Köln").ids) == "Köln"
    added = {t.content for t in tok.get_added_tokens_decoder().values()}
    assert added == set(SPECIAL_TOKENS)


def test_uncased_variant_lowercases():
    t = train_wordpiece_tokenizer(TEXTS, vocab_size=300, cased=False)
    assert t.encode("GRÖSSERE Élysée", add_special_tokens=False).tokens[0].islower()


def test_training_is_deterministic_across_processes():
    code = (
        "import hashlib;from pipelines.model.checkpoint import train_wordpiece_tokenizer as t;"
        f"print(hashlib.sha256(t({TEXTS!r}, vocab_size=400).to_str().encode()).hexdigest())"
    )
    digests = {
        subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True,
                       check=True).stdout.strip()
        for _ in range(3)
    }
    assert len(digests) == 1


def test_pad_vocab_to_exact_size(tok):
    padded = pad_vocab_tokenizer(tok, tok.get_vocab_size() + 1000)
    assert padded.get_vocab_size() == tok.get_vocab_size() + 1000
    ids = sorted(padded.get_vocab().values())
    assert ids == list(range(len(ids)))
    for p in PROBES:
        assert padded.encode(p).ids == tok.encode(p).ids  # fillers never match
    assert MBERT_VOCAB_SIZE == 119_547


# -------------------------------------------------------------- checkpoint
def test_random_checkpoint_layout(ckpt, tok):
    names = sorted(p.name for p in ckpt.iterdir())
    assert names == ["config.json", "model.safetensors", "special_tokens_map.json", "tokenizer.json",
                     "tokenizer_config.json", "vocab.txt"]
    cfg = json.loads((ckpt / "config.json").read_text())
    assert cfg["model_type"] == "bert" and cfg["architectures"] == ["BertModel"]
    assert cfg["hidden_act"] == "gelu" and cfg["layer_norm_eps"] == 1e-12
    assert cfg["vocab_size"] == tok.get_vocab_size()
    assert (cfg["num_hidden_layers"], cfg["hidden_size"], cfg["num_attention_heads"],
            cfg["intermediate_size"]) == (2, 32, 4, 64)
    vocab = (ckpt / "vocab.txt").read_text(encoding="utf-8").split("\n")[:-1]
    assert len(vocab) == cfg["vocab_size"] and vocab[:5] == SPECIAL_TOKENS
    assert all(tok.token_to_id(t) == i for i, t in enumerate(vocab))
    tcfg = json.loads((ckpt / "tokenizer_config.json").read_text())
    assert tcfg["do_lower_case"] is False and not tcfg["strip_accents"]
    assert tcfg["tokenize_chinese_chars"] is True and tcfg["tokenizer_class"] == "BertTokenizer"
    w = load_file(str(ckpt / "model.safetensors"))
    assert w["embeddings.word_embeddings.weight"].shape == (cfg["vocab_size"], 32)
    assert w["encoder.layer.1.intermediate.dense.weight"].shape == (64, 32)
    assert "pooler.dense.weight" in w
    np.testing.assert_array_equal(w["encoder.layer.0.output.LayerNorm.weight"], 1.0)
    q = w["encoder.layer.0.attention.self.query.weight"]
    assert abs(q.std() - 0.02) < 0.004 and q.dtype == np.float32


def test_prepare_from_dir(ckpt, tok, tmp_path):
    b = prepare_model(tmp_path / "b", from_dir=ckpt)
    m = b.manifest
    assert m.kind == "real" and m.notes == "" and m.name == "tiny-bert"
    assert m.storage_ref.startswith("tiny_bert_") and len(m.storage_ref) == len("tiny_bert_") + 8
    assert m.source == str(ckpt.resolve())
    assert (m.dimension, m.num_layers, m.num_heads, m.intermediate_size) == (32, 2, 4, 64)
    assert m.vocab_size == tok.get_vocab_size() and m.max_position_embeddings == 64
    assert m.case_sensitive is True and m.precision == "fp32"
    assert sorted(p.name for p in b.path.iterdir()) == ["manifest.json", "model.onnx", "tokenizer.json"]


def test_prepare_from_vocab_txt_only(ckpt, tok, tmp_path):
    src = tmp_path / "vocab_only"
    src.mkdir()
    for f in ("config.json", "model.safetensors", "vocab.txt", "tokenizer_config.json"):
        shutil.copy(ckpt / f, src / f)
    full = prepare_model(tmp_path / "full", from_dir=ckpt)
    vonly = prepare_model(tmp_path / "vonly", from_dir=src)
    assert vonly.manifest.case_sensitive is True
    t_full, t_vonly = full.load_tokenizer(), vonly.load_tokenizer()
    for text in PROBES + TEXTS[:7]:
        a, b = t_full.encode(text), t_vonly.encode(text)
        assert a.tokens == b.tokens and a.ids == b.ids and a.offsets == b.offsets, text
        assert t_vonly.encode(text, add_special_tokens=False).ids == a.ids[1:-1]
    np.testing.assert_array_equal(_run(full, [t_full.encode(PROBES[0]).ids]),
                                  _run(vonly, [t_vonly.encode(PROBES[0]).ids]))

    # only vocab.txt: transformers' default do_lower_case=True applies
    (src / "tokenizer_config.json").unlink()
    lower = prepare_model(tmp_path / "lower", from_dir=src)
    assert lower.manifest.case_sensitive is False
    assert lower.load_tokenizer().normalizer.normalize_str("KÖLN") == "koln"  # lowercase + strip accents


def test_tokenizer_from_vocab_settings(ckpt):
    t = tokenizer_from_vocab(ckpt / "vocab.txt", {"do_lower_case": True, "strip_accents": False})
    assert t.normalizer.normalize_str("ÉLYSÉE") == "élysée"
    t = tokenizer_from_vocab(ckpt / "vocab.txt", {"do_lower_case": True})
    assert t.normalizer.normalize_str("ÉLYSÉE") == "elysee"
    t = tokenizer_from_vocab(ckpt / "vocab.txt", {"do_lower_case": False, "tokenize_chinese_chars": False})
    assert t.normalizer.normalize_str("北京") == "北京"


def test_prefixed_and_gamma_beta_names_give_same_model(ckpt, tmp_path):
    w = load_file(str(ckpt / "model.safetensors"))
    renamed = {}
    for k, v in w.items():
        k = "bert." + k.replace("LayerNorm.weight", "LayerNorm.gamma").replace("LayerNorm.bias", "LayerNorm.beta")
        renamed[k] = v
    renamed["cls.predictions.bias"] = np.zeros(w["embeddings.word_embeddings.weight"].shape[0], np.float32)
    src = tmp_path / "prefixed"
    shutil.copytree(ckpt, src)
    save_file(renamed, str(src / "model.safetensors"))
    a = prepare_model(tmp_path / "a", from_dir=ckpt)
    b = prepare_model(tmp_path / "b", from_dir=src)
    ids = [a.load_tokenizer().encode(p).ids for p in PROBES]
    np.testing.assert_array_equal(_run(a, ids), _run(b, ids))


def test_bf16_and_f16_safetensors_are_read(ckpt, tmp_path):
    w = load_file(str(ckpt / "model.safetensors"))
    # hand-written BF16 safetensors file (numpy has no bfloat16)
    header, blobs, off = {}, [], 0
    for k, v in w.items():
        b = (v.astype(np.float32).view(np.uint32) >> 16).astype("<u2").tobytes()
        header[k] = {"dtype": "BF16", "shape": list(v.shape), "data_offsets": [off, off + len(b)]}
        blobs.append(b)
        off += len(b)
    h = json.dumps(header).encode()
    h += b" " * (-len(h) % 8)
    path = tmp_path / "bf16.safetensors"
    path.write_bytes(struct.pack("<Q", len(h)) + h + b"".join(blobs))
    back = _safetensors_manual(path)
    for k, v in w.items():
        np.testing.assert_allclose(back[k], v, rtol=1e-2, atol=1e-6)
    src = tmp_path / "bf16ckpt"
    shutil.copytree(ckpt, src)
    shutil.copy(path, src / "model.safetensors")
    b = prepare_model(tmp_path / "b16", from_dir=src)
    assert b.manifest.dimension == 32

    src16 = tmp_path / "f16ckpt"
    shutil.copytree(ckpt, src16)
    save_file({k: v.astype(np.float16) for k, v in w.items()}, str(src16 / "model.safetensors"))
    assert prepare_model(tmp_path / "f16", from_dir=src16).manifest.precision == "fp32"


# ---------------------------------------------------------------- errors
def test_prepare_argument_errors(ckpt, tmp_path):
    with pytest.raises(BundleError, match="exactly one source"):
        prepare_model(tmp_path / "x")
    with pytest.raises(BundleError, match="exactly one source"):
        prepare_model(tmp_path / "x", from_dir=ckpt, hf_id="bert-base-multilingual-cased")
    with pytest.raises(BundleError, match="does not exist"):
        prepare_model(tmp_path / "x", from_dir=tmp_path / "missing")
    with pytest.raises(BundleError, match="precision"):
        prepare_model(tmp_path / "x", from_dir=ckpt, precision="fp8")


@pytest.mark.parametrize(
    "breakage, needle",
    [
        ("no_config", "no config.json"),
        ("no_weights", "no model.safetensors or pytorch_model.bin"),
        ("no_tokenizer", "neither tokenizer.json nor vocab.txt"),
        ("gelu_new", "hidden_act='gelu_new'"),
        ("roberta", "model_type='roberta'"),
        ("missing_weight", "encoder.layer.1.output.dense.weight"),
        ("wrong_shape", "has shape"),
    ],
)
def test_prepare_checkpoint_errors(ckpt, tmp_path, breakage, needle):
    src = tmp_path / "broken"
    shutil.copytree(ckpt, src)
    cfg = json.loads((src / "config.json").read_text())
    if breakage == "no_config":
        (src / "config.json").unlink()
    elif breakage == "no_weights":
        (src / "model.safetensors").unlink()
    elif breakage == "no_tokenizer":
        (src / "tokenizer.json").unlink()
        (src / "vocab.txt").unlink()
    elif breakage in ("gelu_new", "roberta"):
        cfg.update(hidden_act="gelu_new") if breakage == "gelu_new" else cfg.update(model_type="roberta")
        (src / "config.json").write_text(json.dumps(cfg))
    else:
        w = load_file(str(src / "model.safetensors"))
        if breakage == "missing_weight":
            del w["encoder.layer.1.output.dense.weight"]
        else:
            w["encoder.layer.0.attention.self.key.weight"] = w["encoder.layer.0.attention.self.key.weight"][:, :16]
        save_file(w, str(src / "model.safetensors"))
    with pytest.raises(BundleError) as ei:
        prepare_model(tmp_path / "out", from_dir=src)
    assert needle in str(ei.value), str(ei.value)
    assert ":" in str(ei.value)  # "what is wrong: what to do"


def test_prepare_refuses_foreign_files_in_out_dir(ckpt, tmp_path):
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.pkl").write_bytes(b"\x80\x04N.")
    with pytest.raises(BundleError, match="empty or new directory"):
        prepare_model(out, from_dir=ckpt)


def test_build_bert_onnx_plain_equals_fused(ckpt):
    import onnxruntime as ort

    w = load_file(str(ckpt / "model.safetensors"))
    cfg = json.loads((ckpt / "config.json").read_text())
    rng = np.random.default_rng(0)
    ids = rng.integers(5, cfg["vocab_size"], size=(3, 20))
    mask = np.ones_like(ids)
    mask[1, 12:] = 0
    mask[2, 5:] = 0
    tt = np.zeros_like(ids)
    tt[0, 10:] = 1
    f = {"input_ids": ids, "attention_mask": mask, "token_type_ids": tt}
    outs = []
    for fused in (True, False):
        m = build_bert_onnx(w, cfg, fused=fused)
        s = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
        outs.append(s.run(None, f)[0])
    for i, n in enumerate(mask.sum(1)):
        np.testing.assert_allclose(outs[0][i, :n], outs[1][i, :n], rtol=0, atol=1e-5)


def test_hf_id_without_hub_access_says_use_from_dir(tmp_path):
    pytest.importorskip("huggingface_hub")
    code = (
        "from pipelines.model.prepare import prepare_model\n"
        "from pipelines.model import BundleError\n"
        "try:\n"
        f"    prepare_model({str(tmp_path / 'out')!r}, hf_id='bert-base-multilingual-cased')\n"
        "except BundleError as e:\n"
        "    print(e)\n"
    )
    env = {**__import__("os").environ, "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, env=env)
    assert r.returncode == 0, r.stderr
    assert "cannot download 'bert-base-multilingual-cased'" in r.stdout
    assert "--from-dir" in r.stdout


def test_hub_cache_snapshot_dir_naming(ckpt, tmp_path):
    snap = tmp_path / "models--google-bert--bert-base-multilingual-cased" / "snapshots" / ("ab" * 20)
    shutil.copytree(ckpt, snap)
    cfg = json.loads((snap / "config.json").read_text())
    del cfg["_name_or_path"]
    (snap / "config.json").write_text(json.dumps(cfg))
    m = prepare_model(tmp_path / "out", from_dir=snap).manifest
    assert m.name == "google-bert/bert-base-multilingual-cased"
    assert m.storage_ref.startswith("bert_base_multilingual_cased_")


def test_int8_bundle_close_to_fp32(ckpt, tmp_path):
    fp32 = prepare_model(tmp_path / "fp32", from_dir=ckpt)
    q = prepare_model(tmp_path / "int8", from_dir=ckpt, precision="int8")
    assert q.manifest.precision == "int8"
    assert q.manifest.storage_ref == fp32.manifest.storage_ref  # same model, other precision
    assert q.onnx_path.stat().st_size < fp32.onnx_path.stat().st_size
    assert sorted(p.name for p in q.path.iterdir()) == ["manifest.json", "model.onnx", "tokenizer.json"]
    tok = q.load_tokenizer()
    rows = [tok.encode(t).ids for t in PROBES + TEXTS[:7]]
    a, b = _run(q, rows), _run(fp32, rows)
    cos = []
    for i, r in enumerate(rows):
        x, y = a[i, : len(r)], b[i, : len(r)]
        cos.extend((x * y).sum(-1) / (np.linalg.norm(x, axis=-1) * np.linalg.norm(y, axis=-1)))
    assert len(cos) == sum(map(len, rows)) and min(cos) >= 0.99, min(cos)
