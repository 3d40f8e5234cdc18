# pllm: `make demo` sets everything up and shows a personal answer; `make test` runs the whole suite.
SHELL := bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
PLLM := $(VENV)/bin/pllm
# torch must be the CPU build: the plain name pulls several GB of CUDA packages.
TORCH_SPEC ?= torch==2.13.0
DEMO_HOME ?= $(CURDIR)/.demo-home
DEMO_QUESTION ?= Who is my manager, and when is my project deadline?

.PHONY: help install demo test lint typecheck check docs bench clean

help:
	@echo "make demo   set up .venv and run pllm on the example person in examples/"
	@echo "make test   install the test tools and run the whole pytest suite"
	@echo "make check  lint (ruff) and type-check (mypy)"
	@echo "make docs   regenerate docs/commands.md and completions/ from the app"
	@echo "make bench  run the benchmarks in bench/"

$(VENV)/.installed: pyproject.toml scripts/install-llama-cpp.sh
	$(PYTHON) -c 'import sys; sys.exit(sys.version_info < (3, 11) and "pllm needs Python 3.11 or newer")'
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet "$(TORCH_SPEC)"
	bash scripts/install-llama-cpp.sh $(PY)
	$(PY) -m pip install --quiet -e .
	touch $@

$(VENV)/.test-installed: $(VENV)/.installed
	$(PY) -m pip install --quiet -e ".[test]"
	touch $@

install: $(VENV)/.installed

demo: install
	rm -rf "$(DEMO_HOME)"
	@echo "== pllm ingest examples/ (a fictional person's notes, mail, chats and a PDF) into $(DEMO_HOME)"
	PLLM_HOME="$(DEMO_HOME)" $(PLLM) config set me Maya
	PLLM_HOME="$(DEMO_HOME)" $(PLLM) ingest examples --exclude README.md
	@echo "== pllm profile refresh"
	PLLM_HOME="$(DEMO_HOME)" $(PLLM) profile refresh
	@echo "== pllm ask \"$(DEMO_QUESTION)\""
	PLLM_HOME="$(DEMO_HOME)" $(PLLM) ask --seed 1 "$(DEMO_QUESTION)"

test: $(VENV)/.test-installed
	$(PY) -m pytest

lint: $(VENV)/.test-installed
	$(VENV)/bin/ruff check pllm_cli tests bench scripts
	$(VENV)/bin/ruff format --check pllm_cli

typecheck: $(VENV)/.test-installed
	$(VENV)/bin/mypy

check: lint typecheck

docs: install
	$(PY) scripts/generate.py

bench: install
	$(PY) bench/ingest_speed.py
	$(PY) bench/ask_latency.py
	$(PY) bench/serve_latency.py
	$(PY) bench/refresh_under_load.py
	$(PY) bench/steer_cost.py
	$(PY) bench/search_scale.py
	$(PY) bench/search_remote.py
	$(VENV)/bin/pllm eval retrieval ../shared/eval/locomo/locomo-dev.json --ablate

clean:
	rm -rf "$(DEMO_HOME)" build *.egg-info .pytest_cache .mypy_cache .ruff_cache
