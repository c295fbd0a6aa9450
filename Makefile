# Two entry points for a fresh machine: `make demo` and `make test`.
# Each creates .venv when missing and installs what it needs (again only when pyproject.toml or
# ci/constraints.txt changes).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=
# Test files are spread over the cores (pytest-xdist), one file per worker at a time: the Airflow
# cluster tests mostly wait on their services, so the rest of the suite runs beside them.
# --no-loadscope-reorder keeps the collection order, which tests/conftest.py starts with the longest
# files (xdist's default reorder puts files with many tests first, so the few-test, many-minute files
# ran last and alone). `make test PYTEST_ARGS="-n 0 ..."` runs in one process.
# One worker more than the cores, at most 4: the suite's tests wait on subprocesses and services much of
# the time (2 workers on 2 cores used ~0.8 of the cores). tests/airflow + tests/kedro on 2 cores
# (session 7, load 4-9 from other jobs): -n 2 398 s, -n 3 219 s, -n 4 265 s wall; CPU 201/219/225 s.
XDIST_WORKERS ?= $(shell $(PYTHON) -c "import os; print(min(4, (os.cpu_count() or 1) + 1))")
XDIST_ARGS := -n $(XDIST_WORKERS) --dist loadfile --no-loadscope-reorder
# Versions known to pass, so a fresh machine resolves in seconds (see the file's header).
CONSTRAINTS := -c ci/constraints.txt

.PHONY: demo test lint clean-venv chromium docs-screenshots

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

# The report's browser tests drive Debian's Chromium. Installed here when missing and apt-get can (root);
# otherwise they skip, naming the missing binary (under CI=true they fail instead).
CHROMIUM := /usr/bin/chromium
chromium:
	@if [ ! -x $(CHROMIUM) ]; then \
	  if command -v apt-get >/dev/null 2>&1 && [ "$$(id -u)" = 0 ]; then \
	    echo "make: installing Debian's chromium for the report's browser tests"; \
	    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null \
	      || echo "make: apt-get install chromium failed: the browser tests will skip (fail under CI=true)"; \
	  else \
	    echo "make: $(CHROMIUM) is missing and apt-get cannot install it here: the browser tests will skip (fail under CI=true)"; \
	  fi; \
	fi

# compileall first: with PYTHONDONTWRITEBYTECODE set (as in some shells and CI) no process writes the
# repository's bytecode, so each of the suite's hundreds of subprocesses (kedro runs, Airflow workers, CLI
# runs) compiled kart_core and the examples again (~0.3 s of CPU each); stale .pyc files were recompiled
# the same way. It only writes __pycache__ next to the sources (git-ignored) and skips up-to-date files.
test: $(VENV)/.installed-test chromium
	$(BIN)/python -m compileall -q kart_core plugins/airflow/kart_airflow plugins/kedro/kart_kedro examples tests
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest $(XDIST_ARGS) $(PYTEST_ARGS)

# Refresh docs/img/report*.png (shown in docs/cli.md) from the report's screenshot test.
docs-screenshots: $(VENV)/.installed-test chromium
	PATH="$(CURDIR)/$(BIN):$$PATH" $(BIN)/python -m pytest tests/core/test_report.py -k screenshot --docs-screenshots -q

lint: $(VENV)/.installed-test
	$(BIN)/ruff check kart_core plugins tests bench examples
	$(BIN)/lint-imports

clean-venv:
	rm -rf $(VENV)
