"""prepare-model on fine-tuned classifier checkpoints: the ONNX logits equal Hugging Face's; one error per failure."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from safetensors.numpy import load_file, save_file

from classifier_checkpoints import (
    ARCHITECTURES,
    SENTIMENT_LABELS,
    TEXTS,
    hf_model,
    hf_tokenizer,
    wordpiece_tokenizer,
    write_classifier_checkpoint,
)
from pipelines.model import BundleError, ModelBundle
from pipelines.model.prepare import prepare_model

torch = pytest.importorskip("torch")



@pytest.fixture(scope="module")
def checkpoints(tmp_path_factory) -> dict[str, Path]:
    tok = wordpiece_tokenizer()
    root = tmp_path_factory.mktemp("classifiers")
    return {arch: write_classifier_checkpoint(root / arch, arch, labels, tok, seed=7)
            for arch, labels in ARCHITECTURES.items()}


def _ours_and_theirs(bundle: ModelBundle, checkpoint: Path, texts: list[str]):
    enc = hf_tokenizer(checkpoint)(texts, padding=True, return_tensors="np")
    session = bundle.create_session()
    feeds = {i.name: enc[i.name].astype(np.int64) for i in session.get_inputs()}
    ours = session.run(["logits"], feeds)[0]
    with torch.no_grad():
        theirs = hf_model(checkpoint)(**{k: torch.tensor(v) for k, v in feeds.items()}).logits.numpy()
    return ours, theirs, enc["attention_mask"].astype(bool)


@pytest.mark.parametrize("architecture", list(ARCHITECTURES))
def test_classifier_logits_equal_transformers(checkpoints, architecture, tmp_path):
    bundle = prepare_model(tmp_path / "bundle", from_dir=checkpoints[architecture])
    m = bundle.manifest
    assert m.labels == ARCHITECTURES[architecture]
    assert m.task == ("token-classification" if "Token" in architecture else "sequence-classification")
    assert m.model_type == ("distilbert" if architecture.startswith("Distil") else "bert")
    inputs = {i.name for i in bundle.create_session().get_inputs()}
    assert ("token_type_ids" in inputs) == (m.model_type == "bert")

    ours, theirs, mask = _ours_and_theirs(bundle, checkpoints[architecture], TEXTS[:8])
    if ours.ndim == 3:  # per piece: compare the real (unpadded) positions
        ours, theirs = ours[mask], theirs[mask]
    assert ours.shape == theirs.shape and ours.shape[-1] == len(m.labels)
    assert np.abs(ours - theirs).max() <= 1e-4
    assert (ours.argmax(-1) == theirs.argmax(-1)).all()


def test_int8_classifier_bundle(checkpoints, tmp_path):
    ckpt = checkpoints["BertForTokenClassification"]
    fp32 = prepare_model(tmp_path / "fp32", from_dir=ckpt)
    int8 = prepare_model(tmp_path / "int8", from_dir=ckpt, precision="int8")
    assert int8.manifest.precision == "int8" and int8.manifest.labels == fp32.manifest.labels
    assert int8.manifest.files["model.onnx"] != fp32.manifest.files["model.onnx"]
    q, theirs, mask = _ours_and_theirs(int8, ckpt, TEXTS[:8])
    q, theirs = q[mask], theirs[mask]
    spread = theirs.max() - theirs.min()
    assert np.abs(q - theirs).max() < 0.1 * spread  # quantized, so close rather than equal
    assert (q.argmax(-1) == theirs.argmax(-1)).mean() > 0.9


def test_embeddings_manifest_keeps_its_fields(tmp_path):
    """Encoder bundles do not gain classifier fields: corpus-nlp versions before this one still read them."""
    from pipelines.model.checkpoint import write_random_checkpoint

    ckpt = write_random_checkpoint(tmp_path / "enc", wordpiece_tokenizer(), num_layers=1, hidden_size=32,
                                   num_heads=4, intermediate_size=64, max_position_embeddings=64)
    bundle = prepare_model(tmp_path / "bundle", from_dir=ckpt)
    raw = json.loads((bundle.path / "manifest.json").read_text())
    assert bundle.manifest.task == "embeddings"
    assert not {"task", "labels", "model_type"} & set(raw)


def test_cli_prepare_model_prints_task_and_labels(checkpoints, tmp_path):
    from pipelines.tools.cli import main

    out = tmp_path / "cli"
    result = CliRunner().invoke(main, ["prepare-model", "--from-dir",
                                       str(checkpoints["DistilBertForSequenceClassification"]), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "distilbert sequence-classification, 5 labels: 1 star, 2 stars" in result.output
    assert ModelBundle.load(out).manifest.labels == SENTIMENT_LABELS


# ------------------------------------------------------------------------------------ failures
def _edit_config(ckpt: Path, **changes) -> None:
    config = json.loads((ckpt / "config.json").read_text())
    for key, value in changes.items():
        if value is None:
            config.pop(key, None)
        else:
            config[key] = value
    (ckpt / "config.json").write_text(json.dumps(config))


def _drop_weight(ckpt: Path, name: str) -> None:
    weights = load_file(str(ckpt / "model.safetensors"))
    del weights[name]
    save_file(weights, str(ckpt / "model.safetensors"))


@pytest.mark.parametrize("architecture, breakage, needle", [
    ("BertForTokenClassification", lambda c: _edit_config(c, id2label=None, label2id=None), "has no id2label"),
    ("BertForTokenClassification", lambda c: _edit_config(c, id2label={"0": "O", "2": "B-PER"}, label2id=None),
     "without gaps"),
    ("BertForTokenClassification", lambda c: _edit_config(c, id2label={"0": "O", "one": "B-PER"}), "not a class id"),
    ("BertForTokenClassification", lambda c: _edit_config(c, id2label={"0": "O", "1": "O"}, label2id=None),
     "distinct non-empty label"),
    ("BertForSequenceClassification", lambda c: _edit_config(c, id2label={"0": "score"}, label2id=None),
     "regression model"),
    ("BertForTokenClassification", lambda c: _edit_config(c, num_labels=3), "num_labels=3"),
    ("BertForTokenClassification",
     lambda c: _edit_config(c, id2label={str(i): f"L{i}" for i in range(9)}, label2id=None),
     "do not belong together"),
    ("BertForTokenClassification", lambda c: _drop_weight(c, "classifier.weight"),
     "classification head is missing"),
    ("BertForSequenceClassification", lambda c: _drop_weight(c, "bert.pooler.dense.weight"),
     "'bert.pooler.dense.weight' of the classification head is missing"),
    ("DistilBertForSequenceClassification", lambda c: _drop_weight(c, "pre_classifier.bias"),
     "'pre_classifier.bias' of the classification head is missing"),
    ("DistilBertForTokenClassification", lambda c: _drop_weight(c, "distilbert.transformer.layer.1.ffn.lin2.weight"),
     "'encoder.layer.1.output.dense.weight' is missing"),
    ("BertForSequenceClassification", lambda c: _edit_config(c, problem_type="multi_label_classification"),
     "only single-label classification"),
    ("BertForTokenClassification", lambda c: _edit_config(c, model_type="distilbert"), "inconsistent"),
    ("DistilBertForTokenClassification", lambda c: _edit_config(c, architectures=["DistilBertForMaskedLM"]),
     "only DistilBERT classifiers"),
    ("DistilBertForTokenClassification", lambda c: _edit_config(c, dim=None), "lacks dim"),
    ("DistilBertForTokenClassification", lambda c: _edit_config(c, activation="relu"), "hidden_act='relu'"),
])
def test_prepare_classifier_errors(checkpoints, tmp_path, architecture, breakage, needle):
    ckpt = tmp_path / "ckpt"
    shutil.copytree(checkpoints[architecture], ckpt)
    breakage(ckpt)
    with pytest.raises(BundleError) as err:
        prepare_model(tmp_path / "out", from_dir=ckpt)
    assert needle in str(err.value), str(err.value)
    assert str(ckpt) in str(err.value)


@pytest.mark.parametrize("edit, needle", [
    (lambda raw: raw.update(labels=[]), "at least 2 distinct labels"),
    (lambda raw: raw.update(labels=["O", "O"]), "at least 2 distinct labels"),
    (lambda raw: raw.update(task="embeddings"), "has no labels"),
    (lambda raw: raw.update(task="translation"), "task"),
])
def test_bundle_load_refuses_inconsistent_classifier_manifest(checkpoints, tmp_path, edit, needle):
    bundle = prepare_model(tmp_path / "bundle", from_dir=checkpoints["BertForTokenClassification"])
    raw = json.loads((bundle.path / "manifest.json").read_text())
    edit(raw)
    (bundle.path / "manifest.json").write_text(json.dumps(raw))
    with pytest.raises(BundleError) as err:
        ModelBundle.load(bundle.path)
    assert needle in str(err.value) and "rebuild the bundle" in str(err.value)


def test_classifier_bundle_hashes_checked_at_load(checkpoints, tmp_path):
    bundle = prepare_model(tmp_path / "bundle", from_dir=checkpoints["DistilBertForTokenClassification"])
    data = bytearray((bundle.path / "model.onnx").read_bytes())
    data[-100] ^= 0xFF
    (bundle.path / "model.onnx").write_bytes(bytes(data))
    with pytest.raises(BundleError, match="does not match its manifest sha256"):
        ModelBundle.load(bundle.path)


def test_task_mismatch_is_one_clear_error(checkpoints, demo_bundle, tmp_path):
    classifier = prepare_model(tmp_path / "bundle", from_dir=checkpoints["BertForTokenClassification"])
    with pytest.raises(BundleError, match="is a token classifier .*not a BERT encoder .*use it with "
                                          "BertForTokenClassification"):
        classifier.require_task("embeddings", "BertEmbeddings")
    with pytest.raises(BundleError, match="is a BERT encoder .*not a sequence classifier"):
        demo_bundle.require_task("sequence-classification", "BertForSequenceClassification")


def test_export_for_sparknlp_writes_the_labels(checkpoints, tmp_path):
    """The folder Spark NLP's *ForTokenClassification.loadSavedModel reads: model.onnx (input_ids, attention_mask
    [, token_type_ids] -> logits), assets/vocab.txt, assets/labels.txt (line number = class id)."""
    import onnx

    from pipelines.model.sparknlp_io import export_for_sparknlp

    for architecture in ("BertForTokenClassification", "DistilBertForSequenceClassification"):
        bundle = prepare_model(tmp_path / architecture, from_dir=checkpoints[architecture])
        folder = export_for_sparknlp(bundle, tmp_path / f"{architecture}-sparknlp")
        labels = (folder / "assets" / "labels.txt").read_text(encoding="utf-8").splitlines()
        assert labels == ARCHITECTURES[architecture]
        vocab = (folder / "assets" / "vocab.txt").read_text(encoding="utf-8").splitlines()
        assert len(vocab) == bundle.manifest.vocab_size
        graph = onnx.load(str(folder / "model.onnx")).graph
        assert [o.name for o in graph.output] == ["logits"]
        expected = ["input_ids", "attention_mask"] + (["token_type_ids"] if architecture.startswith("Bert") else [])
        assert [i.name for i in graph.input] == expected
