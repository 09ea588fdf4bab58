# `make demo` and `make test` set everything up by themselves: they create a
# virtual environment in $(VENV) and install the package with its extras.
PYTHON ?= python3
VENV ?= .venv
BACKENDS ?= tensorflow jax torch
PYTEST_ARGS ?=
export TF_CPP_MIN_LOG_LEVEL ?= 2

INSTALLED := $(VENV)/.installed

.PHONY: install demo test lint

$(INSTALLED): setup.cfg pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(VENV)/bin/python -m pip install --quiet --upgrade pip
	$(VENV)/bin/python -m pip install --quiet -e ".[test,tune,jax,torch]"
	touch $@

install: $(INSTALLED)

demo: $(INSTALLED)
	$(VENV)/bin/python recipes/demo.py

# The suite runs once per Keras backend, as in CI.
test: $(INSTALLED)
	set -e; for backend in $(BACKENDS); do \
		echo "=== KERAS_BACKEND=$$backend"; \
		KERAS_BACKEND=$$backend $(VENV)/bin/python -m pytest $(PYTEST_ARGS); \
	done

lint: $(INSTALLED)
	$(VENV)/bin/python -m pip install --quiet ruff
	$(VENV)/bin/ruff check keras_rbdn tests recipes benchmarks
