"""The user's first hour: `make demo` needs no torch and no Spark NLP jars, and `corpus-nlp report` works after it.

- The demo NER model (pipelines/ner/demo.py -> pipelines/ner/linear.py) is built in subprocesses where
  ``import torch`` fails (a ``torch`` module first on PYTHONPATH that records the attempt and raises
  ImportError, whether or not this virtualenv has torch): nothing on the way even tries to import it. Two
  builds give the same bytes; the model finds entities, and its metrics.json is what the inference path
  measures.
- The demo job itself (`corpus-nlp annotate --config conf/local.yaml`, what `make demo` runs) trains that
  model on first use, annotates and writes entities with torch blocked in the driver and the Python workers,
  and `corpus-nlp report` then writes its page.
- `make demo` installs no torch extra, but the report one, and fetches the Delta jars only: the command it
  runs puts nothing else into a fresh CORPUS_NLP_CACHE_DIR; `make test` still fetches every pinned library.
"""

import json
import os
import re
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from pipelines.spark import jars
from pipelines.ner.model import NerModel

ROOT = Path(__file__).resolve().parents[2]
BLOCKER = '''import os
with open(os.environ["TORCH_IMPORT_MARKER"], "a") as f:
    f.write("import torch attempted\\n")
raise ImportError("torch is blocked in this test: the demo must not need it")
'''


def no_torch_env(tmp_path: Path, **extra) -> tuple[dict, Path]:
    """An environment whose Python cannot import torch (and notes every attempt in the returned marker file)."""
    shim = tmp_path / "no-torch"
    shim.mkdir(exist_ok=True)
    (shim / "torch.py").write_text(BLOCKER)
    marker = tmp_path / "torch-import-attempts.txt"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(shim), str(ROOT)]), "TORCH_IMPORT_MARKER": str(marker),
           "PYSPARK_PYTHON": sys.executable, **extra}
    return env, marker


BUILD = """
import json, sys
from pipelines.ner.demo import build_demo_ner
result = build_demo_ner(sys.argv[1], sys.argv[2], log=None)
print(json.dumps({"f1": result.f1, "modules": sorted(m for m in sys.modules
                                                    if m.split(".")[0] in ("torch", "transformers"))}))
"""


@pytest.fixture(scope="module")
def demo_ners(demo_bundle, tmp_path_factory):
    """The demo NER model built twice, each time in a fresh Python where torch cannot be imported."""
    tmp = tmp_path_factory.mktemp("demo-ner")
    env, marker = no_torch_env(tmp)
    # the blocker works: torch cannot be imported there, and the attempt is recorded
    probe = subprocess.run([sys.executable, "-c", "import torch"], env=env, capture_output=True, text=True)
    assert probe.returncode != 0 and "torch is blocked" in probe.stderr
    assert marker.read_text() == "import torch attempted\n"
    marker.unlink()
    builds = []
    for name in ("first", "second"):
        proc = subprocess.run([sys.executable, "-c", BUILD, str(tmp / name), str(demo_bundle.path)], env=env,
                              capture_output=True, text=True, cwd=tmp)
        assert proc.returncode == 0, proc.stderr[-3000:]
        builds.append((tmp / name, json.loads(proc.stdout.strip().splitlines()[-1])))
    return builds, marker


def test_demo_ner_builds_without_torch(demo_ners):
    builds, marker = demo_ners
    assert not marker.exists(), marker.read_text()  # nothing even tried to import torch
    for path, out in builds:
        assert out["modules"] == []
        assert sorted(p.name for p in path.iterdir()) == ["metrics.json", "ner.json", "tagger.onnx"]


def test_demo_ner_is_deterministic(demo_ners):
    (a, _), (b, _) = demo_ners[0]
    for name in ("tagger.onnx", "metrics.json"):
        assert (a / name).read_bytes() == (b / name).read_bytes(), name
    first, second = (json.loads((p / "ner.json").read_text()) for p in (a, b))
    for m in (first, second):  # the only differences allowed: when it was built, and how long it took
        m.pop("created_at")
        m["training"].pop("seconds")
    assert first == second


def test_demo_ner_finds_entities_and_its_metrics_are_the_inference_paths(demo_ners, demo_bundle):
    from pipelines.model.embed import TokenEmbedder
    from pipelines.ner.conll import read_conll
    from pipelines.ner.metrics import entity_scores
    from pipelines.ner.train import retokenize
    from pipelines.resources import ner_sample_dir
    from pipelines.text.tokens import TokenizerRules

    (path, out), _ = demo_ners[0]
    manifest = json.loads((path / "ner.json").read_text())
    metrics = json.loads((path / "metrics.json").read_text())
    assert manifest["storage_ref"] == demo_bundle.manifest.storage_ref
    assert manifest["hyperparameters"]["architecture"] == "linear-crf"
    assert manifest["tags"] == ["O", "B-LOC", "I-LOC", "B-ORG", "I-ORG", "B-PER", "I-PER"]
    assert metrics["evaluated_with"].startswith("tagger.onnx") and metrics["dev"]["micro"]["f1"] == out["f1"]
    assert metrics["dev"]["micro"]["support"] > 500

    # the dev sentences (half their names never seen in training), embedded and tagged again here
    rules = TokenizerRules()
    dev = [retokenize(s, rules) for s in read_conll(ner_sample_dir() / "dev.conll").sentences]
    embedder = TokenEmbedder(demo_bundle.create_session(intra_op_threads=1), demo_bundle.load_tokenizer())
    vectors = [e.vectors for e in embedder.embed([list(s.tokens) for s in dev])]
    model = NerModel.load(path)
    predicted = model.predict([(list(s.tokens), v) for s, v in zip(dev, vectors)])
    scores = entity_scores([list(s.tags) for s in dev], [p.tags for p in predicted])
    assert abs(scores["micro"]["f1"] - metrics["dev"]["micro"]["f1"]) <= 0.005, (scores["micro"], metrics["dev"])
    assert scores["micro"]["f1"] >= 0.8
    assert {k: v["f1"] >= 0.7 for k, v in scores["labels"].items()} == {"LOC": True, "ORG": True, "PER": True}

    # the ONNX graph gives each token the same scores whatever the batch (padding tokens and characters)
    few = [(list(s.tokens), v) for s, v in list(zip(dev, vectors))[:12]]
    for one, together in zip(model.predict(few, batch_size=1), model.predict(few, batch_size=12)):
        assert one.tags == together.tags
        np.testing.assert_allclose(one.scores, together.scores, atol=1e-5)


