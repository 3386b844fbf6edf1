"""Static int8 calibrated on the user's own text (``prepare-model --precision int8-static --calibrate CORPUS``).

ONNX Runtime's static quantization in QDQ form: every MatMul with a constant weight gets int8 weights
(per output channel) and uint8 activations whose ranges come from running a few hundred of the user's
sentences through the fp32 graph. The graph is built from standard ONNX ops (no ONNX Runtime contrib
ops), so the QDQ bundle runs on both ONNX Runtime and OpenVINO (which turns QDQ pairs into its own int8
kernels). The calibration feeds are exactly what the job feeds: the same embedder cuts the sentences into
windows and padded, length-sorted batches (:class:`_RecordingSession` only records them).

The manifest records the calibration corpus, a fingerprint of its sentences and the agreement with fp32
(lowest and mean per-token cosine over those sentences).
"""

from __future__ import annotations

import hashlib
import logging
from pathlib import Path

import numpy as np

from pipelines.model.bundle import BundleError, Calibration
from pipelines.model.runtime import ModelSession

CALIBRATION_SENTENCES = 300
CALIBRATION_MAX_LENGTH = 128  # pieces per window while calibrating: the job's default max_sentence_length


def read_calibration_texts(path: str | Path, limit: int = CALIBRATION_SENTENCES, text_col: str = "text") -> list[str]:
    """Up to ``limit`` non-empty texts: the lines of a text file, or ``text_col`` of a Parquet file/directory."""
    p = Path(path)
    if not p.exists():
        raise BundleError(f"--calibrate {p} does not exist: give a Parquet corpus (file or directory) or a text "
                          "file with one sentence per line")
    if p.is_dir() or p.suffix == ".parquet":
        import pyarrow.dataset as ds

        try:
            dataset = ds.dataset(str(p), format="parquet", partitioning="hive")
            if text_col not in dataset.schema.names:
                raise BundleError(f"--calibrate {p} has no {text_col!r} column (it has {dataset.schema.names})")
            texts: list[str] = []
            for batch in dataset.to_batches(columns=[text_col]):
                texts += [t for t in batch.column(0).to_pylist() if isinstance(t, str) and t.strip()]
                if len(texts) >= limit:
                    break
        except BundleError:
            raise
        except Exception as e:
            raise BundleError(f"--calibrate {p} cannot be read as Parquet ({type(e).__name__}: {e})") from e
    else:
        lines = p.read_text(encoding="utf-8", errors="replace").splitlines()
        texts = [line for line in lines if line.strip()]
    if not texts:
        raise BundleError(f"--calibrate {p} holds no text: give a few hundred sentences of the corpus to annotate")
    return texts[:limit]


def texts_fingerprint(texts: list[str]) -> str:
    h = hashlib.sha256()
    for t in texts:
        h.update(t.encode("utf-8"))
        h.update(b"\0")
    return h.hexdigest()


class _RecordingSession(ModelSession):
    """Records the feeds the embedder would send; answers zeros of the right shape."""

    runtime, precision = "recording", "fp32"

    def __init__(self, dimension: int, input_names: list[str]):
        self.output_dim, self.input_names, self.feeds = dimension, frozenset(input_names), []

    def run(self, feeds: dict[str, np.ndarray]) -> np.ndarray:
        self.feeds.append({k: v for k, v in feeds.items() if k in self.input_names})
        return np.zeros((*feeds["input_ids"].shape, self.output_dim), dtype=np.float32)


def calibration_feeds(texts: list[str], tokenizer, input_names: list[str], batch_size: int = 8) -> list[dict]:
    """The batches the job would feed the model for ``texts`` (whitespace-split into words)."""
    from pipelines.model.embed import TokenEmbedder

    recorder = _RecordingSession(1, input_names)
    TokenEmbedder(recorder, tokenizer, max_sentence_length=CALIBRATION_MAX_LENGTH,
                  batch_size=batch_size).embed([t.split() for t in texts])
    return recorder.feeds


