# `make demo` and `make test` set everything up by themselves: they create a
# virtual environment in $(VENV) and install the package with its extras.
PYTHON ?= python3
VENV ?= .venv
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
# pytest-xdist worker processes per backend; 0 runs the tests in one process.
WORKERS ?= 2
export TF_CPP_MIN_LOG_LEVEL ?= 2

INSTALLED := $(VENV)/.installed

.PHONY: install demo test test-all lint

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test,tune,jax,torch]"
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/python recipes/demo.py

# As in CI: the whole suite on the first of $(BACKENDS), then on each of
# the others the tests whose result can depend on the backend (all but
# those marked `backend_independent`).
test: $(INSTALLED)
	set -e; only=; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend $$only"; \
		KERAS_BACKEND=$$backend $(VENV)/bin/python -m pytest -n $(WORKERS) \
			$(PYTEST_ARGS) $$only; \
		only=--backend-dependent-only; \
	done

# The whole suite on every backend.
test-all: $(INSTALLED)
	set -e; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(VENV)/bin/python -m pytest -n $(WORKERS) \
			$(PYTEST_ARGS); \
	done

lint: $(INSTALLED)
	$(VENV)/bin/python -m pip install --quiet ruff
	$(VENV)/bin/ruff check keras_rbdn tests recipes benchmarks
