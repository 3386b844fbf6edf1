"""The JVM libraries corpus-nlp hands to Spark: the Spark NLP jar (``engine: sparknlp``, the reference
tests) and Delta Lake (the lake's default format).

The coordinates are pinned here and nowhere else. ``corpus-nlp jars fetch`` (``make jars``) resolves
them with their runtime dependencies through the machine's Maven client (``mvn
dependency:copy-dependencies`` on a pom written from these pins: ``corpus-nlp jars pom`` prints it)
into ``~/.cache/corpus-nlp/jars/<library>-<version>/``; Spark gets the files (``spark.jars``), not
Maven coordinates, so no Ivy set-up is needed. Air-gapped machines: copy such a folder over and point
``CORPUS_NLP_JARS_DIR`` at its parent (or at a folder of jars with the same layout).

Jars that PySpark already ships (Scala library, Guava, ANTLR, ...) are left out: Spark's class loader
would take its own copy first anyway.

Why Spark NLP 5.5.3 and Spark 3.5: it is the newest Spark NLP build Maven Central serves to our
machines (no 6.x or 7.x, no Scala 2.13 build), and three of its dependencies are not served at all
(the TensorFlow, OpenVINO and llama.cpp native runtimes), so they are excluded: the rule-based text
annotators and the ONNX BertEmbeddings do not load them. Two pure-Java pieces of TensorFlow are added
back from the upstream TensorFlow Java project, which Maven Central serves (their native code is never
loaded on the ONNX path):

- ``org.tensorflow:ndarray``: Spark NLP's ``Bert`` model class has methods whose signatures name its
  buffer types, and Java serialization (the broadcast of every ONNX BERT model) resolves every method
  signature of the class it writes, so without it ``BertEmbeddings.loadSavedModel`` fails with
  ``NoClassDefFoundError: org/tensorflow/ndarray/buffer/LongDataBuffer``;
- ``org.tensorflow:tensorflow-core-api`` 0.4.2 (the API that Spark NLP's own ``tensorflow-cpu_2.12:0.4.4``
  build repackages): the classifier annotators (``BertForTokenClassification``,
  ``(DistilBert|Bert)ForSequenceClassification``) link ``org.tensorflow.Tensor`` while loading even an
  ONNX model, so without it their ``loadSavedModel`` fails with ``NoClassDefFoundError:
  org/tensorflow/Tensor``. It brings javacpp (Java only here) and protobuf-java 3.19.4, the protobuf
  that Spark NLP's full dependency set resolves to as well.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

from pipelines.errors import CorpusNlpError


@dataclass(frozen=True)
class JvmLibrary:
    name: str
    group: str
    artifact: str
    version: str
    exclusions: tuple[tuple[str, str], ...] = field(default_factory=tuple)
    # (group, artifact, version) resolved alongside: what an exclusion removed that the library still needs
    extras: tuple[tuple[str, str, str], ...] = field(default_factory=tuple)

    @property
    def coordinate(self) -> str:
        return f"{self.group}:{self.artifact}:{self.version}"

    @property
    def folder(self) -> str:
        # Delta 4.1+ publishes one artifact per Spark line under one version (delta-spark_4.2_2.13:4.4.0):
        # the line keeps their folders apart
        line = _SPARK_LINE_ARTIFACT.search(self.artifact)
        return f"{self.name}-{self.version}" + (f"-spark{line.group(1)}" if line else "")


_SPARK_LINE_ARTIFACT = re.compile(r"_(\d+\.\d+)_2\.1[23]$")


# Per Spark line (Scala binary version): the builds that run on it. The `local` extra of pyproject.toml
# accepts exactly the lines listed here (tests/unit/test_jars.py). Spark 4.x: Delta 4.4.0, the newest Delta,
# which builds one artifact per Spark line (each against that line's x.y.0/x.y.1 release); there is no Delta
# build for Spark 4.3.
LIBRARIES: dict[str, dict[str, JvmLibrary]] = {
    "3.5": {
        "sparknlp": JvmLibrary("sparknlp", "com.johnsnowlabs.nlp", "spark-nlp_2.12", "5.5.3", exclusions=(
            ("com.johnsnowlabs.nlp", "tensorflow-cpu_2.12"),
            ("com.johnsnowlabs.nlp", "jsl-llamacpp-cpu_2.12"),
            ("com.johnsnowlabs.nlp", "jsl-openvino-cpu_2.12"),
        ), extras=(("org.tensorflow", "ndarray", "0.3.3"), ("org.tensorflow", "tensorflow-core-api", "0.4.2"))),
        "delta": JvmLibrary("delta", "io.delta", "delta-spark_2.12", "3.3.2"),
    },
    # No Spark NLP build for Spark 4 is served to our machines: the sparknlp engine is Spark 3.5 only.
    "4.0": {"delta": JvmLibrary("delta", "io.delta", "delta-spark_4.0_2.13", "4.4.0")},
    "4.1": {"delta": JvmLibrary("delta", "io.delta", "delta-spark_4.1_2.13", "4.4.0")},
    "4.2": {"delta": JvmLibrary("delta", "io.delta", "delta-spark_4.2_2.13", "4.4.0")},
}


class JarsUnavailable(CorpusNlpError):
    """A library's jars are not on this machine, phrased with how to get them."""


