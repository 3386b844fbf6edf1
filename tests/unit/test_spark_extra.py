"""PySpark and Delta are the `local` extra, not requirements: a Spark runtime keeps its own. Without them
the command says what to install in one line."""

import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_pyspark_and_delta_only_in_the_local_extra_which_make_installs():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [dep.split(">")[0].split("=")[0].split("<")[0].strip() for dep in project["dependencies"]]
    assert "pyspark" not in names and "delta-spark" not in names
    local = [dep.split(">")[0] for dep in project["optional-dependencies"]["local"]]
    assert local == ["pyspark", "delta-spark"]
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("local" in line for line in installs), installs


def test_annotate_without_pyspark_is_one_line(tmp_path):
    """A base install without PySpark: sys.modules blocks the import as an absent package would."""
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from pipelines.cli import main; main(['annotate', '--show', '0'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr == ("error: PySpark is not installed: pip install 'corpus-nlp[local]', or run on a Spark "
                           "runtime\n")
    assert list(tmp_path.iterdir()) == []  # failed before writing anything (no ./lake)
