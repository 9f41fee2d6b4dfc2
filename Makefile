# slumwatch — two commands do all set-up on a fresh machine:
#   make demo   creates .venv, installs the pinned dependencies, runs the main job on the embedded default
#   make test   same install, then the test suite
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
UV_VERSION := 0.13.9
UV := $(BIN)/uv
SAM2_VERSION := 1.1.0
STAMP := $(VENV)/.installed
DEMO_OUT ?= out/demo
PYTEST_ARGS ?=

.PHONY: install demo test test-all lint browser bench clean

install: $(STAMP)

$(STAMP): pyproject.toml setup.py requirements/lock.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	@test -x $(UV) || $(BIN)/python -m pip install -q "uv==$(UV_VERSION)"
	$(UV) pip install --python $(BIN)/python -r requirements/lock.txt
	# sam2 builds from source against the torch above: no CUDA extension, no build isolation
	SAM2_BUILD_CUDA=0 $(UV) pip install --python $(BIN)/python --no-build-isolation --no-deps "sam2==$(SAM2_VERSION)"
	$(UV) pip install --python $(BIN)/python --no-deps -e .
	@touch $@

demo: install
	$(BIN)/slumwatch demo --out $(DEMO_OUT)

test: install
	$(BIN)/pytest $(PYTEST_ARGS)

test-all: install
	$(BIN)/pytest -m "" $(PYTEST_ARGS)

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .
	$(BIN)/mypy slumwatch catalogs models actors pipelines dashboards

# A real browser for the dashboard tests (Debian's Chromium; needs root and the Debian mirror).
browser:
	@command -v chromium >/dev/null 2>&1 || { apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null; }
	@chromium --version

bench: install
	@for b in benchmarks/*.py; do echo "== $$b"; $(BIN)/python $$b || exit 1; done

clean:
	rm -rf $(VENV) build dist *.egg-info out .pytest_cache .mypy_cache .ruff_cache