def spark_line(version: str | None = None) -> str:
    if version is None:
        import pyspark

        version = pyspark.__version__
    major, minor = version.split(".")[:2]
    return f"{major}.{minor}"


def library(name: str, spark_version: str | None = None) -> JvmLibrary:
    line = spark_line(spark_version)
    found = LIBRARIES.get(line, {}).get(name)
    if found is None:
        lines = sorted(k for k, v in LIBRARIES.items() if name in v)
        raise JarsUnavailable(f"no {name} build is pinned for Spark {line} (PySpark {spark_version or _pyspark()}); "
                              f"corpus-nlp pins one for Spark {', '.join(lines)}")
    return found


def pinned(spark_version: str | None = None) -> list[str]:
    """The libraries pinned for the installed Spark line (for ``spark_version``'s): what ``jars fetch``
    with no names fetches, and what a session can be given."""
    return [n for n in ("sparknlp", "delta") if n in LIBRARIES.get(spark_line(spark_version), {})]


def _pyspark() -> str:
    import pyspark

    return pyspark.__version__


def cache_root() -> Path:
    configured = os.environ.get("CORPUS_NLP_JARS_DIR")
    if configured:
        return Path(configured)
    base = os.environ.get("CORPUS_NLP_CACHE_DIR") or os.path.join(Path.home(), ".cache", "corpus-nlp")
    return Path(base) / "jars"


def jar_paths(name: str, spark_version: str | None = None) -> list[str]:
    """The jar files of ``name`` for the installed Spark, or one actionable error."""
    lib = library(name, spark_version)
    folder = cache_root() / lib.folder
    jars = sorted(str(p) for p in folder.glob("*.jar"))
    if not jars:
        raise JarsUnavailable(
            f"the {name} jars ({lib.coordinate}) are not in {folder}: run `corpus-nlp jars fetch {name}` (or "
            "`make jars`), which uses Maven; on a machine without Maven, copy that folder from one that has "
            "it and set CORPUS_NLP_JARS_DIR to its parent")
    return jars


