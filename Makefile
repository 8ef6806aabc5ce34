# One entry point for setting up, testing, linting and running mixdpo. `make help` lists the targets.
PYTHON ?= python3
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

# Tests, CI and the demo never reach the Hugging Face Hub (a lookup takes ~48 s to fail offline).
export HF_HUB_OFFLINE := 1
export HF_DATASETS_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export HF_HUB_DISABLE_TELEMETRY := 1
export TOKENIZERS_PARALLELISM := false
# Let Python cache bytecode (the machines set PYTHONDONTWRITEBYTECODE=1, which doubles import time).
export PYTHONDONTWRITEBYTECODE :=

.PHONY: help setup test test-fast lint format demo clean

help:
	@echo "make setup      create $(VENV) with the exact locked dependencies and mixdpo (editable)"
	@echo "make test       setup, then lint and run the whole test suite (what CI runs)"
	@echo "make test-fast  setup, then the tests not marked slow"
	@echo "make lint       ruff lint + format check"
	@echo "make format     ruff format + autofix"
	@echo "make demo       setup, then run the demo (the README's main job)"

setup: $(VENV)/.installed

# torch is pinned to the 2.13.0 CPU wheel in requirements/lock.txt; --no-deps keeps pip from
# resolving anything the lock does not name (an unpinned torch would pull a ~5 GB CUDA build).
$(VENV)/.installed: requirements/lock.txt pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -r requirements/lock.txt
	$(BIN)/pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

test: setup lint
	$(BIN)/python -m pytest $(PYTEST_ARGS)

test-fast: setup
	$(BIN)/python -m pytest -m "not slow" $(PYTEST_ARGS)

lint: setup
	$(BIN)/ruff check src tests
	$(BIN)/ruff format --check src tests

format: setup
	$(BIN)/ruff format src tests
	$(BIN)/ruff check --fix src tests

demo: setup
	$(BIN)/mixdpo demo

clean:
	rm -rf $(VENV) .pytest_cache .ruff_cache .mypy_cache .hypothesis build dist src/*.egg-info
