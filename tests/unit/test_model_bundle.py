"""Model bundle: loading, verification errors, ONNX I/O contract, tokenizer settings.

Real files in tmp_path, real ONNX Runtime; no torch needed.
"""

from __future__ import annotations

import json
import pickle
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

from pipelines.model import BundleError, ModelBundle, ModelManifest, write_bundle
from pipelines.model.bundle import DEMO_NOTES
from pipelines.model.demo import build_demo_model
from pipelines.model.digest import sha256_file

REPO = Path(__file__).resolve().parents[2]

TEXTS = [
    "Angela Merkel war Bundeskanzlerin der Bundesrepublik Deutschland.",
    "Größere Straßen führen über die Brücke nach Köln und Düsseldorf.",
    "Le président réside au palais de l'Élysée à Paris.",
    "北京是中华人民共和国的首都。東京は日本の首都です。",
    "Москва — столица России.",
    "The quick brown fox jumps over the lazy dog. 🙂",
] * 5


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory) -> Path:
    out = tmp_path_factory.mktemp("bundle") / "demo"
    build_demo_model(out, TEXTS, seed=0)
    return out


@pytest.fixture
def bundle_copy(demo_dir, tmp_path) -> Path:
    dst = tmp_path / "copy"
    shutil.copytree(demo_dir, dst)
    return dst


def _feeds(ids_rows: list[list[int]], total_len: int | None = None) -> dict[str, np.ndarray]:
    total = total_len or max(len(r) for r in ids_rows)
    ids = np.zeros((len(ids_rows), total), dtype=np.int64)
    mask = np.zeros_like(ids)
    for i, r in enumerate(ids_rows):
        ids[i, : len(r)] = r
        mask[i, : len(r)] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def _assert_actionable(err: BundleError, path: Path, *needles: str) -> None:
    msg = str(err)
    assert str(path) in msg, msg
    for n in needles:
        assert n in msg, msg


# ------------------------------------------------------------------ manifest
def test_demo_bundle_manifest(demo_dir):
    b = ModelBundle.load(demo_dir)
    m = b.manifest
    assert isinstance(m, ModelManifest)
    assert b.path == demo_dir
    assert b.onnx_path == demo_dir / "model.onnx"
    assert b.tokenizer_path == demo_dir / "tokenizer.json"
    assert m.format_version == 1
    assert m.kind == "demo"
    assert m.notes == DEMO_NOTES
    assert re.fullmatch(r"demo_bert_[0-9a-f]{12}", m.storage_ref), m.storage_ref
    weights_sha = sha256_file(demo_dir / "checkpoint" / "model.safetensors")
    assert m.storage_ref == f"demo_bert_{weights_sha[:12]}"
    assert (m.dimension, m.num_layers, m.num_heads, m.intermediate_size) == (128, 2, 4, 512)
    assert m.max_position_embeddings == 512
    assert m.case_sensitive is True
    assert m.precision == "fp32"
    assert set(m.files) == {"model.onnx", "tokenizer.json"}
    for name, digest in m.files.items():
        assert sha256_file(demo_dir / name) == digest
    tok = b.load_tokenizer()
    assert m.vocab_size == tok.get_vocab_size()
    on_disk = json.loads((demo_dir / "manifest.json").read_text())
    assert ModelManifest.model_validate(on_disk) == m


def test_demo_build_is_deterministic(demo_dir, tmp_path):
    again = build_demo_model(tmp_path / "again", TEXTS, seed=0)
    first = ModelBundle.load(demo_dir).manifest
    assert again.manifest.storage_ref == first.storage_ref
    assert again.manifest.files == first.files  # byte-identical model.onnx and tokenizer.json

    other_seed = build_demo_model(tmp_path / "seed1", TEXTS, seed=1)
    assert other_seed.manifest.storage_ref != first.storage_ref
    # same vocab size but another vocabulary -> other weights -> other storage_ref
    other_texts = build_demo_model(tmp_path / "texts", [t[::-1] for t in TEXTS], seed=0)
    assert other_texts.manifest.storage_ref != first.storage_ref


def test_manifest_forbids_extra_fields(demo_dir):
    raw = json.loads((demo_dir / "manifest.json").read_text())
    raw["surprise"] = 1
    with pytest.raises(Exception):
        ModelManifest.model_validate(raw)


# -------------------------------------------------------------- BundleError
def test_missing_dir(tmp_path):
    p = tmp_path / "nope"
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(p)
    _assert_actionable(ei.value, p, "does not exist", "prepare-model", "demo-model")


def test_path_is_a_file(tmp_path):
    p = tmp_path / "model.onnx"
    p.write_bytes(b"x")
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(p)
    _assert_actionable(ei.value, p, "not a directory")


def test_missing_manifest(bundle_copy):
    (bundle_copy / "manifest.json").unlink()
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, "missing manifest.json", "prepare-model --from-dir",
                       f"demo-model --out {bundle_copy}")


