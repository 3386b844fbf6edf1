"""The throughput benchmark end to end at a tiny size: every phase runs and the JSON has sane values.

Runs ``python -m benchmarks.throughput --tiny`` in a subprocess (its own Spark session), with a 2-layer
demo-shaped model cached under the repository's models/ directory (built on first use).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = [pytest.mark.slow, pytest.mark.torch, pytest.mark.sparknlp]

RATIOS = ("pipeline_vs_raw", "pipeline_vs_hf", "int8_vs_hf", "int8_vs_fp32", "pipeline_vs_hf_sorted",
          "int8_vs_hf_sorted", "scaling_2x", "native_vs_sparknlp", "native_vs_sparknlp_time")
PHASES = ("raw_fp32", "pipeline_fp32", "sparknlp_fp32", "pipeline_int8", "pipeline_int8_2x", "hf_fp32",
          "hf_fp32_sorted")


@pytest.fixture(scope="module")
def result(tmp_path_factory):
    pytest.importorskip("torch")
    pytest.importorskip("transformers")
    from pipelines.spark import jars

    tmp = tmp_path_factory.mktemp("bench")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")]),
           "CORPUS_NLP_CACHE_DIR": str(tmp / "cache"),  # its JVM class archive and digests stay in tmp
           "CORPUS_NLP_JARS_DIR": str(jars.cache_root())}  # the Spark NLP jars stay where `make jars` put them
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.throughput", "--tiny", "--sentences", "50", "--out", str(tmp / "results"),
         "--work", str(tmp / "work")],
        cwd=ROOT, env=env, capture_output=True, text=True,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    files = list((tmp / "results").glob("*.json"))
    assert len(files) == 1, files
    return json.loads(files[0].read_text()), proc.stdout


def test_json_has_every_key_with_sane_values(result):
    r, _ = result
    for key in RATIOS:
        assert isinstance(r[key], float) and math.isfinite(r[key]) and r[key] > 0, (key, r[key])
    assert 0 < r["int8_cosine"] <= 1.0 + 1e-6
    assert r["int8_cosine"] > 0.9  # int8 of the same weights: close, not random
    assert r["int8_cosine_tokens"] == r["settings"]["tokens"]
    assert 0 <= r["padding_ratio"] < 5 and 0 <= r["padding_ratio_global_sort"] < 5
    # the planner's objective over the whole corpus sorted at once is the lowest the job's chunks could reach
    assert 0 < r["planner_cost_global_sort"] <= r["planner_cost"]
    assert r["peak_rss_mb"] > 20 and r["peak_rss_mb"] < 8192
    for phase in PHASES:
        assert r["tokens_per_s"][phase] > 0, phase
        assert r["seconds"][phase] > 0, phase
        assert 0 <= r["contention"][phase] <= 1, phase
    for phase in ("pipeline_fp32", "pipeline_int8", "pipeline_int8_2x", "hf_fp32", "hf_fp32_sorted"):
        assert r["peak_rss_mb_by_run"][phase] > 20, phase
    for engine in ("native", "sparknlp"):  # the model runs in the JVM for sparknlp, in Python workers for native
        memory = r["peak_memory_mb_by_engine"][engine]
        assert 100 < memory["peak_jvm_rss_mb"] <= memory["peak_tree_rss_mb"] < 16384, (engine, memory)
    assert r["machine"]["cores"] >= 1 and r["machine"]["cpu_model"]
    assert set(r["targets"]) >= {"pipeline_vs_raw", "pipeline_vs_hf", "int8_vs_hf", "int8_cosine", "padding_ratio",
                                 "peak_rss_mb", "scaling_2x"}


def test_every_phase_embeds_the_whole_corpus(result):
    r, _ = result
    st, ph = r["settings"], r["phases"]
    assert st["sentences"] >= 40 and st["tokens"] > st["sentences"]
    assert ph["pipeline_fp32"]["tokens"] == ph["pipeline_int8"]["tokens"] == st["tokens"]
    assert ph["pipeline_int8_2x"]["tokens"] > 1.8 * st["tokens"]
    # Spark NLP's Tokenizer keeps a CJK run as one token (and may drop some): fewer tokens, never more
    assert 0.3 * st["tokens"] < ph["sparknlp_fp32"]["tokens"] < st["tokens"]
    # the baseline's words are BERT's (punctuation split, CJK characters), ours are the Tokenizer's: close
    assert 0.5 * st["tokens"] < ph["hf_fp32"]["hf_words"] < 2 * st["tokens"]
    assert ph["hf_fp32"]["hf_words"] == ph["hf_fp32_sorted"]["hf_words"]
    assert r["embedder_stats"]["pieces"] >= st["tokens"]


def test_table_is_printed(result):
    _, stdout = result
    assert "tokens/s" in stdout and "pipeline_vs_raw" in stdout and "native_vs_sparknlp" in stdout and "wrote " in stdout
