"""Every Delta build pipelines/spark/jars.py pins resolves through Maven as `corpus-nlp jars fetch delta` fetches
it, whichever Spark line this environment has: a pin that names no published artifact fails here, not on a
user's machine (the legs run the lake on their own line's build)."""

import pytest

from pipelines.spark import jars


@pytest.mark.parametrize("line", [line for line, libs in jars.LIBRARIES.items() if "delta" in libs])
def test_each_pinned_delta_build_resolves(line, tmp_path, monkeypatch):
    monkeypatch.setenv("CORPUS_NLP_JARS_DIR", str(tmp_path))
    lib = jars.library("delta", f"{line}.0")
    folder = jars.fetch("delta", f"{line}.0")
    assert folder == tmp_path / lib.folder
    names = {p.name for p in folder.glob("*.jar")}
    assert f"{lib.artifact}-{lib.version}.jar" in names and f"delta-storage-{lib.version}.jar" in names
