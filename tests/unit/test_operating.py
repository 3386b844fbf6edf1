"""Operating the package: defaults from the installed package, `init`, the starter configs, train-ner
without torch, JSON logs, the input checks that run before Spark, the dry run's reasons."""

import json
import re
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from markdown_doc import PAGES

from pipelines import log
from pipelines.tools.cli import main
from pipelines.config import load_config
from pipelines.errors import JobError
from pipelines.ner.config import load_train_ner_config
from pipelines.resources import resources_dir
from pipelines.store.state import Partition, reasons

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def user_cache(tmp_path, monkeypatch):
    cache = tmp_path / "cache"
    monkeypatch.setenv("CORPUS_NLP_CACHE_DIR", str(cache))
    return cache


def test_defaults_come_from_the_installed_package_and_the_user_cache(user_cache, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # nothing may depend on running from the repository
    config = load_config(None)
    assert Path(config.input.path) == resources_dir() / "sample_corpus"
    assert any(Path(config.input.path).rglob("*.parquet"))
    assert config.model.bundle == str(user_cache / "models" / "demo-bert")
    assert config.ner.model is None  # annotating without a config needs no torch
    ner = load_train_ner_config(None)
    assert Path(ner.train).is_file() and Path(ner.dev).is_file()
    assert (ner.out, ner.model.bundle) == (str(user_cache / "models" / "demo-ner"), config.model.bundle)
    assert load_config(None, {"model.bundle": "./demo"}).model.bundle == "./demo"  # a real folder named demo


def test_every_config_the_documentation_names_ships_with_the_package():
    named = {name for page in PAGES for name in re.findall(r"conf/(\w+\.yaml)", page.read_text(encoding="utf-8"))}
    assert {"local.yaml", "train_ner.yaml"} <= named
    for name in named:
        shipped = resources_dir() / "conf" / name
        assert shipped.read_bytes() == (ROOT / "conf" / name).read_bytes(), name
    package_data = (ROOT / "pyproject.toml").read_text()
    assert '"conf/*.yaml"' in package_data and '"conf/*.properties"' in package_data


def test_init_writes_starter_configs_that_load(user_cache, tmp_path):
    runner = CliRunner()
    target = tmp_path / "job.yaml"
    result = runner.invoke(main, ["init", str(target)])
    assert result.exit_code == 0, result.output
    text = target.read_text()
    assert "# model:\n#   bundle: models/mbert" in text  # the real model, commented out
    config = load_config(target)
    assert config.ner.model == str(user_cache / "models" / "demo-ner") and config.ner.build_demo_if_missing
    assert Path(config.input.path) == resources_dir() / "sample_corpus"

    again = runner.invoke(main, ["init", str(target)])
    assert again.exit_code != 0 and "--force" in again.output
    assert runner.invoke(main, ["init", str(target), "--force"]).exit_code == 0

    ner_target = tmp_path / "conf"
    ner_target.mkdir()
    assert runner.invoke(main, ["init", "--train-ner", str(ner_target)]).exit_code == 0
    assert load_train_ner_config(ner_target / "train_ner.yaml").out == str(user_cache / "models" / "demo-ner")


def test_train_ner_without_torch_says_what_to_install_in_one_line(tmp_path):
    code = ("import sys; sys.modules['torch'] = None\n"  # `import torch` now raises ImportError
            "from pipelines.tools.cli import main; main(['train-ner'])")
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    lines = (proc.stdout + proc.stderr).strip().splitlines()
    assert proc.returncode == 2
    assert len(lines) == 1, lines
    assert "pip install 'corpus-nlp[torch]'" in lines[0]
    assert not (tmp_path / ".cache").exists()  # it stopped before building any model


def test_json_log_lines_and_quiet(capsys):
    try:
        log.configure(format="json")
        log.note("building the demo model")
        log.result("summary", "ignored in json", tokens=3, run_id="r1")
        out, err = capsys.readouterr()
        assert json.loads(err)["event"] == "note" and json.loads(err)["message"] == "building the demo model"
        assert {k: v for k, v in json.loads(out).items() if k != "time"} == {"event": "summary", "tokens": 3,
                                                                               "run_id": "r1"}
        log.configure(quiet=True)
        log.note("dropped")
        log.result("summary", "kept")
        out, err = capsys.readouterr()
        assert (out, err) == ("kept\n", "")
    finally:
        log.configure()


def _parquet(path: Path, **columns):
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(columns), path)