def pom(libs: list[JvmLibrary]) -> str:
    """A pom whose dependencies are ``libs`` (what ``mvn dependency:copy-dependencies`` resolves)."""
    deps = []
    for group, artifact, version in [e for lib in libs for e in lib.extras]:
        deps.append(f"    <dependency><groupId>{group}</groupId><artifactId>{artifact}</artifactId>"
                    f"<version>{version}</version></dependency>")
    for lib in libs:
        excl = "".join(f"<exclusion><groupId>{g}</groupId><artifactId>{a}</artifactId></exclusion>"
                       for g, a in lib.exclusions)
        deps.append(f"    <dependency><groupId>{lib.group}</groupId><artifactId>{lib.artifact}</artifactId>"
                    f"<version>{lib.version}</version>" + (f"<exclusions>{excl}</exclusions>" if excl else "")
                    + "</dependency>")
    return ("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n"
            "<project xmlns=\"http://maven.apache.org/POM/4.0.0\"><modelVersion>4.0.0</modelVersion>\n"
            "  <groupId>corpus-nlp</groupId><artifactId>corpus-nlp-jars</artifactId><version>1</version>"
            "<packaging>pom</packaging>\n  <dependencies>\n" + "\n".join(deps) + "\n  </dependencies>\n</project>\n")


_VERSIONED_JAR = re.compile(r"^(?P<artifact>.+?)-\d[\w.\-]*\.jar$")


def _artifact_of(jar_name: str) -> str:
    m = _VERSIONED_JAR.match(jar_name)
    return m.group("artifact") if m else jar_name


def spark_own_artifacts() -> set[str]:
    import pyspark

    return {_artifact_of(p.name) for p in (Path(pyspark.__file__).parent / "jars").glob("*.jar")}


def fetch(name: str, spark_version: str | None = None, mvn: str = "mvn", quiet: bool = True) -> Path:
    """Resolve ``name``'s jars through Maven into the cache (once; a complete folder is kept)."""
    lib = library(name, spark_version)
    target = cache_root() / lib.folder
    if any(target.glob("*.jar")) and all((target / f"{a}-{v}.jar").exists() for _, a, v in lib.extras):
        return target
    if shutil.which(mvn) is None:
        raise JarsUnavailable(f"Maven (`{mvn}`) is not installed: install it (e.g. `apt-get install maven`) or copy "
                              f"a folder of the {name} jars to {target}")
    staging = Path(tempfile.mkdtemp(prefix=f".{lib.folder}-", dir=_mkdir(target.parent)))
    try:
        (staging / "pom.xml").write_text(pom([lib]), encoding="utf-8")
        cmd = [mvn, "-B", *(["-q"] if quiet else []), "-f", str(staging / "pom.xml"),
               "dependency:copy-dependencies", "-DincludeScope=runtime", f"-DoutputDirectory={staging / 'jars'}"]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:
            errors = [line for line in done.stdout.splitlines() if "[ERROR]" in line][:1] or done.stderr.splitlines()[-1:]
            raise JarsUnavailable(f"Maven could not fetch {lib.coordinate}: {' '.join(errors).strip()}")
        spark_has = spark_own_artifacts()
        for jar in (staging / "jars").glob("*.jar"):
            if _artifact_of(jar.name) in spark_has:
                jar.unlink()
        (staging / "jars").rename(_fresh(target))  # atomic: a folder with jars is a complete folder
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


def _mkdir(path: Path) -> Path:
    path.mkdir(parents=True, exist_ok=True)
    return path


def _fresh(target: Path) -> Path:
    if target.exists():
        shutil.rmtree(target)
    return target


def main(argv: list[str] | None = None) -> int:
    """``python -m pipelines.spark.jars fetch [sparknlp] [delta]`` (what ``make jars`` runs)."""
    args = list(sys.argv[1:] if argv is None else argv)
    if not args or args[0] not in ("fetch", "pom", "paths"):
        print("usage: python -m pipelines.spark.jars fetch|pom|paths [sparknlp] [delta]", file=sys.stderr)
        return 2
    # no names: what the installed line has; a line with none asks for delta, whose error names the lines pinned
    verb, names = args[0], args[1:] or pinned() or ["delta"]
    try:
        if verb == "pom":
            print(pom([library(n) for n in names]), end="")
        for n in names:
            if verb == "fetch":
                print(f"{library(n).coordinate}: {fetch(n)}")
            elif verb == "paths":
                print("\n".join(jar_paths(n)))
    except JarsUnavailable as e:
        print(f"Error: {e}", file=sys.stderr)  # as the CLI writes them
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
