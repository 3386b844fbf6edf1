"""The package as a user installs it: the wheel, away from the repository, fetches its Delta jars and
annotates with no config (the README's `pip install 'corpus-nlp[local]' && corpus-nlp jars fetch delta`).

The wheel is built from a copy of the sources and installed with ``--target`` into a temporary folder;
the command runs from another temporary folder with that folder first on PYTHONPATH (the dependencies
come from this virtualenv: in the Python 3.12/3.13 legs, `make test-py312`, one pip installed without
constraints.txt). Everything the package needs must come from the wheel: the sample corpus the default
config reads, the starter configs, the log4j file; the Delta jars come from its `jars fetch`.
"""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def build_wheel(tmp: Path) -> Path:
    source = tmp / "src"  # a copy, so that the build leaves nothing (build/, *.egg-info) in the checkout
    shutil.copytree(ROOT / "pipelines", source / "pipelines", ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, source / name)
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w",
                    str(tmp / "dist"), str(source)], check=True, capture_output=True)
    return next((tmp / "dist").glob("corpus_nlp-*.whl"))


def test_installed_wheel_fetches_delta_and_annotates_the_bundled_sample_without_a_config(tmp_path):
    from pipelines.cache import cache_dir
    from pipelines.spark.jars import library

    wheel = build_wheel(tmp_path)
    target = tmp_path / "site"
    subprocess.run([sys.executable, "-m", "pip", "install", "--no-deps", "-q", "--target", str(target), str(wheel)],
                   check=True, capture_output=True)
    user_cache, cwd = tmp_path / "cache", tmp_path / "work"
    cwd.mkdir()
    user_cache.mkdir()
    if (cache_dir() / "jvm").is_dir():  # reuse the JVM class archive: a new one costs ~15 s at exit
        (user_cache / "jvm").symlink_to(cache_dir() / "jvm")
    env = {**os.environ, "PYTHONPATH": str(target), "CORPUS_NLP_CACHE_DIR": str(user_cache),
           "PYSPARK_PYTHON": sys.executable}
    env.pop("CORPUS_NLP_JARS_DIR", None)  # the jars go where the user's `jars fetch` puts them

    where = subprocess.run([sys.executable, "-c", "import pipelines; print(pipelines.__file__)"], env=env, cwd=cwd,
                           capture_output=True, text=True, check=True).stdout.strip()
    assert Path(where).is_relative_to(target), where

    # the Delta build pinned for this PySpark's line, through Maven into the user's cache (the console script)
    fetch = subprocess.run([str(target / "bin" / "corpus-nlp"), "jars", "fetch", "delta"], env=env, cwd=cwd,
                           capture_output=True, text=True)
    assert fetch.returncode == 0, fetch.stderr[-3000:]
    delta = library("delta")
    assert fetch.stdout == f"{delta.coordinate}: {user_cache / 'jars' / delta.folder}\n"
    assert (user_cache / "jars" / delta.folder / f"{delta.artifact}-{delta.version}.jar").is_file()

    proc = subprocess.run([str(target / "bin" / "corpus-nlp"), "annotate", "--partition", "lang=de",
                           "--show", "0", "--log-format", "json"], env=env, cwd=cwd, capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr[-3000:]
    summary = json.loads(proc.stdout.strip().splitlines()[-1])
    assert summary["event"] == "summary" and summary["status"] == "committed" and summary["tokens"] > 0
    assert Path(summary["manifest"]).parts[0] == "lake"                       # the lake: ./lake
    assert (cwd / "lake" / "token_embeddings" / "_delta_log").is_dir()        # Delta, with the fetched jars
    manifest = json.loads((cwd / summary["manifest"]).read_text())
    assert Path(manifest["config"]["input"]["path"]).is_relative_to(target)  # the installed copy of the sample
    assert (user_cache / "models" / "demo-bert" / "manifest.json").is_file()  # the demo model: the user cache
    assert not (cwd / "models").exists()

    # JSON logs: the summary on stdout, notes on stderr; the model build timed apart from annotating
    notes = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(n["event"] == "note" and "building the demo model" in n["message"] for n in notes)
    timings = manifest["timings"]
    assert timings["model_build_s"] > 0 and timings["ner_training_s"] == 0
    # every second of the run in one phase: they add up to its duration (up to rounding)
    phases = ("model_build_s", "ner_training_s", "plan_s", "annotate_s", "write_s", "check_s", "other_s")
    assert abs(sum(timings[k] for k in phases) - manifest["duration_s"]) < 0.05
    assert all(timings[k] > 0 for k in ("plan_s", "annotate_s", "write_s", "check_s"))
    assert {k: summary[k] for k in phases} == {k: timings[k] for k in phases}
    assert summary["tokens"] == manifest["counts"]["tokens"]
    assert summary["tokens_per_s"] == round(summary["tokens"] / timings["annotate_s"], 1)

    init = subprocess.run([sys.executable, "-m", "pipelines.tools.cli", "init"], env=env, cwd=cwd, capture_output=True,
                          text=True)
    assert init.returncode == 0 and (cwd / "corpus-nlp.yaml").read_bytes() == (ROOT / "conf" / "local.yaml").read_bytes()
    assert (target / "pipelines" / "resources" / "conf" / "log4j2.properties").is_file()
