# The two commands of the README: `make demo` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test bench jars clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Annotating needs the base install and Spark (the local extra: pyspark; Delta is jars only); the demo config
# also trains the demo NER model on first use, which needs the torch extra (pinned to the CPU build).
# constraints.txt pins the tested combination (PySpark 3.5 for the Spark NLP and Delta jars, torch).
$(VENV)/.base: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[local,torch]"
	touch $@

# Tests also compare with Hugging Face transformers on PyTorch (torch pinned to the CPU build).
$(VENV)/.dev: pyproject.toml constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install -q -c constraints.txt -e ".[local,test,torch,cluster]"
	touch $@ $(VENV)/.base

# The Spark NLP and Delta jars with their dependencies, through Maven, into ~/.cache/corpus-nlp/jars
# (pipelines/jars.py pins the versions; CORPUS_NLP_JARS_DIR points elsewhere, e.g. on air-gapped machines).
jars: $(VENV)/.base
	$(BIN)/python -m pipelines.jars fetch

demo: $(VENV)/.base jars
	$(BIN)/corpus-nlp annotate --config conf/local.yaml

test: $(VENV)/.dev jars
	$(BIN)/python -m pytest -q

# Throughput of the job, then the runtime x precision frontier on the same model (benchmarks/frontier.py).
bench: $(VENV)/.dev jars
	$(BIN)/python -m benchmarks.throughput
	$(BIN)/python -m benchmarks.frontier
	$(BIN)/python -m benchmarks.classifiers

clean:
	rm -rf lake models spark-warehouse
