"""Encoder throughput benchmark for a model bundle (or an .onnx file).

    python -m pipelines.model.bench BUNDLE_OR_ONNX [--threads 2] [--shapes 8x64,32x128] [--seconds 10]

Prints real tokens per second (batch * seq, all positions real) per batch shape.
Never imports torch.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def make_session(onnx_path: str | Path, threads: int):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    so.inter_op_num_threads = 1
    so.intra_op_num_threads = threads
    return ort.InferenceSession(str(onnx_path), sess_options=so, providers=["CPUExecutionProvider"])


def feeds(batch: int, seq: int, vocab: int, seed: int = 0, pad_to: int | None = None) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    total = pad_to or seq
    ids = np.zeros((batch, total), dtype=np.int64)
    ids[:, :seq] = rng.integers(5, vocab, size=(batch, seq))
    ids[:, 0] = 2
    mask = np.zeros_like(ids)
    mask[:, :seq] = 1
    return {"input_ids": ids, "attention_mask": mask, "token_type_ids": np.zeros_like(ids)}


def tokens_per_second(sess, batch: int, seq: int, vocab: int, seconds: float = 10.0,
                      min_runs: int = 3) -> tuple[float, float]:
    """(tokens/s, seconds per run), after one warm-up run."""
    f = feeds(batch, seq, vocab)
    sess.run(None, f)
    runs, t0 = 0, time.perf_counter()
    while True:
        sess.run(None, f)
        runs += 1
        el = time.perf_counter() - t0
        if runs >= min_runs and el >= seconds:
            break
    return batch * seq * runs / el, el / runs


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("model", help="bundle directory or .onnx file")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="1x128,8x64,16x128,4x256")
    ap.add_argument("--seconds", type=float, default=10.0)
    ap.add_argument("--vocab", type=int, default=None)
    a = ap.parse_args(argv)
    p = Path(a.model)
    vocab = a.vocab
    if p.is_dir():
        from .bundle import ModelBundle

        b = ModelBundle.load(p, verify=False)
        onnx_path, vocab = b.onnx_path, vocab or b.manifest.vocab_size
    else:
        onnx_path = p
        vocab = vocab or 1000
    t = time.perf_counter()
    sess = make_session(onnx_path, a.threads)
    print(f"{onnx_path}: session created in {time.perf_counter() - t:.1f}s, threads={a.threads}")
    for shape in a.shapes.split(","):
        bsz, seq = (int(x) for x in shape.lower().split("x"))
        tps, per = tokens_per_second(sess, bsz, seq, vocab, a.seconds)
        print(f"  batch {bsz:3d} x seq {seq:4d}: {tps:8.1f} tokens/s  ({per * 1000:.1f} ms/batch)")


if __name__ == "__main__":
    main()
