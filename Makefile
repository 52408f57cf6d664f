# Two commands a new user needs: `make run` and `make test`. Only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,fleet,bench

.PHONY: install run sim test lint check bench-quick clean

install: $(VENV)/.installed

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	touch $@

run: install  ## Warmgate on embedded defaults: a built-in SGLang simulator, SQLite, a printed API key
	$(VENV)/bin/warmgate serve

sim: install  ## The SGLang simulator alone on :30000
	$(VENV)/bin/warmgate sim

test: install  ## The whole suite (needs PostgreSQL on :5432 and Redis on :6379 for the fleet tests)
	$(PY) -m pytest -q

lint: install
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy

check: lint test

bench-quick: install
	$(PY) -m benchmarks.overhead --quick

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache *.egg-info
