"""``prepare-model --min-cosine 0.999``: the fastest runtime x precision on this machine that keeps the
per-token cosine to fp32 above a floor.

Builds the fp32, int8 (dynamic) and, with ``--calibrate``, int8-static bundles of the checkpoint, embeds
the same texts (the calibration corpus, else the package's sample corpus) with each on ONNX Runtime and
OpenVINO (and OpenVINO bf16 where the CPU has it), and writes the winner as the bundle, its manifest's
``selection`` saying which runtime and precision to configure and what every candidate measured.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

from pipelines.model.bundle import BundleError, ModelBundle, Selection, write_bundle
from pipelines.model.calibrate import read_calibration_texts, token_cosines

MEASURE_TEXTS = 200


def _candidates(bundles: dict[str, ModelBundle]) -> list[tuple[str, str, str]]:
    """(bundle precision, runtime, config precision) of every combination worth timing here."""
    from pipelines.model.runtime import bf16_supported, openvino_capabilities

    runtimes = ["onnxruntime"] + (["openvino"] if openvino_capabilities() else [])
    out = [(p, r, "bundle") for p in bundles for r in runtimes if not (p == "int8" and r == "openvino")]
    if "openvino" in runtimes and bf16_supported():
        out.append(("fp32", "openvino", "bf16"))
    return out


def _embed(bundle: ModelBundle, runtime: str, precision: str, words: list[list[str]], threads: int | None):
    """(vectors per text, best model seconds of two passes) with the job's default batching."""
    from pipelines.config import EmbeddingsSettings
    from pipelines.model.embed import TokenEmbedder

    e = EmbeddingsSettings()
    embedder = TokenEmbedder(bundle.open_session(runtime=runtime, precision=precision, threads=threads),
                             bundle.load_tokenizer(), max_sentence_length=e.max_sentence_length,
                             batch_size=e.batch_size, max_batch_pieces=e.max_batch_pieces)
    embedder.embed(words[:8])  # warm-up
    best, vectors = float("inf"), None
    for _ in range(2):
        before = embedder.stats["model_seconds"]
        started = time.perf_counter()
        vectors = [x.vectors for x in embedder.embed(words)]
        best = min(best, embedder.stats["model_seconds"] - before or time.perf_counter() - started)
    return vectors, best


def measure_candidates(bundles: dict[str, ModelBundle], texts: list[str], threads: int | None = None) -> list[dict]:
    words = [t.split() for t in texts]
    tokens = sum(len(w) for w in words)
    reference, _ = _embed(bundles["fp32"], "onnxruntime", "bundle", words, threads)
    rows = []
    for bundle_precision, runtime, precision in _candidates(bundles):
        vectors, seconds = _embed(bundles[bundle_precision], runtime, precision, words, threads)
        cos = token_cosines(reference, vectors)
        rows.append({"bundle": bundle_precision, "runtime": runtime, "precision": precision,
                     "tokens_per_s": round(tokens / seconds, 1), "min_cosine": round(float(cos.min()), 6),
                     "mean_cosine": round(float(cos.mean()), 6)})
    return rows


def prepare_fastest(out_dir: str | Path, min_cosine: float, calibrate: str | Path | None = None,
                    **source: Any) -> ModelBundle:
    """Build every precision in a scratch directory, time them here, write the fastest above the floor."""
    from pipelines.model.demo import default_texts
    from pipelines.model.prepare import prepare_out_dir, prepare_model
    from pipelines.model.runtime import cpu_model

    if not 0 < min_cosine <= 1:
        raise BundleError(f"--min-cosine {min_cosine} must be in (0, 1], e.g. 0.999")
    out = Path(out_dir)
    prepare_out_dir(out)
    with tempfile.TemporaryDirectory(prefix="corpus-nlp-choose-") as tmp:
        precisions = ["fp32", "int8"] + (["int8-static"] if calibrate else [])
        bundles = {p: prepare_model(Path(tmp) / p, precision=p, calibrate=calibrate if p == "int8-static" else None,
                                    **source) for p in precisions}
        texts = read_calibration_texts(calibrate, MEASURE_TEXTS) if calibrate else default_texts()[:MEASURE_TEXTS]
        rows = measure_candidates(bundles, texts)
        passing = [r for r in rows if r["min_cosine"] >= min_cosine]
        if not passing:
            raise BundleError(f"no runtime x precision keeps the per-token cosine to fp32 >= {min_cosine} (lowest "
                              f"seen: {max(r['min_cosine'] for r in rows):.5f}): lower --min-cosine")
        best = max(passing, key=lambda r: r["tokens_per_s"])
        winner = bundles[best["bundle"]]
        fields = winner.manifest.model_dump(exclude={"files", "created_at"})
        fields["selection"] = Selection(
            runtime=best["runtime"], precision=best["precision"], min_cosine_floor=min_cosine,
            tokens_per_s=best["tokens_per_s"], min_cosine=best["min_cosine"], mean_cosine=best["mean_cosine"],
            cpu=cpu_model(), texts=len(texts), candidates=rows)
        return write_bundle(out, winner.onnx_path, winner.tokenizer_path, **fields)
