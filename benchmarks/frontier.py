"""Speed against accuracy for every runtime x precision this machine runs, on one corpus, in one run.

    python -m benchmarks.frontier [--sentences 1000] [--threads N] [--tiny] [--out benchmarks/results]

The corpus (benchmarks.corpus) and the random-weight bert-base-multilingual-cased-shaped model are the
throughput benchmark's (models/bench-mbert, its int8 twin); the int8-static bundle is calibrated once on
300 sentences of another corpus of the same generator (another seed: the measured text is not the
calibration text). The job's own worker code cuts the corpus into windows (benchmarks.throughput's
replay); every variant then embeds the same windows, sorted by length and batched by the job's planner,
through :class:`pipelines.model.embed.TokenEmbedder` on its session, in this process, ``--threads`` threads.

For each variant: tokens/s (tokenizer tokens over model seconds; the variants take the batches a few at
a time in turn, so that load from other processes on a shared machine hits all alike) and the per-token cosine to ONNX
Runtime fp32 (lowest, mean). Variants the machine cannot run are listed with the reason (bf16 without
AVX-512 BF16/AMX; OpenVINO on dynamic-int8 graphs). Prints a table, writes
<out>/<date>-frontier-<machine>.json with the CPU features seen.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import numpy as np

from benchmarks.throughput import ROOT, Monitor, Settings, _machine_slug, _versions, ensure_models, machine_info

CALIBRATION_SENTENCES = 300


@dataclass(frozen=True)
class Variant:
    name: str
    bundle: str  # fp32, int8, int8-static: which bundle
    runtime: str
    precision: str = "bundle"  # or bf16


VARIANTS = (
    Variant("ort-fp32", "fp32", "onnxruntime"),
    Variant("ort-int8-dynamic", "int8", "onnxruntime"),
    Variant("ort-int8-static", "int8-static", "onnxruntime"),
    Variant("ov-fp32", "fp32", "openvino"),
    Variant("ov-bf16", "fp32", "openvino", "bf16"),
    Variant("ov-int8-dynamic", "int8", "openvino"),
    Variant("ov-int8-static", "int8-static", "openvino"),
)
REFERENCE = "ort-fp32"


def ensure_static_bundle(s: Settings, fp32: Path) -> Path:
    """The int8-static twin of ``fp32``, calibrated on another seed's sentences (built once)."""
    from benchmarks.corpus import generate
    from pipelines.model.bundle import CHECKPOINT_DIR, MANIFEST, ModelBundle
    from pipelines.model.prepare import prepare_model

    out = fp32.parent / f"{fp32.name}-int8-static"
    if (out / MANIFEST).exists():  # the same weights (storage refs come from the weights' hash): keep it
        if ModelBundle.load(out, verify=False).manifest.storage_ref == ModelBundle.load(fp32).manifest.storage_ref:
            return out
        shutil.rmtree(out)
    calib = s.work / "calibration.txt"
    calib.parent.mkdir(parents=True, exist_ok=True)
    calib.write_text("\n".join(text for _, _, text in generate(CALIBRATION_SENTENCES, seed=1).docs) + "\n", encoding="utf-8")
    t = time.perf_counter()
    prepare_model(out, from_dir=fp32 / CHECKPOINT_DIR, precision="int8-static", calibrate=calib, kind="demo",
                  name=f"{fp32.name}-int8-static")
    print(f"built {out} in {time.perf_counter() - t:.0f}s", flush=True)
    return out


def open_variant(v: Variant, bundles: dict[str, Path], threads: int):
    """(TokenEmbedder, None) or (None, why this machine cannot run it)."""
    from pipelines.errors import CorpusNlpError
    from pipelines.model.bundle import ModelBundle

    mb = ModelBundle.load(bundles[v.bundle], verify=False)
    try:
        session = mb.open_session(runtime=v.runtime, precision=v.precision, threads=threads)
    except CorpusNlpError as e:
        if v.precision == "bf16":
            from pipelines.model.runtime import openvino_capabilities

            return None, f"unsupported on this CPU (OpenVINO offers {', '.join(openvino_capabilities())}: no BF16)"
        return None, str(e)[:300]
    return session, None


