# Two commands a new user needs: `make run` and `make test`. Only Python 3.11+ and make.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
EXTRAS ?= dev,fleet,bench,otel

.PHONY: install run sim test lint typecheck-links wheel-check check bench-quick chromium clean

install: $(VENV)/.installed

# instructor (tests/clients) is installed without its declared dependencies, which no resolver
# can meet beside ours: click>=8.3.3 (for its command line; SkyPilot pins click<8.2) and
# jiter<0.15 (the openai SDK needs jiter>=0.16; instructor runs with it). What its library code
# imports comes with the dev extra.
INSTRUCTOR := instructor==1.17.0

$(VENV)/.installed: pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e '.[$(EXTRAS)]'
	$(if $(findstring dev,$(EXTRAS)),$(PY) -m pip install -q --no-deps '$(INSTRUCTOR)')
	touch $@

run: install  ## Warmgate on embedded defaults: a built-in SGLang simulator, SQLite, a printed API key
	$(VENV)/bin/warmgate serve

sim: install  ## The SGLang simulator alone on :30000
	$(VENV)/bin/warmgate sim

test: install  ## The whole suite (needs PostgreSQL on :5432 and Redis on :6379 for the fleet tests)
	$(PY) -m pytest -q

# mypy resolves `warmgate.proxy` and `warmgate.backends` through these links (pyproject.toml's
# mypy_path): the folders are that package only once installed.
typecheck-links:
	mkdir -p build/typecheck/warmgate
	ln -sfn ../../../proxy build/typecheck/warmgate/proxy
	ln -sfn ../../../backends build/typecheck/warmgate/backends

lint: install typecheck-links
	$(VENV)/bin/ruff format --check .
	$(VENV)/bin/ruff check .
	$(VENV)/bin/mypy
	$(VENV)/bin/lint-imports --no-cache --no-logo

# The built wheel in a fresh virtualenv outside the checkout, newest dependencies, no extras:
# `warmgate serve` answers the official SDK.
wheel-check: install
	.ci/wheel-check

check: lint test

# The console's browser tests drive Debian's Chromium through Playwright (Playwright's own browser
# downloads are not used); installed here when missing, which needs root (CI runs as root).
chromium:
	@command -v chromium >/dev/null || { \
	  if [ "$$(id -u)" -eq 0 ]; then \
	    apt-get update -q && DEBIAN_FRONTEND=noninteractive apt-get install -y -q chromium; \
	  else echo "make chromium: run as root, or apt-get install chromium" >&2; exit 1; fi; }

bench-quick: install
	$(PY) -m benchmarks.overhead --quick

clean:
	rm -rf $(VENV) build dist .mypy_cache .ruff_cache .pytest_cache *.egg-info
