"""The JVM library pins of pipelines/spark/jars.py against the Spark lines pyproject.toml accepts: an unpinned
`pip install 'corpus-nlp[local]'` must get a PySpark whose Delta jars `corpus-nlp jars fetch` can fetch."""

import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from pipelines.spark import jars

ROOT = Path(__file__).resolve().parents[2]


def extra_pyspark(extra: str) -> Requirement:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    found = [Requirement(r) for r in project["optional-dependencies"][extra]]
    return next(r for r in found if r.name == "pyspark")


# Spark's lines: 3.5 was the last 3.x line (the next release was 4.0); any later 4.x or 5.x line may come.
SPARK_LINES = [f"2.{m}" for m in range(5)] + [f"3.{m}" for m in range(6)] + [f"{major}.{m}" for major in (4, 5, 6)
                                                                               for m in range(30)]


def accepted_lines(requirement: Requirement) -> set[str]:
    """The Spark lines with at least one release (x.y.0 to x.y.30) the specifier allows."""
    return {line for line in SPARK_LINES
            if any(requirement.specifier.contains(f"{line}.{patch}") for patch in range(31))}


def test_every_spark_line_the_local_extra_accepts_has_a_delta_pin():
    accepted = accepted_lines(extra_pyspark("local"))
    pinned = {line for line, libs in jars.LIBRARIES.items() if "delta" in libs}
    assert "3.5" in accepted and "4.3" not in accepted
    assert accepted == pinned


def test_the_connect_extra_accepts_the_spark_4_lines_of_the_local_extra():
    connect = extra_pyspark("connect")
    assert connect.extras == {"connect"}
    assert accepted_lines(connect) == {line for line in accepted_lines(extra_pyspark("local")) if line >= "4"}


def test_spark_nlp_is_pinned_for_spark_3_5_only():
    assert [line for line, libs in jars.LIBRARIES.items() if "sparknlp" in libs] == ["3.5"]
    assert jars.pinned("3.5.7") == ["sparknlp", "delta"]
    assert jars.pinned("4.2.1") == ["delta"] and jars.pinned("4.3.0") == []


def test_each_pin_is_the_delta_build_of_its_spark_line():
    for line in ("4.0", "4.1", "4.2"):
        assert jars.library("delta", f"{line}.1").coordinate == f"io.delta:delta-spark_{line}_2.13:4.4.0"
    assert jars.library("delta", "3.5.7").coordinate == "io.delta:delta-spark_2.12:3.3.2"
    folders = [lib.folder for libs in jars.LIBRARIES.values() for lib in libs.values()]
    assert len(set(folders)) == len(folders), folders  # one version, one artifact per line: one folder each
    assert jars.library("delta", "4.2.0").folder == "delta-4.4.0-spark4.2"
    assert jars.library("delta", "3.5.0").folder == "delta-3.3.2"  # the folder `make jars` has always used


def test_an_unpinned_line_is_one_line_naming_the_pinned_ones():
    with pytest.raises(jars.JarsUnavailable) as e:
        jars.library("delta", "4.3.0")
    assert str(e.value) == ("no delta build is pinned for Spark 4.3 (PySpark 4.3.0); corpus-nlp pins one for "
                            "Spark 3.5, 4.0, 4.1, 4.2")


def test_jars_with_no_names_takes_what_the_installed_spark_line_has(capsys):
    assert jars.main(["pom"]) == 0
    out = capsys.readouterr().out
    wanted = [jars.library(n) for n in jars.pinned()]
    assert wanted and all(f"<artifactId>{lib.artifact}</artifactId>" in out for lib in wanted)
    others = {lib.artifact for libs in jars.LIBRARIES.values() for lib in libs.values()} - {w.artifact for w in wanted}
    assert not [a for a in others if f"<artifactId>{a}</artifactId>" in out]
