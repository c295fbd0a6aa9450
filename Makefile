# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (again only when pyproject.toml or
# ci/constraints.txt changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files are spread over the cores (pytest-xdist), one file per worker at a time: the Airflow
# cluster tests mostly wait on their services, so the rest of the suite runs beside them.
# `make test PYTEST_ARGS="-n 0 ..."` runs in one process.
XDIST_ARGS := -n auto --maxprocesses=4 --dist loadfile
# Versions known to pass, so a fresh machine resolves in seconds (see the file's header).
CONSTRAINTS := -c ci/constraints.txt

.PHONY: demo test lint clean-venv

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(VENV)/.installed-demo: pyproject.toml ci/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[airflow,kedro]'
	touch $@

$(VENV)/.installed-test: pyproject.toml ci/constraints.txt | $(BIN)/python
	$(BIN)/python -m pip install --quiet $(CONSTRAINTS) -e '.[all,dev]'
	touch $@ $(VENV)/.installed-demo

demo: $(VENV)/.installed-demo
	$(BIN)/python examples/demo.py

test: $(VENV)/.installed-test
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

lint: $(VENV)/.installed-test
	$(BIN)/ruff check kart_core plugins tests bench examples
	$(BIN)/lint-imports

clean-venv:
	rm -rf $(VENV)