def test_manifest_not_json(bundle_copy):
    (bundle_copy / "manifest.json").write_text("{not json")
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, "not valid JSON", "rebuild")


@pytest.mark.parametrize(
    "mutate, needle",
    [
        (lambda m: m.update(kind="toy"), "kind"),
        (lambda m: m.pop("dimension"), "dimension"),
        (lambda m: m.update(extra_field=1), "extra_field"),
        (lambda m: m.update(precision="fp8"), "precision"),
        (lambda m: m["files"].pop("model.onnx"), "does not list model.onnx"),
    ],
)
def test_manifest_invalid_fields(bundle_copy, mutate, needle):
    raw = json.loads((bundle_copy / "manifest.json").read_text())
    mutate(raw)
    (bundle_copy / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, needle, "rebuild")


def test_corrupted_onnx_flipped_byte(bundle_copy):
    p = bundle_copy / "model.onnx"
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    msg = str(ei.value)
    assert f"file model.onnx in bundle {bundle_copy} does not match its manifest sha256" in msg
    assert "corrupt or modified" in msg and "rebuild the bundle" in msg
    # verify=False skips hashing (for callers that verified once on the driver)
    assert ModelBundle.load(bundle_copy, verify=False).manifest.files["model.onnx"] != sha256_file(p)


def test_listed_file_missing(bundle_copy):
    (bundle_copy / "tokenizer.json").unlink()
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, "missing tokenizer.json", "rebuild")


@pytest.mark.parametrize("name", ["weights.pkl", "pytorch_model.bin", "model.pt", "extra.npy"])
def test_pickle_or_foreign_file_in_bundle(bundle_copy, name):
    with open(bundle_copy / name, "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, repr(name), "never contain pickles")


def test_pickle_in_checkpoint_subdir(bundle_copy):
    with open(bundle_copy / "checkpoint" / "pytorch_model.bin", "wb") as f:
        pickle.dump({"a": 1}, f)
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, "checkpoint/pytorch_model.bin")


def test_unexpected_subdirectory(bundle_copy):
    (bundle_copy / "plugins").mkdir()
    with pytest.raises(BundleError) as ei:
        ModelBundle.load(bundle_copy)
    _assert_actionable(ei.value, bundle_copy, "'plugins'")


# ------------------------------------------------------------ ONNX contract
def test_session_io_contract(demo_dir):
    b = ModelBundle.load(demo_dir)
    sess = b.create_session(intra_op_threads=1)
    assert isinstance(sess, ort.InferenceSession)
    ins = {i.name: i for i in sess.get_inputs()}
    assert list(ins) == ["input_ids", "attention_mask", "token_type_ids"]
    for i in ins.values():
        assert i.type == "tensor(int64)"
        assert len(i.shape) == 2 and all(isinstance(d, str) for d in i.shape)  # dynamic
    (out,) = sess.get_outputs()
    assert out.name == "last_hidden_state" and out.type == "tensor(float)"
    assert out.shape[2] == 128
    enc = b.load_tokenizer().encode("Größere Straßen führen über die Brücke.")
    (h,) = sess.run(["last_hidden_state"], _feeds([enc.ids]))
    assert h.shape == (1, len(enc.ids), 128) and h.dtype == np.float32
    assert np.isfinite(h).all()
    # LayerNorm output with gamma=1, beta=0: zero mean / unit variance per token
    np.testing.assert_allclose(h.mean(-1), 0.0, atol=1e-4)
    np.testing.assert_allclose(h.std(-1), 1.0, atol=1e-3)


def test_padding_invariance(demo_dir):
    b = ModelBundle.load(demo_dir)
    sess = b.create_session(intra_op_threads=1)
    tok = b.load_tokenizer()
    target = tok.encode("Angela Merkel war Bundeskanzlerin in Berlin.").ids
    others = [tok.encode(t).ids for t in ("Москва — столица России.", "Hi", "北京是中华人民共和国的首都。")]
    (alone,) = sess.run(None, _feeds([target]))
    n = len(target)
    (batch,) = sess.run(None, _feeds([target] + others, total_len=3 * n))
    np.testing.assert_allclose(batch[0, :n], alone[0], rtol=0, atol=1e-5)
    # and at another batch position, with different amounts of padding around it
    (batch2,) = sess.run(None, _feeds(others[:1] + [target] + [others[1]], total_len=2 * n + 1))
    np.testing.assert_allclose(batch2[1, :n], alone[0], rtol=0, atol=1e-5)


def test_fully_padded_row_is_finite(demo_dir):
    b = ModelBundle.load(demo_dir)
    sess = b.create_session(intra_op_threads=1)
    f = _feeds([[2, 10, 11, 3], []], total_len=4)
    (h,) = sess.run(None, f)
    assert np.isfinite(h).all()


