"""What a cluster run is given: the executors' Python (session), the packed environment's contents and cache key."""

from __future__ import annotations

import sys
import zipfile

from pipelines.config import SparkSettings
from pipelines.tools.pack_env import driver_constraints, env_key, executor_requirements
from pipelines.spark.session import executor_python

METADATA = """Metadata-Version: 2.1
Name: corpus-nlp
Version: 0.1.0
Requires-Dist: pyspark<5,>=3.5
Requires-Dist: delta-spark>=3.2
Requires-Dist: numpy>=1.26
Requires-Dist: onnxruntime>=1.17
Requires-Dist: torch==2.13.0; extra == "torch"
Requires-Dist: pytest>=8; extra == "test"
Provides-Extra: torch

{readme}
"""


def _wheel(path, readme="A README.", code="print(1)\n"):
    with zipfile.ZipFile(path, "w") as z:
        z.writestr("pipelines/__init__.py", code)
        z.writestr("corpus_nlp-0.1.0.dist-info/METADATA", METADATA.format(readme=readme))
        z.writestr("corpus_nlp-0.1.0.dist-info/RECORD",
                   f"pipelines/__init__.py,sha256={hash(code)},9\n"
                   f"corpus_nlp-0.1.0.dist-info/METADATA,sha256={hash(readme)},99\n")
    return path


def test_executors_get_the_base_requirements_without_pyspark_delta_or_extras(tmp_path):
    assert executor_requirements(_wheel(tmp_path / "w.whl")) == ["numpy>=1.26", "onnxruntime>=1.17"]


def test_the_env_is_repacked_for_new_code_or_versions_not_for_a_new_readme(tmp_path):
    base = env_key(_wheel(tmp_path / "a.whl"), "numpy==2.0\n")
    assert env_key(_wheel(tmp_path / "b.whl", readme="Another README."), "numpy==2.0\n") == base
    assert env_key(_wheel(tmp_path / "c.whl", code="print(2)\n"), "numpy==2.0\n") != base
    assert env_key(_wheel(tmp_path / "d.whl"), "numpy==2.1\n") != base


def test_the_executors_python_comes_from_the_config_then_the_environment(monkeypatch):
    monkeypatch.delenv("PYSPARK_PYTHON", raising=False)
    assert executor_python(SparkSettings()) == sys.executable
    monkeypatch.setenv("PYSPARK_PYTHON", "/opt/py/bin/python")
    assert executor_python(SparkSettings()) == "/opt/py/bin/python"
    packed = SparkSettings(conf={"spark.archives": "dist/corpus-nlp-env.tar.gz#env",
                                 "spark.pyspark.python": "./env/bin/python"})
    assert executor_python(packed) == "./env/bin/python"


def test_the_env_pins_the_drivers_versions_of_what_it_installs_and_nothing_else():
    import importlib.metadata

    pins = dict(line.split("==") for line in driver_constraints(["pydantic>=2.5"]).splitlines())
    assert pins["pydantic"] == importlib.metadata.version("pydantic")
    assert pins["pydantic-core"] == importlib.metadata.version("pydantic-core")  # what pydantic requires
    assert "pytest" not in pins and "pyspark" not in pins
