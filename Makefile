# Every target sets itself up on a fresh machine (python3 + pip only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-unit test-integration test-all lint format clean

install: $(STAMP)

$(STAMP): pyproject.toml
	python3 -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The CPU build of torch first, so nothing pulls CUDA wheels.
	$(PY) -m pip install -q "torch==2.13.0"
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: install
	$(VENV)/bin/eftnas-deploy demo --out runs/demo --overwrite

# Lint, the layer contracts (import-linter) and the fast unit suite.
test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/lint-imports
	$(VENV)/bin/pytest -q -m "not slow and not integration" $(PYTEST_ARGS)

test-unit: test

# End-to-end runs: the demo pipeline, torchrun, the INT8 CLI, optimum-cli, kill-and-resume.
test-integration: install
	# exit code 5 means no test is selected: not a failure
	$(VENV)/bin/pytest -q -m "slow or integration" $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: test test-integration

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
