"""PySpark is the `local` extra, not a requirement: a Spark runtime keeps its own. Delta needs no Python
package (the lake goes through Spark SQL). Without PySpark the command says what to install in one line."""

import subprocess
import sys
import tomllib
from pathlib import Path

from packaging.requirements import Requirement

ROOT = Path(__file__).resolve().parents[2]


def test_pyspark_only_in_the_local_extra_which_make_installs_and_no_delta_package():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    names = [Requirement(dep).name for dep in project["dependencies"]]
    assert "pyspark" not in names and "delta-spark" not in names
    local = [Requirement(dep).name for dep in project["optional-dependencies"]["local"]]
    assert local == ["pyspark"]
    extras = [Requirement(dep).name for deps in project["optional-dependencies"].values() for dep in deps]
    assert "delta-spark" not in extras
    makefile = (ROOT / "Makefile").read_text()
    installs = [line for line in makefile.splitlines() if "pip install" in line and " -e " in line]
    assert installs and all("local" in line for line in installs), installs


def test_annotate_without_pyspark_is_one_line(tmp_path):
    """A base install without PySpark: sys.modules blocks the import as an absent package would."""
    code = ("import sys; sys.modules['pyspark'] = None\n"
            "from pipelines.tools.cli import main; main(['annotate', '--show', '0'])")
    proc = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True,
                          env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert proc.returncode == 2
    assert proc.stderr == ("Error: PySpark is not installed: pip install 'corpus-nlp[local]', or run on a Spark "
                           "runtime\n")
    assert list(tmp_path.iterdir()) == []  # failed before writing anything (no ./lake)