def interleaved_passes(sessions: dict, tokenizer, windows: list, s: Settings, rounds: int,
                       slice_batches: int = 4) -> tuple[dict, dict, dict]:
    """Every variant embeds the same length-sorted windows with the job's planner. The batches are taken a few
    at a time, each slice by every variant in turn (``rounds`` times, the fastest counts), so that load from
    other processes on a shared machine falls on all variants alike. Returns per variant: model seconds,
    vectors per window (in window order) and the embedder's counters."""
    from pipelines.model.embed import TokenEmbedder, plan_batches

    embedders = {name: TokenEmbedder(session, tokenizer, max_sentence_length=s.max_sentence_length,
                                     batch_size=s.batch_size, max_batch_pieces=s.max_batch_pieces)
                 for name, session in sessions.items()}
    for emb in embedders.values():
        emb._run(windows[: s.batch_size])  # warm-up: first-call allocations, OpenVINO's first shapes
    batches = plan_batches([len(w.ids) + 2 for w in windows], s.batch_size, s.max_batch_pieces)
    seconds = dict.fromkeys(embedders, 0.0)
    vectors: dict[str, list[np.ndarray]] = {name: [] for name in embedders}
    for first in range(0, len(batches), slice_batches):
        piece = batches[first:first + slice_batches]
        for name, emb in embedders.items():
            best = float("inf")
            for r in range(rounds):
                taken = 0.0
                for start, stop in piece:
                    batch = windows[start:stop]
                    t = time.perf_counter()
                    hidden = emb._run(batch)
                    taken += time.perf_counter() - t
                    if r == 0:
                        vectors[name] += [h[w.rows] for w, h in zip(batch, hidden)]
                best = min(best, taken)
            seconds[name] += best
        if first // slice_batches % 25 == 0:
            print(f"  {stop}/{len(windows)} windows", flush=True)
    return seconds, vectors, {name: dict(emb.stats) for name, emb in embedders.items()}


def storage_report(vectors: list[np.ndarray]) -> dict:
    """Bytes per token of the embedding column (the Arrow cell, and a Parquet file with snappy as the job
    writes) for each output.embedding_dtype, and the per-token cosine of the stored vectors to float32."""
    import tempfile

    import pyarrow as pa
    import pyarrow.parquet as pq

    from pipelines.annotate.tables import decode_float16, decode_int8, embedding_array

    rows = [v for w in vectors for v in w]
    out = {}
    for dtype in ("float32", "float16", "int8"):
        column = embedding_array(rows, dtype)
        with tempfile.TemporaryDirectory() as tmp:
            pq.write_table(pa.table({"embedding": column}), f"{tmp}/t.parquet", compression="snappy",
                           use_dictionary=False, write_statistics=False)
            parquet_bytes = os.path.getsize(f"{tmp}/t.parquet")
        decode = {"float32": lambda c: np.asarray(c.values, dtype=np.float32),
                  "float16": lambda c: decode_float16(c.as_py()), "int8": lambda c: decode_int8(c.as_py())}[dtype]
        stored = [decode(c) for c in column]
        cos = cosines(rows, stored)
        out[dtype] = {"cell_bytes_per_token": round(column.nbytes / len(rows), 1),
                      "parquet_bytes_per_token": round(parquet_bytes / len(rows), 1),
                      "min_cosine": round(float(cos.min()), 6), "mean_cosine": round(float(cos.mean()), 6)}
    return out


