"""One line of what a CI leg installed (`make test-py312`), and a refusal if it installed torch: the legs
prove the install without it (an unpinned torch is 4.6 GB of CUDA wheels)."""

import importlib.metadata
import importlib.util
import platform
import sys

PACKAGES = ("pyspark", "spark-nlp", "numpy", "pandas", "pyarrow", "onnxruntime", "tokenizers", "grpcio")



def version(package: str) -> str:
    try:
        return f"{package} {importlib.metadata.version(package)}"
    except importlib.metadata.PackageNotFoundError:  # grpcio: the connect extra, Spark 4 only
        return f"no {package}"


if importlib.util.find_spec("torch") is not None:
    sys.exit(f"error: torch is installed in {sys.prefix}; the legs run without it: rebuild the venv")
print(", ".join([f"leg: Python {platform.python_version()}", *map(version, PACKAGES), "no torch"]))