# Run in a fresh interpreter: whether a JVM was started can only be seen where none ran before (the
# test session's own Spark fixture may already be up in this process).
_CHECKS_BEFORE_SPARK = """
import sys
from pyspark import SparkContext
from pipelines.config import load_config
from pipelines.errors import JobError
from pipelines.run.job import run_annotate

for path in sys.argv[2:]:
    try:
        run_annotate(load_config(None, {"input.path": path, "output.path": sys.argv[1]}))
    except JobError as e:
        print(str(e))
print("jvm started" if SparkContext._active_spark_context is not None else "no jvm")
"""


def test_input_is_checked_before_spark_starts(tmp_path):
    (tmp_path / "empty" / "_temporary").mkdir(parents=True)
    _parquet(tmp_path / "empty" / "_temporary" / "part-0.parquet", doc_id=["a"], text=["x"])  # Spark skips these
    _parquet(tmp_path / "bad" / "lang=de" / "part-0.parquet", doc_id=["a"], text=["x"])
    _parquet(tmp_path / "bad" / "lang=fr" / "part-0.parquet", doc_id=["b"], body=["y"])
    _parquet(tmp_path / "body" / "lang=de" / "part-0.parquet", doc_id=["a"], body=["x"])
    paths = [tmp_path / name for name in ("nowhere", "empty", "bad", "body")]
    done = subprocess.run([sys.executable, "-c", _CHECKS_BEFORE_SPARK, str(tmp_path / "lake"), *map(str, paths)],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    lines = done.stdout.strip().splitlines()
    assert len(lines) == 5, lines
    assert "does not exist" in lines[0]
    assert "holds no Parquet files" in lines[1]
    assert re.search(r"lang=fr/part-0.parquet has no column 'text'", lines[2])
    assert re.search(r"no text column 'text' \(set input.text_col\); its columns are: doc_id, body, lang$", lines[3])
    assert lines[4] == "no jvm"  # all four refused before any JVM


def test_dry_run_reasons():
    part = lambda lang, sig="s1": Partition((("lang", lang),), sig)  # noqa: E731
    key = lambda lang: json.dumps({"lang": lang})  # noqa: E731
    committed = {"run_id": "r1", "status": "committed", "fingerprint": "f1",
                 "input": {"annotated_partitions": [{"values": {"lang": x}, "signature": "s1"}
                                                    for x in ("de", "fr", "it", "es")]}}
    manifests = [committed, {"run_id": "r2", "status": "failed", "fingerprint": "f1"},
                 {**committed, "run_id": "r3", "fingerprint": "f0"}]
    held = {key("de"): {"r1"}, key("fr"): {"r1"}, key("it"): {"r1", "r2"}, key("es"): {"r2"},
            key("ru"): {"r3"}, key("ja"): {"gone"}}
    partitions = [part("de"), part("fr", "s2"), part("it"), part("es"), part("ru"), part("ja"), part("zh")]
    got = {p.values[0][1]: why for p, why in reasons(partitions, held, manifests, "f1")}
    assert got == {"de": "done", "fr": "changed files", "it": "mixed runs", "es": "run failed",
                   "ru": "other pipeline", "ja": "unknown run", "zh": "new"}
    assert dict((p.values[0][1], why) for p, why in reasons(partitions[:1], held, manifests, None)) == \
        {"de": "pipeline unknown"}