def cosines(reference: list[np.ndarray], other: list[np.ndarray]) -> np.ndarray:
    from pipelines.model.calibrate import token_cosines

    return token_cosines(reference, other)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--sentences", type=int, default=None, help="corpus size (default 1000; --tiny 40)")
    ap.add_argument("--threads", type=int, default=0, help="threads per session (default: all cores)")
    ap.add_argument("--rounds", type=int, default=1, help="timed passes of each slice per variant (fastest counts)")
    ap.add_argument("--tiny", action="store_true", help="2-layer demo-shaped model, 40 sentences (tests)")
    ap.add_argument("--variants", default="", help="comma-separated subset of the variants (default: all)")
    ap.add_argument("--out", default=str(ROOT / "benchmarks" / "results"))
    ap.add_argument("--work", default=str(ROOT / "out" / "frontier"))
    ap.add_argument("--models", default=str(ROOT / "models"))
    a = ap.parse_args(argv)

    from pipelines.config import EmbeddingsSettings
    from pipelines.model.bundle import ModelBundle
    from pipelines.model.runtime import cpu_report

    defaults = EmbeddingsSettings()
    s = Settings(sentences=a.sentences or (40 if a.tiny else 1000), tiny=a.tiny, work=Path(a.work).resolve(),
                 models=Path(a.models).resolve(), out=Path(a.out), batch_size=defaults.batch_size,
                 max_batch_pieces=defaults.max_batch_pieces, max_sentence_length=defaults.max_sentence_length)
    threads = a.threads or os.cpu_count() or 1
    machine, cpu = machine_info(), cpu_report()
    print(f"machine: {cpu['model']}, {machine['cores']} cores, load {machine['load_avg_at_start']}; "
          f"OpenVINO capabilities {cpu['openvino_capabilities'] or 'n/a'}", flush=True)

    from benchmarks.corpus import generate, write_parquet
    from benchmarks.throughput import replay_embed_step

    corpus_dir = write_parquet(generate(s.sentences), s.work / "corpus")
    fp32, int8 = ensure_models(s)
    bundles = {"fp32": fp32, "int8": int8, "int8-static": ensure_static_bundle(s, fp32)}
    replay = replay_embed_step(s, corpus_dir, fp32)
    windows = sorted(replay.windows, key=lambda w: len(w.ids))
    tokens = sum(len(w.rows) for w in windows)
    tokenizer = ModelBundle.load(fp32, verify=False).load_tokenizer()
    print(f"corpus: {replay.sentences} sentences, {tokens} tokens, {len(windows)} windows; {threads} threads",
          flush=True)

    chosen = [v for v in VARIANTS if not a.variants or v.name in a.variants.split(",") or v.name == REFERENCE]
    sessions, results = {}, {}
    for v in chosen:
        session, why = open_variant(v, bundles, threads)
        if why:
            results[v.name] = {"runtime": v.runtime, "bundle": v.bundle, "precision": v.precision, "ran": False,
                               "why_not": why}
            print(f"  {v.name}: not run ({why})", flush=True)
        else:
            sessions[v.name] = session
    with Monitor() as mon:
        best, vectors, stats = interleaved_passes(sessions, tokenizer, windows, s, a.rounds)
    reference = vectors[REFERENCE]
    for v in chosen:
        if v.name not in sessions:
            continue
        cos = cosines(reference, vectors[v.name])
        session = sessions[v.name]
        results[v.name] = {
            "runtime": v.runtime, "bundle": v.bundle, "precision": v.precision, "ran": True,
            "ran_as": f"{session.runtime} {session.precision}", "seconds": round(best[v.name], 3),
            "tokens_per_s": round(tokens / best[v.name], 1),
            "speedup_vs_ort_fp32": round(best[REFERENCE] / best[v.name], 3),
            "min_cosine": round(float(cos.min()), 6), "mean_cosine": round(float(cos.mean()), 6),
            "pieces": stats[v.name]["pieces"], "padded_pieces": stats[v.name]["padded_pieces"],
        }
    results = {v.name: results[v.name] for v in chosen}  # the table in VARIANTS' order
    static = ModelBundle.load(bundles["int8-static"], verify=False).manifest.calibration
    result = {
        "benchmark": "frontier",
        "machine": machine, "cpu": cpu, "versions": {**_versions(), "openvino": _openvino_version()},
        "settings": {"sentences": replay.sentences, "tokens": tokens, "windows": len(windows), "threads": threads,
                     "rounds": a.rounds, "batch_size": s.batch_size, "max_batch_pieces": s.max_batch_pieces,
                     "max_sentence_length": s.max_sentence_length,
                     "model": "bench-tiny (2 layers, 128 dims)" if s.tiny else
                     "bench-mbert (random weights, bert-base-multilingual-cased shape)",
                     "calibration": static.model_dump() if static else None},
        "variants": results,
        "storage": storage_report(reference),
        "monitor": mon.summary(),
    }
    s.out.mkdir(parents=True, exist_ok=True)
    subset = "subset-" if a.variants else ""
    path = s.out / f"{datetime.now():%Y-%m-%d}-frontier-{'tiny-' if s.tiny else ''}{subset}{_machine_slug(machine)}.json"
    path.write_text(json.dumps(result, indent=2, ensure_ascii=False) + "\n")
    print_table(result)
    print(f"wrote {path}")
    return result


def _openvino_version() -> str | None:
    try:
        import openvino

        return openvino.__version__
    except ImportError:
        return None


def print_table(r: dict) -> None:
    st, cpu = r["settings"], r["cpu"]
    flags = ", ".join(f for f, on in cpu["flags"].items() if on) or "none seen"
    print()
    print(f"{cpu['model']}: {flags}; {st['tokens']} tokens, {st['threads']} threads; {st['model']}")
    print(f"{'runtime x precision':<20}{'tokens/s':>10}{'vs ORT fp32':>13}{'lowest cos':>12}{'mean cos':>11}")
    for name, v in r["variants"].items():
        if v["ran"]:
            print(f"{name:<20}{v['tokens_per_s']:>10,.0f}{v['speedup_vs_ort_fp32']:>12.2f}x"
                  f"{v['min_cosine']:>12.5f}{v['mean_cosine']:>11.6f}")
        else:
            print(f"{name:<20}  not run: {v['why_not']}")
    print(f"{'embedding_dtype':<20}{'Parquet B/token':>16}{'lowest cos':>12}{'mean cos':>11}  (ORT fp32 vectors)")
    for dtype, d in r["storage"].items():
        print(f"{dtype:<20}{d['parquet_bytes_per_token']:>16,.0f}{d['min_cosine']:>12.5f}{d['mean_cosine']:>11.6f}")
    print(f"foreign CPU share during the timed passes: {r['monitor']['foreign_cpu_share']:.0%}")


if __name__ == "__main__":
    main()
