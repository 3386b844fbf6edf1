"""What checking a model at a Hadoop path on every run costs: the first fetch, a later run's, a second use
within one run (pipelines.store.model_paths). Uses a fresh cache directory, deleted afterwards.

    python benchmarks/model_fetch.py BUNDLE_DIR    # e.g. after `corpus-nlp demo-model --out DIR --mbert-shape`
"""

import os
import shutil
import sys
import tempfile
import time
from pathlib import Path


def main(bundle: str) -> None:
    cache = tempfile.mkdtemp(prefix="model-fetch-")
    os.environ["CORPUS_NLP_CACHE_DIR"] = cache  # before pipelines reads it
    from pipelines.config import SparkSettings
    from pipelines.store.model_paths import forget_fetched, local_dir
    from pipelines.spark.session import get_spark

    get_spark(SparkSettings(master="local[2]"), [])
    uri = Path(bundle).resolve().as_uri()
    try:
        for label in ("first fetch", "a later run", "a later run"):
            forget_fetched()  # what the job does as each run starts
            started = time.time()
            local_dir(uri)
            print(f"{label}: {time.time() - started:.1f} s", flush=True)
        started = time.time()
        local_dir(uri)
        print(f"a second use within the run: {time.time() - started:.2f} s")
    finally:
        shutil.rmtree(cache, ignore_errors=True)


if __name__ == "__main__":
    main(sys.argv[1])
