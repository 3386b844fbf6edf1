"""Every code block of the README runs as printed, after the two set-up commands (`make demo`, `make
test`: CI runs both on a clean clone before this test; `make demo` is the set-up block itself).

The shell blocks run in order, each in a new `bash` (a new shell: nothing carries over but files), in a
copy of the checkout whose `.venv` is the environment running these tests. A python block is a notebook
cell: it runs in a new Python process whose `spark` is a session with Delta, as a notebook has one."""

import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from markdown_doc import ROOT, code_blocks

README = ROOT / "README.md"
SETUP = "make demo"  # the set-up block: what CI itself runs first
# what a checkout holds that the blocks must not see: build outputs, caches, a developer's own lake
NOT_COPIED = shutil.ignore_patterns(".git", ".venv*", "lake", "__pycache__", "*.egg-info", "dist", "build",
                                    "models", ".pytest_cache", "results")

NOTEBOOK_SESSION = textwrap.dedent("""\
    from pipelines.config import SparkSettings
    from pipelines.spark.session import get_spark
    spark = get_spark(SparkSettings(master="local[2]"), ["delta"])
""")


def runnable_blocks() -> list:
    return [b for b in code_blocks(README) if b.lang in ("bash", "python") and SETUP not in b.code]


@pytest.fixture(scope="module")
def checkout(tmp_path_factory) -> Path:
    copy = tmp_path_factory.mktemp("checkout") / "corpus-nlp"
    shutil.copytree(ROOT, copy, ignore=NOT_COPIED, symlinks=True)
    (copy / ".venv").symlink_to(Path(sys.prefix), target_is_directory=True)
    return copy


def test_the_readme_has_one_example_of_each_way_to_run():
    blocks = runnable_blocks()
    assert any("spark-submit" in b.code for b in blocks)
    assert any("--incremental" in b.code for b in blocks)
    assert any(b.lang == "python" and "spark=spark" in b.code for b in blocks)
    assert [b for b in code_blocks(README) if SETUP in b.code], "the set-up block"


def test_every_readme_block_runs_as_printed(checkout):
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    # a new shell's PATH: without the test's own virtualenv (the blocks activate .venv themselves)
    env["PATH"] = os.pathsep.join(d for d in env["PATH"].split(os.pathsep) if Path(d) != Path(sys.executable).parent)
    for block in runnable_blocks():
        if block.lang == "bash":
            command = ["bash", "-euo", "pipefail", "-c", block.code]
        else:
            command = [sys.executable, "-c", NOTEBOOK_SESSION + block.code]
        proc = subprocess.run(command, cwd=checkout, env=env, capture_output=True, text=True)
        assert proc.returncode == 0, f"README.md:{block.line}\n{block.code}\n{proc.stdout[-2000:]}\n{proc.stderr[-3000:]}"
    assert (checkout / "lake" / "_reports" / "report.html").is_file()
