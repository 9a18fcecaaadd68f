# The two commands: `make run` (HTTPS on https://localhost:8443) and `make test` (everything).
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed-$(shell cat pyproject.toml requirements.txt | sha1sum | cut -c1-12)
# How requirements.txt is resolved from pyproject.toml: every platform, Python 3.11 and later, hashes.
LOCK_ARGS := pyproject.toml --extra dev --generate-hashes --universal --python-version 3.11 -o requirements.txt
VENDOR := casebridge/static/vendor/.built
PG_URL ?= postgres://postgres@127.0.0.1:5432/test
export CASEBRIDGE_HOME ?= $(CURDIR)/var

.PHONY: run test install lint typecheck migrations-check test-sqlite test-postgres bench clean lock upgrade

# Exactly the locked set: every package pinned with its hashes, nothing resolved at install time
# (--no-deps), the build backend from the lock too (--no-build-isolation). `pip check` proves the
# set is complete and consistent.
$(STAMP): pyproject.toml requirements.txt
	@test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/pip install -q --require-hashes --no-deps -r requirements.txt
	$(BIN)/pip install -q --no-deps --no-build-isolation -e .
	$(BIN)/pip check
	@rm -f $(VENV)/.installed-*; touch $@

$(VENDOR): frontend/package.json frontend/package-lock.json frontend/build.mjs $(wildcard frontend/src/*.js)
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

# Re-resolve the lock after a change to pyproject.toml, keeping every version that still fits.
lock:
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/pip install -q --require-hashes --no-deps -r requirements.txt; }
	$(BIN)/uv pip compile -q $(LOCK_ARGS)

# Newest versions of everything pyproject.toml allows (Python and npm), installed, then the whole suite.
upgrade:
	@test -x $(BIN)/uv || { test -x $(BIN)/python || $(PYTHON) -m venv $(VENV); $(BIN)/pip install -q --require-hashes --no-deps -r requirements.txt; }
	$(BIN)/uv pip compile -q --upgrade $(LOCK_ARGS)
	cd frontend && npm update --no-audit --no-fund
	$(MAKE) test

clean:
	rm -rf $(VENV) frontend/node_modules casebridge/static/vendor var/test
