"""Encoder throughput benchmark for a model bundle (or an .onnx file).

    python -m pipelines.model.bench BUNDLE_OR_ONNX [...] [--threads 2] [--shapes 8x64,4x128] [--reps 8]

Prints tokens per second (batch * seq, all positions real, no padding) per batch
shape, best and median over ``--reps`` runs; several models are timed interleaved.
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


def time_runs(sessions: dict[str, object], batch: int, seq: int, vocab: int, reps: int) -> dict[str, list[float]]:
    """Seconds per run for each session, runs interleaved (so background load hits all alike)."""
    f = feeds(batch, seq, vocab)
    for sess in sessions.values():
        sess.run(None, f)  # warm-up
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(reps):
        for k, sess in sessions.items():
            t = time.perf_counter()
            sess.run(None, f)
            times[k].append(time.perf_counter() - t)
    return times


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("models", nargs="+", help="bundle directories or .onnx files (compared interleaved)")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shapes", default="1x32,1x128,8x64,4x128,2x256")
    ap.add_argument("--reps", type=int, default=8)
    ap.add_argument("--vocab", type=int, default=None)
    a = ap.parse_args(argv)
    sessions, vocab = {}, a.vocab
    for m in a.models:
        p = Path(m)
        if p.is_dir():
            from .bundle import ModelBundle

            b = ModelBundle.load(p, verify=False)
            onnx_path = b.onnx_path
            vocab = vocab or b.manifest.vocab_size
            label = f"{p.name}[{b.manifest.precision}]"
        else:
            onnx_path, label = p, p.name
        t = time.perf_counter()
        sessions[label] = make_session(onnx_path, a.threads)
        print(f"{label}: session created in {time.perf_counter() - t:.1f}s (threads={a.threads})")
    vocab = vocab or 1000
    for shape in a.shapes.split(","):
        bsz, seq = (int(x) for x in shape.lower().split("x"))
        times = time_runs(sessions, bsz, seq, vocab, a.reps)
        for label, ts in times.items():
            best, med = min(ts), float(np.median(ts))
            print(f"  {label:28s} {bsz:3d}x{seq:<4d} best {bsz * seq / best:7.1f} tok/s "
                  f"({best * 1000:7.1f} ms)  median {bsz * seq / med:7.1f} tok/s")


if __name__ == "__main__":
    main()
