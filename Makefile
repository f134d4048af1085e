# The two commands a new user needs: `make run` and `make test`. Only Python 3.11+ is required.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
RUNTIME := $(VENV)/.runtime-installed
DEV := $(VENV)/.dev-installed
# GOV.UK Frontend's compiled CSS, fonts and JavaScript for the pages (from the npm registry's package).
FRONTEND := $(VENV)/share/govuk-frontend/.govuk-frontend-6.3.0

.PHONY: run demo test test-fast lint format bench bench-smoke soak worker clean

$(BIN)/python:
	@$(PYTHON) -c 'import sys; sys.exit(0 if sys.version_info >= (3, 11) else "Python 3.11 or newer is needed")'
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip

$(RUNTIME): requirements.lock pyproject.toml | $(BIN)/python
	$(BIN)/pip install --quiet -r requirements.lock
	$(BIN)/pip install --quiet --no-deps -e .
	@touch $@

$(FRONTEND): scripts/fetch_frontend.py | $(BIN)/python
	$(BIN)/python scripts/fetch_frontend.py $(VENV)/share/govuk-frontend

$(DEV): requirements-dev.lock $(RUNTIME) $(FRONTEND)
	$(BIN)/pip install --quiet -r requirements-dev.lock
	@touch $@

## Start the API, the finance listener and the interim sync on an embedded SQLite database.
run: $(RUNTIME) $(FRONTEND)
	$(BIN)/accounts serve

## Load demonstration data (300 tenures, a year of rent and payments) into the database `make run` uses.
## Running it again doubles nothing.
demo: $(RUNTIME)
	$(BIN)/accounts demo load

## Run the listener, outbox relay and interim sinks alone (against ACCOUNTS_BROKER_URL).
worker: $(RUNTIME)
	$(BIN)/accounts worker

## The whole test suite: unit, integration (SQLite, PostgreSQL, RabbitMQ, SQS via moto) and e2e.
test: $(DEV)
	$(BIN)/pytest -q

test-fast: $(DEV)
	$(BIN)/pytest -q tests/unit

lint: $(DEV)
	$(BIN)/ruff check src tests bench
	$(BIN)/ruff format --check src tests bench
	$(BIN)/mypy

format: $(DEV)
	$(BIN)/ruff check --fix src tests bench
	$(BIN)/ruff format src tests bench

## Benchmarks of both topologies (embedded; PostgreSQL + RabbitMQ on this machine), as ratios to
## ceilings measured in the same run; writes docs/benchmarks.md. bench-smoke: tiny sizes, never a time.
bench: $(DEV)
	$(BIN)/python -m bench

bench-smoke: $(DEV)
	$(BIN)/python -m bench --smoke

## The long crash soak (100,000 events, not in CI).
soak: $(DEV)
	$(BIN)/python -m bench.soak

clean:
	rm -rf $(VENV) var .pytest_cache .mypy_cache .ruff_cache