def _weight_matmuls(model) -> list[str]:
    """MatMul nodes whose second input is a constant weight (attention's activation x activation products
    stay in float: their ranges vary per sentence)."""
    constants = {i.name for i in model.graph.initializer}
    return [n.name for n in model.graph.node if n.op_type == "MatMul" and n.input[1] in constants]


def quantize_static_qdq(fp32_path: Path, out_path: Path, feeds: list[dict]) -> None:
    """QDQ static int8 of the MatMuls with weights: int8 per-channel weights, uint8 activations (MinMax)."""
    import onnx
    from onnxruntime.quantization import (CalibrationDataReader, CalibrationMethod, QuantFormat, QuantType,
                                          quantize_static)

    class Reader(CalibrationDataReader):
        def __init__(self):
            self._it = iter(feeds)

        def get_next(self):
            return next(self._it, None)

    root = logging.getLogger()
    level = root.level
    root.setLevel(logging.ERROR)  # the quantizer logs "consider pre-processing" advice meant for CNNs
    try:
        quantize_static(
            str(fp32_path), str(out_path), Reader(), quant_format=QuantFormat.QDQ, per_channel=True,
            # AVX2 without VNNI saturates u8 x s8 products at full range: 7-bit weights avoid it
            reduce_range=True, activation_type=QuantType.QUInt8, weight_type=QuantType.QInt8,
            nodes_to_quantize=_weight_matmuls(onnx.load(str(fp32_path), load_external_data=False)),
            calibrate_method=CalibrationMethod.MinMax,
        )
    finally:
        root.setLevel(level)


def token_cosines(reference: list[np.ndarray], other: list[np.ndarray]) -> np.ndarray:
    """Per-token cosine between two embeddings of the same sentences (all tokens, concatenated); an item
    may also be one vector."""
    a = np.concatenate([np.atleast_2d(r) for r in reference if len(r)])
    b = np.concatenate([np.atleast_2d(o) for o in other if len(o)])
    norms = np.linalg.norm(a, axis=1) * np.linalg.norm(b, axis=1)
    return (a * b).sum(axis=1) / np.maximum(norms, 1e-12)


def measure_agreement(reference_session, session, tokenizer, texts: list[str]) -> tuple[float, float]:
    """(lowest, mean) per-token cosine of ``session``'s vectors to ``reference_session``'s on ``texts``."""
    from pipelines.model.embed import TokenEmbedder

    words = [t.split() for t in texts]
    ref = TokenEmbedder(reference_session, tokenizer, max_sentence_length=CALIBRATION_MAX_LENGTH).embed(words)
    got = TokenEmbedder(session, tokenizer, max_sentence_length=CALIBRATION_MAX_LENGTH).embed(words)
    cos = token_cosines([e.vectors for e in ref], [e.vectors for e in got])
    return float(cos.min()), float(cos.mean())


def calibrate_int8_static(fp32_model, tokenizer, out_path: Path, tmp: Path, corpus: str | Path,
                          limit: int = CALIBRATION_SENTENCES) -> Calibration:
    """Quantize ``fp32_model`` (a standard-op ModelProto) into ``out_path``; returns the manifest record."""
    import onnxruntime as ort

    from .bundle import save_onnx

    texts = read_calibration_texts(corpus, limit)
    fp32 = tmp / "fp32.onnx"
    if len(save_onnx(fp32_model, fp32)) > 1:
        raise BundleError("models larger than 2 GB as an ONNX graph cannot be quantized: use precision fp32")
    names = [i.name for i in fp32_model.graph.input]
    try:
        quantize_static_qdq(fp32, out_path, calibration_feeds(texts, tokenizer, names))
    except Exception as e:
        raise BundleError(f"static int8 quantization failed ({type(e).__name__}: {e}): use precision fp32 or "
                          "int8") from e
    lowest, mean = measure_agreement(ort.InferenceSession(str(fp32), providers=["CPUExecutionProvider"]),
                                     ort.InferenceSession(str(out_path), providers=["CPUExecutionProvider"]),
                                     tokenizer, texts)
    return Calibration(corpus=str(Path(corpus).resolve()), fingerprint=texts_fingerprint(texts), sentences=len(texts),
                       min_cosine=round(lowest, 6), mean_cosine=round(mean, 6))
