"""The runtime x precision frontier benchmark at a tiny size: every variant runs or says why not, and the
agreement numbers are those of the runtimes (OpenVINO fp32 = ONNX Runtime fp32; int8 close)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow


def test_tiny_frontier_covers_every_variant(tmp_path):
    pytest.importorskip("openvino")
    from benchmarks.frontier import VARIANTS
    from pipelines.model.runtime import bf16_supported

    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    proc = subprocess.run(
        [sys.executable, "-m", "benchmarks.frontier", "--tiny", "--sentences", "20", "--rounds", "1",
         "--out", str(tmp_path / "results"), "--work", str(tmp_path / "work"), "--models", str(tmp_path / "models")],
        cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    (path,) = (tmp_path / "results").glob("*-frontier-tiny-*.json")
    r = json.loads(path.read_text())
    variants = r["variants"]
    assert list(variants) == [v.name for v in VARIANTS]
    assert "avx2" in r["cpu"]["flags"] and r["settings"]["tokens"] > 0
    assert variants["ort-fp32"]["min_cosine"] == pytest.approx(1, abs=1e-6)
    assert variants["ov-fp32"]["ran_as"] == "openvino fp32" and variants["ov-fp32"]["min_cosine"] > 0.9999
    for name in ("ort-int8-dynamic", "ort-int8-static", "ov-int8-static"):
        assert variants[name]["ran"] and 0.99 < variants[name]["min_cosine"] <= variants[name]["mean_cosine"], name
    bf16 = variants["ov-bf16"]
    if bf16_supported():
        assert bf16["ran_as"] == "openvino bf16" and bf16["min_cosine"] > 0.999
    else:
        assert not bf16["ran"] and bf16["why_not"].startswith("unsupported on this CPU")
    assert all(v["ran"] or v["why_not"] for v in variants.values())
    assert r["settings"]["calibration"]["sentences"] > 0
