# The two commands: `make run` (HTTPS on https://localhost:8443) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell sha1sum pyproject.toml | cut -c1-12)
VENDOR := casebridge/static/vendor/.built
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
export CASEBRIDGE_HOME ?= $(CURDIR)/var

.PHONY: run test install lint typecheck migrations-check test-sqlite test-postgres bench clean

$(STAMP): pyproject.toml
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --upgrade pip
	$(BIN)/pip install -q -e '.[dev]'
	@rm -f $(VENV)/.installed-*; touch $@

$(VENDOR): frontend/package.json frontend/package-lock.json frontend/build.mjs
	npm ci --prefix frontend --no-audit --no-fund --silent
	node frontend/build.mjs
	@touch $@

install: $(STAMP) $(VENDOR)

run: install
	$(BIN)/casebridge serve

lint: install
	$(BIN)/ruff check casebridge bench
	$(BIN)/ruff format --check casebridge bench

typecheck: install
	$(BIN)/mypy casebridge

migrations-check: install
	CASEBRIDGE_HOME=$(CURDIR)/var/test $(BIN)/casebridge makemigrations --check --dry-run

test-sqlite: install
	CASEBRIDGE_HOME=$(CURDIR)/var/test $(BIN)/pytest -q $(PYTEST_ARGS)

# PostgreSQL is required under CI=true; elsewhere it is used when reachable.
test-postgres: install
	@if $(BIN)/python -c "import psycopg,sys; psycopg.connect('$(PG_URL)', connect_timeout=3).close()" 2>/dev/null; then \
		CASEBRIDGE_HOME=$(CURDIR)/var/test DATABASE_URL=$(PG_URL) $(BIN)/pytest -q -m "not browser" $(PYTEST_ARGS); \
	elif [ "$$CI" = "true" ]; then echo "PostgreSQL at $(PG_URL) is required under CI=true" >&2; exit 1; \
	else echo "SKIPPED: PostgreSQL suite (no server at $(PG_URL))"; fi

test: lint typecheck migrations-check test-sqlite test-postgres

bench: install
	$(BIN)/python bench/run_all.py

clean:
	rm -rf $(VENV) frontend/node_modules casebridge/static/vendor var/test
