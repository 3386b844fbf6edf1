# The two commands of the README: `make demo` and `make test`. Both build their own virtualenv.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin

.PHONY: demo test bench clean

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip

# Annotating needs only the base install; the demo config also trains the demo NER model on first
# use, which needs the torch extra (pinned to the CPU build).
$(VENV)/.base: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[torch]"
	touch $@

# Tests also compare with Hugging Face transformers on PyTorch (torch pinned to the CPU build).
$(VENV)/.dev: pyproject.toml | $(BIN)/python
	$(BIN)/python -m pip install -q -e ".[test,torch]"
	touch $@ $(VENV)/.base

demo: $(VENV)/.base
	$(BIN)/corpus-nlp annotate --config conf/local.yaml

test: $(VENV)/.dev
	$(BIN)/python -m pytest -q

bench: $(VENV)/.dev
	$(BIN)/python -m benchmarks.throughput

clean:
	rm -rf lake models spark-warehouse
