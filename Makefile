# `make test` and `make demo` set everything up on a fresh machine: a venv, a CPU torch when
# there is no GPU (an unpinned torch would pull a multi-GB CUDA build), and the package with the
# library versions of constraints.txt, the ones the README's numbers were measured with.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
TORCH_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo torch || echo torch==2.13.0)

$(VENV)/.installed: pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q "$(TORCH_SPEC)"
	$(PY) -m pip install -q -e ".[dev]" -c constraints.txt
	touch $@

.PHONY: install test lint demo
install: $(VENV)/.installed

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo: install
	$(VENV)/bin/laser demo --out demo_out