# ---------------------------------------------------------------- tokenizer
def test_tokenizer_has_no_truncation_or_padding(bundle_copy):
    # Even a tokenizer.json saved with truncation+padding comes back without them.
    from tokenizers import Tokenizer

    b = ModelBundle.load(bundle_copy)
    tok = Tokenizer.from_file(str(b.tokenizer_path))
    tok.enable_truncation(8)
    tok.enable_padding(length=16)
    tok.save(str(b.tokenizer_path))
    raw = json.loads((bundle_copy / "manifest.json").read_text())
    raw["files"]["tokenizer.json"] = sha256_file(b.tokenizer_path)
    (bundle_copy / "manifest.json").write_text(json.dumps(raw))

    tok = ModelBundle.load(bundle_copy).load_tokenizer()
    assert tok.truncation is None and tok.padding is None
    long_text = " ".join(["Größere Straßen nach Köln"] * 200)
    with_special = tok.encode(long_text)
    bare = tok.encode(long_text, add_special_tokens=False)
    assert len(with_special.ids) > 512  # no silent truncation
    assert with_special.tokens[0] == "[CLS]" and with_special.tokens[-1] == "[SEP]"
    assert with_special.ids[1:-1] == bare.ids
    assert "[CLS]" not in bare.tokens and "[PAD]" not in bare.tokens
    assert bare.tokens[:3] == ["Größere", "Straßen", "nach"]  # cased, accents kept


def test_tokenizer_cased_multilingual(demo_dir):
    tok = ModelBundle.load(demo_dir).load_tokenizer()
    toks = tok.encode("Élysée ÉLYSÉE 北京 🙂", add_special_tokens=False).tokens
    assert "Élysée" in toks  # no lowercasing, no accent stripping
    assert toks[-3:] == ["北", "京", "🙂"]  # CJK split per character
    ids = tok.encode("a\x00b\x07c", add_special_tokens=False)
    assert "\x00" not in "".join(ids.tokens) and "\x07" not in "".join(ids.tokens)


# --------------------------------------------------------------- write_bundle
def test_write_bundle_roundtrip_and_rejects_files(demo_dir, tmp_path):
    import onnx

    src = ModelBundle.load(demo_dir)
    fields = src.manifest.model_dump(exclude={"files", "created_at"})
    out = write_bundle(tmp_path / "w", onnx.load(str(src.onnx_path)), src.load_tokenizer(),
                       **{**fields, "name": "copy"})
    assert out.manifest.name == "copy"
    assert out.manifest.files["model.onnx"] == src.manifest.files["model.onnx"]
    assert sorted(p.name for p in (tmp_path / "w").iterdir()) == ["manifest.json", "model.onnx",
                                                                  "tokenizer.json"]
    with pytest.raises(TypeError):
        write_bundle(tmp_path / "w2", src.onnx_path, src.tokenizer_path, files={}, **fields)


# ------------------------------------------------------ no torch on this path
def test_annotate_path_never_imports_torch(demo_dir):
    code = f"""
import sys
import numpy as np
from pipelines.model import ModelBundle
b = ModelBundle.load({str(demo_dir)!r})
s = b.create_session(intra_op_threads=1)
t = b.load_tokenizer()
ids = np.array([t.encode("Hallo Welt").ids], dtype=np.int64)
s.run(None, {{"input_ids": ids, "attention_mask": np.ones_like(ids), "token_type_ids": np.zeros_like(ids)}})
bad = sorted(m for m in sys.modules if m.split(".")[0] in ("torch", "transformers"))
assert not bad, bad
print("ok")
"""
    r = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "ok"


def test_fp16_bundle_for_gpus_gives_the_fp32_vectors_on_the_cpu_too(tmp_path):
    """fp16 targets ONNX Runtime's CUDA provider; here we can only check the conversion on the CPU."""
    import numpy as np

    from pipelines.model.demo import build_demo_model
    from pipelines.model.prepare import prepare_model

    fp32 = build_demo_model(tmp_path / "fp32")
    fp16 = prepare_model(tmp_path / "fp16", from_dir=fp32.path / "checkpoint", precision="fp16", kind="demo")
    assert fp16.manifest.precision == "fp16" and fp16.manifest.storage_ref == fp32.manifest.storage_ref
    assert fp16.onnx_path.stat().st_size < 0.6 * fp32.onnx_path.stat().st_size
    x = np.asarray([[2, 40, 41, 42, 43, 3]], dtype=np.int64)
    feeds = {"input_ids": x, "attention_mask": np.ones_like(x), "token_type_ids": np.zeros_like(x)}
    a = fp32.create_session(1).run(None, feeds)[0][0]
    b = fp16.create_session(1).run(None, feeds)[0][0]
    cosine = (a * b).sum(-1) / np.linalg.norm(a, axis=-1) / np.linalg.norm(b, axis=-1)
    assert cosine.min() > 0.999
