# Two entry points on a fresh clone (see README): `make demo` and `make test`.
# Each creates .venv and installs everything into it first.

PYTHON ?= python3
VENV   ?= .venv
# CPU build of torch, found on this machine's disk; an unpinned torch pulls a multi-GB CUDA build.
# Kept here, in the install step, not in the library's dependencies.
TORCH  ?= torch==2.13.0
PY     := $(VENV)/bin/python
STAMP  := $(VENV)/.installed
CODE   := src tests examples benchmarks docs/_ext

.PHONY: install demo test test-fast lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH)" -e ".[dev]"
	touch $(STAMP)

install: $(STAMP)

demo: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) examples/quickstart.py

lint: $(STAMP)
	$(VENV)/bin/ruff check $(CODE)
	$(VENV)/bin/ruff format --check $(CODE)

typecheck: $(STAMP)
	$(VENV)/bin/mypy

unit: $(STAMP)
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest

test: lint typecheck unit

# ruff and every test that loads no real model (LLM, embedder, cross-encoder), on every core
# (pytest-xdist): about a minute on 2 cores
test-fast: lint
	HF_HUB_OFFLINE=1 $(VENV)/bin/pytest -m "not slow" -n auto

bench: $(STAMP)
	HF_HUB_OFFLINE=1 $(PY) benchmarks/run.py
	$(PY) benchmarks/dataplane.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/retrieval.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/evaluate.py
	$(PY) benchmarks/async_jobs.py
	HF_HUB_OFFLINE=1 $(PY) benchmarks/embeddings.py

# the API reference and guides (mkdocs + mkdocstrings, warnings as errors) into site/
docs: $(STAMP)
	$(PY) -m mkdocs build --strict

clean:
	rm -rf site $(VENV) .mypy_cache .ruff_cache .pytest_cache .hypothesis
