# The two commands of the README: `make demo` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test test-py312 test-py313 bench jars jars-delta clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# The demo needs the base install, Spark (the local extra: pyspark; Delta is jars only) and the report extra
# (matplotlib), so that `corpus-nlp report lake` works right after it. No torch: the demo NER model trains
# with NumPy (pipelines/ner/linear.py); torch (PyPI's is the CUDA build, ~4 GB with its nvidia-* wheels) is
# for train-ner and the reference tests only. constraints.txt pins the tested combination (PySpark 3.5 for
# the Spark NLP and Delta jars).
$(VENV)/.base: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[local,report]"
	touch $@

# Tests also train the NerDL tagger and compare with Hugging Face transformers on PyTorch (the torch extra).
$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[local,report,test,torch,cluster]"
	touch $@ $(VENV)/.base

# The Spark NLP and Delta jars with their dependencies, through Maven, into ~/.cache/corpus-nlp/jars
# (pipelines/spark/jars.py pins the versions; CORPUS_NLP_JARS_DIR points elsewhere, e.g. on air-gapped machines).
jars: $(VENV)/.base
	$(BIN)/python -m pipelines.spark.jars fetch

# Only the Delta jars of the installed Spark line (~7 MB for Spark 3.5): all the demo's lake needs; the Spark
# NLP jars (~225 MB with their dependencies) are for `engine: sparknlp` and the reference tests (`make jars`).
jars-delta: $(VENV)/.base
	$(BIN)/python -m pipelines.spark.jars fetch delta

demo: $(VENV)/.base jars-delta
	$(BIN)/corpus-nlp annotate --config conf/local.yaml

test: $(VENV)/.dev jars
	$(BIN)/python -m pytest -q

# --- CI legs beyond the pinned stack: `make test-py312`, `make test-py313` ------------------------------
# The package as a user installs it, WITHOUT constraints.txt, on Python 3.12 or 3.13 (the pyenv
# interpreters; PY312=/path/to/python3.12 to use another): `pip install -e '.[local,test,connect]'`, where pip
# picks the newest PySpark the local extra accepts, or the line SPARK=4.0 names (SPARK=3.5 leaves out connect,
# which is Spark 4 only); then the Delta jars pinned for that line; then the job-level tests below and the
# unit tests (the whole suite would not fit the CI budget; the sparknlp engine's tests run on SPARK=3.5 only,
# the line with a Spark NLP jar). No torch (an unpinned torch is 4.6 GB of CUDA wheels): the leg refuses to
# run with it, and the tests that need it, or the Spark NLP jar, skip saying why.
PY312 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.12*/bin/python) python3.12)
PY313 ?= $(firstword $(wildcard $(HOME)/.pyenv/versions/3.13*/bin/python) python3.13)
SPARK ?=
comma := ,
# Every leg: the unit tests and the job-level tests that show the package installs and annotates on that line.
LEG_TESTS = tests/unit tests/integration/test_job.py tests/integration/test_installed_package.py \
	tests/integration/test_stages.py tests/integration/test_row_errors.py tests/integration/test_delta_sql.py \
	tests/integration/test_light_pipeline.py tests/integration/test_dry_run.py tests/integration/test_jars_fetch.py \
	tests/integration/test_sparknlp_engine.py tests/integration/test_live_progress.py
# The lake's own tests (~5 minutes) where the Delta build differs from the pinned suite's (`make test`: Spark 3.5,
# Delta 3.3): the newest line on 3.12 and Spark 4.0 (Runtime 17). Spark 4.1 and Python 3.13 get the same Delta
# 4.4 as those two, and SPARK=3.5 the pinned suite's, so they would only repeat them (CI's 90 minutes).
LAKE_TESTS = tests/integration/test_lake.py tests/integration/test_incremental.py tests/integration/test_catalog_tables.py
# Spark Connect against a real server (~3 minutes): on Python 3.12 with the newest line and with 4.0 (Databricks
# Runtime 17, serverless); PySpark 3.5 has no server to start, and the other legs would only repeat it.
CONNECT_TESTS = $(if $(filter-out 4.0,$(SPARK)),,tests/integration/test_connect.py)
# The torch-free demo, two runs of one lake at once (partition leases, Delta's concurrent commits) and sentence
# reuse (the lake's sentence cache: Delta appends and a MERGE DELETE), on the newest line only: each leg costs CI minutes,
# and the other lines would only repeat them.
NEWEST_LINE_TESTS = $(if $(SPARK),,tests/integration/test_demo.py tests/integration/test_lake_conflict.py \
	tests/integration/test_sentence_reuse.py)
LEG312 = .venv-py312$(if $(SPARK),-spark$(SPARK))
LEG313 = .venv-py313$(if $(SPARK),-spark$(SPARK))

# $(1): the interpreter, $(2): the venv. A fresh venv whenever pyproject.toml changes.
define leg_venv
	@test -x "$$(command -v $(1))" || { echo "error: no Python at $(1): install it with pyenv or set PY3xx=/path/to/python" >&2; exit 2; }
	rm -rf $(2)
	$(1) -m venv $(2)
	$(2)/bin/python -m pip install -q --upgrade pip
	$(2)/bin/python -m pip install -q -e ".[local,test$(if $(filter 3.%,$(SPARK)),,$(comma)connect)]" \
		$(if $(SPARK),"pyspark==$(SPARK).*")
	$(2)/bin/python -m pip check
	touch $(2)/.installed
endef

# What the leg got, on one line; then its Delta jars and the tests.
define leg_test
	$(1)/bin/python scripts/leg_versions.py
	$(1)/bin/python -m pipelines.spark.jars fetch
	$(1)/bin/python -m pytest -q $(LEG_TESTS) $(2)
endef

$(LEG312)/.installed: pyproject.toml
	$(call leg_venv,$(PY312),$(LEG312))

$(LEG313)/.installed: pyproject.toml
	$(call leg_venv,$(PY313),$(LEG313))

test-py312: $(LEG312)/.installed
	$(call leg_test,$(LEG312),$(if $(filter-out 4.0,$(SPARK)),,$(LAKE_TESTS)) $(CONNECT_TESTS) $(NEWEST_LINE_TESTS))

test-py313: $(LEG313)/.installed
	$(call leg_test,$(LEG313))

# Throughput of the job, then the runtime x precision frontier on the same model (benchmarks/frontier.py).
bench: $(VENV)/.dev jars
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.frontier
	$(BIN)/python -m benchmarks.classifiers
	$(BIN)/python -m benchmarks.reuse

clean:
	rm -rf lake models spark-warehouse
