# Quickstart: `make demo` (set up, then pretrain + fine-tune) and `make test` (set up, then the test suite).
PYTHON ?= $(shell command -v python3.11 || command -v python3)
VENV   := .venv
BIN    := $(VENV)/bin
STAMP  := $(VENV)/.installed
# Pinned: on the project's machines pip finds a local CPU wheel of it; an unpinned torch would pull a multi-GB CUDA
# build. Elsewhere, point it at a CPU wheel (make TORCH_CPU="torch==2.13.0 --index-url https://download.pytorch.org/whl/cpu").
TORCH_CPU ?= torch==2.13.0

.PHONY: install demo test test-fast bench bench-gpu lint clean

install: $(STAMP)

$(STAMP): pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip
	$(BIN)/python -c "import torch" 2>/dev/null || $(BIN)/pip install -q $(TORCH_CPU)
	$(BIN)/pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(BIN)/python train/demo.py

test: install
	$(BIN)/python -m pytest -n 2 --dist loadfile --no-loadscope-reorder -q tests

test-fast: install
	$(BIN)/python -m pytest -n 2 -q -m "not slow" tests

bench: install
	$(BIN)/python benchmarks/run.py --device cpu

bench-gpu: install
	$(BIN)/python benchmarks/run.py --device cuda --compile

lint: install
	$(BIN)/ruff check modeling_mini train tests benchmarks

clean:
	rm -rf $(VENV) build *.egg-info .pytest_cache outputs
