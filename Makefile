# Every target sets itself up on a fresh machine (python3 + pip only).
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed-stamp
PYTEST_ARGS ?=

.PHONY: install demo test test-slow test-all lint format clean

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

test: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q -m "not slow" $(PYTEST_ARGS)

test-slow: install
	# exit code 5 means no test is marked slow: not a failure
	$(VENV)/bin/pytest -q -m slow $(PYTEST_ARGS) || [ $$? -eq 5 ]

test-all: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/pytest -q $(PYTEST_ARGS)

lint: install
	$(VENV)/bin/ruff check .
	$(VENV)/bin/ruff format --check .

format: install
	$(VENV)/bin/ruff check --fix .
	$(VENV)/bin/ruff format .

clean:
	rm -rf $(VENV) runs .pytest_cache .ruff_cache *.egg-info