def test_the_demo_job_trains_its_ner_model_without_torch_and_report_works_after_it(tmp_path):
    from pipelines.cache import cache_dir

    user_cache, cwd = tmp_path / "cache", tmp_path / "work"
    user_cache.mkdir()
    cwd.mkdir()
    if (cache_dir() / "jvm").is_dir():  # reuse the JVM class archive: a new one costs ~15 s at exit
        (user_cache / "jvm").symlink_to(cache_dir() / "jvm")
    # the jars this checkout already fetched (`make jars`); the fetch itself is the test below
    env, marker = no_torch_env(tmp_path, CORPUS_NLP_CACHE_DIR=str(user_cache),
                               CORPUS_NLP_JARS_DIR=str(jars.cache_root()))
    proc = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "annotate", "--config", str(ROOT / "conf" / "local.yaml"),
                           "--partition", "lang=de", "--show", "0", "--log-format", "json"],
                          env=env, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert not marker.exists(), marker.read_text()
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["status"] == "committed" and summary["entities"] > 0, summary
    manifest = json.loads((cwd / summary["manifest"]).read_text())
    assert manifest["timings"]["ner_training_s"] > 0  # trained by this run, on first use
    ner_dir = user_cache / "models" / "demo-ner"
    assert json.loads((ner_dir / "ner.json").read_text())["hyperparameters"]["architecture"] == "linear-crf"
    assert manifest["ner"]["storage_ref"] == json.loads((ner_dir / "ner.json").read_text())["storage_ref"]

    report = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "report", "lake"], env=env, cwd=cwd,
                            capture_output=True, text=True)
    assert report.returncode == 0, report.stderr[-3000:]
    page = (cwd / "lake" / "_reports" / "report.html").read_text(encoding="utf-8")
    assert "<svg" in page or "data:image/svg+xml" in page
    assert not marker.exists(), marker.read_text()


def make_dry_run(target: str, tmp_path: Path) -> list[str]:
    """The commands `make TARGET` runs from a checkout without a virtualenv (all of them: nothing is built)."""
    proc = subprocess.run(["make", "-n", target, f"VENV={tmp_path / 'venv'}"], cwd=ROOT, capture_output=True,
                          text=True, check=True)
    return proc.stdout.splitlines()


def test_make_demo_installs_no_torch_and_fetches_the_delta_jars_only(tmp_path):
    demo = make_dry_run("demo", tmp_path)
    installs = [re.search(r'-e "\.\[([^\]]*)\]"', line) for line in demo if "pip install" in line and "-e" in line]
    assert [set(m.group(1).split(",")) for m in installs if m] == [{"local", "report"}]
    fetches = [shlex.split(line) for line in demo if "pipelines.spark.jars" in line]
    assert [f[f.index("pipelines.spark.jars") + 1:] for f in fetches] == [["fetch", "delta"]]
    # `make test` installs torch and fetches everything the Spark line pins (no names)
    test = make_dry_run("test", tmp_path)
    assert any("torch" in line for line in test if "pip install" in line)
    assert [shlex.split(line)[-1] for line in test if "pipelines.spark.jars" in line] == ["fetch"]

    # what that command puts into a fresh CORPUS_NLP_CACHE_DIR (it moves the jars too): the Delta build only
    cache = tmp_path / "cache"
    env = {**os.environ, "CORPUS_NLP_CACHE_DIR": str(cache), "PYTHONPATH": str(ROOT)}
    env.pop("CORPUS_NLP_JARS_DIR", None)
    command = [sys.executable, *fetches[0][1:]]
    proc = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    delta = jars.library("delta")
    assert sorted(p.name for p in (cache / "jars").iterdir()) == [delta.folder]
    assert not any("spark-nlp" in p.name for p in (cache / "jars" / delta.folder).iterdir())
    size = sum(p.stat().st_size for p in (cache / "jars").rglob("*.jar"))
    assert size < 20 * 2**20, size


def test_train_ner_without_torch_says_in_one_line_which_extra_to_install(tmp_path):
    env, marker = no_torch_env(tmp_path)
    proc = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "train-ner", "--out", str(tmp_path / "ner")],
                          env=env, cwd=tmp_path, capture_output=True, text=True)
    assert proc.returncode != 0
    assert "Traceback" not in proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "pip install 'corpus-nlp[torch]'" in lines[0], proc.stderr
    assert marker.exists()  # it did ask for torch, and nothing else ran before (no output directory)
    assert not (tmp_path / "ner").exists()
