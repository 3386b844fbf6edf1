"""The runtime choice: OpenVINO runs the same bundles as ONNX Runtime behind one interface; bf16 only where
the CPU has it (else one line, or fp32 with a warning and a counter); static int8 calibrated on text."""

import logging

import numpy as np
import pytest

from pipelines.config import ConfigError, parse_config
from pipelines.model.embed import TokenEmbedder
from pipelines.model.calibrate import read_calibration_texts, texts_fingerprint, token_cosines
from pipelines.model.demo import FALLBACK_TEXTS, SAMPLE_CORPUS_DIR
from pipelines.model.runtime import RuntimeSettingError, bf16_supported, check_runtime
from pipelines.annotate.native import EmbedStep

pytest.importorskip("openvino")

# One long sentence (several windows at max_sentence_length 32) and short ones (padded in the same batch).
SENTENCES = [t.split() for t in FALLBACK_TEXTS[:6]] + [" ".join(FALLBACK_TEXTS[:4]).split()]


def _vectors(bundle, **session):
    embedder = TokenEmbedder(bundle.open_session(threads=1, **session), bundle.load_tokenizer(),
                             max_sentence_length=32, batch_size=4)
    return [e.vectors for e in embedder.embed(SENTENCES)], embedder


def test_openvino_fp32_gives_onnx_runtime_fp32_vectors(demo_bundle):
    ort, _ = _vectors(demo_bundle)
    ov, embedder = _vectors(demo_bundle, runtime="openvino")
    assert (embedder.session.runtime, embedder.session.precision) == ("openvino", "fp32")
    assert [v.shape for v in ov] == [v.shape for v in ort]
    assert max(float(np.abs(a - b).max()) for a, b in zip(ort, ov)) < 1e-4


@pytest.mark.skipif(bf16_supported(), reason="this CPU has bf16: the unsupported path cannot happen here")
def test_bf16_without_cpu_support_is_one_line_or_fp32_with_a_warning(demo_bundle, caplog):
    with pytest.raises(RuntimeSettingError) as error:
        demo_bundle.open_session(runtime="openvino", precision="bf16")
    assert "\n" not in str(error.value) and "unsupported_precision: fp32" in str(error.value)
    with caplog.at_level(logging.WARNING):
        ov, embedder = _vectors(demo_bundle, runtime="openvino", precision="bf16", on_unsupported="fp32")
    assert "no bf16 arithmetic; running fp32" in caplog.text
    assert embedder.session.fell_back and embedder.session.precision == "fp32"
    assert embedder.stats["bf16_fallbacks"] == 1 and embedder.stats["bf16_pieces"] == 0


@pytest.mark.skipif(not bf16_supported(), reason="this CPU has no bf16 arithmetic")
def test_bf16_runs_and_agrees_where_the_cpu_has_it(demo_bundle):
    ort, _ = _vectors(demo_bundle)
    ov, embedder = _vectors(demo_bundle, runtime="openvino", precision="bf16")
    assert embedder.session.precision == "bf16" and embedder.stats["bf16_pieces"] > 0
    assert token_cosines(ort, ov).min() > 0.999


def test_the_workers_step_opens_the_configured_runtime(demo_bundle):
    step = EmbedStep("sentence", "token", "embeddings", str(demo_bundle.path), max_sentence_length=32,
                     intra_op_threads=1, runtime="openvino", precision="bf16", unsupported_precision="fp32")
    embedder = step.embedder()
    assert embedder.session.runtime == "openvino"
    assert step.stats()["bf16_fallbacks"] == (0 if bf16_supported() else 1)


def test_runtime_settings_are_validated():
    config = parse_config({"stages": {"embeddings": {"runtime": "openvino", "precision": "bf16",
                                                     "unsupported_precision": "fp32"}}})
    assert config.stages.embeddings.runtime == "openvino"
    with pytest.raises(ConfigError, match="precision: bf16 needs runtime: openvino"):
        parse_config({"stages": {"embeddings": {"precision": "bf16"}}})
    with pytest.raises(ConfigError, match=r"'stages\.embeddings\.runtime'"):
        parse_config({"stages": {"embeddings": {"runtime": "tensorrt"}}})
    with pytest.raises(RuntimeSettingError, match="this bundle is int8"):
        check_runtime("openvino", "bf16", "fp32", bundle_precision="int8")


# 60 texts of the sample corpus (Parquet), one per line: the test corpus is FALLBACK_TEXTS.
CALIBRATION_TEXTS = [" ".join(t.split()) for t in read_calibration_texts(SAMPLE_CORPUS_DIR, 60)]


def _calibration_file(tmp_path):
    path = tmp_path / "calibration.txt"
    path.write_text("\n".join(CALIBRATION_TEXTS) + "\n", encoding="utf-8")
    return path


def test_int8_static_bundle_records_its_calibration_and_agrees_on_other_text(demo_bundle, tmp_path):
    from pipelines.model.bundle import BundleError, ModelBundle
    from pipelines.model.prepare import prepare_model

    checkpoint = demo_bundle.path / "checkpoint"
    with pytest.raises(BundleError, match="needs --calibrate"):
        prepare_model(tmp_path / "no-corpus", from_dir=checkpoint, precision="int8-static")
    built = prepare_model(tmp_path / "static", from_dir=checkpoint, precision="int8-static",
                          calibrate=_calibration_file(tmp_path))
    bundle = ModelBundle.load(built.path)  # verifies every file's hash
    calibration = bundle.manifest.calibration
    assert bundle.manifest.precision == "int8-static" and calibration.sentences == 60
    assert calibration.fingerprint == texts_fingerprint(CALIBRATION_TEXTS)
    assert 0.99 <= calibration.min_cosine <= calibration.mean_cosine <= 1
    fp32, _ = _vectors(demo_bundle)
    for runtime in ("onnxruntime", "openvino"):
        static, embedder = _vectors(bundle, runtime=runtime)
        assert embedder.session.precision == "int8-static"
        assert token_cosines(fp32, static).min() > 0.99, runtime


def test_min_cosine_keeps_the_fastest_candidate_above_the_floor(demo_bundle, tmp_path):
    from pipelines.model.choose import prepare_fastest

    bundle = prepare_fastest(tmp_path / "fastest", 0.999, _calibration_file(tmp_path),
                             from_dir=demo_bundle.path / "checkpoint")
    selection = bundle.manifest.selection
    candidates = selection.candidates
    assert {(c["bundle"], c["runtime"]) for c in candidates} >= {
        ("fp32", "onnxruntime"), ("fp32", "openvino"), ("int8", "onnxruntime"), ("int8-static", "onnxruntime"),
        ("int8-static", "openvino")}
    fastest = max((c for c in candidates if c["min_cosine"] >= 0.999), key=lambda c: c["tokens_per_s"])
    assert (selection.runtime, selection.precision, bundle.manifest.precision) == (
        fastest["runtime"], fastest["precision"], fastest["bundle"])
    assert selection.min_cosine >= 0.999
