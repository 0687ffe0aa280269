# One set of targets for people and CI (.ci/run calls `make test`).
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: dev test lint type fmt unit bench clean

# The virtual environment, (re)installed when pyproject.toml changes.
$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	touch $(STAMP)

## dev: the whole stack (embedded Postgres and NATS unless FLOWCRON_DATABASE_URL/NATS_URL are set)
dev: $(STAMP)
	$(BIN)/flowcron dev

## test: lint, type-check and every test (unit, integration, end to end)
test: lint type
	$(BIN)/pytest -p no:cacheprovider

unit: $(STAMP)
	$(BIN)/pytest -p no:cacheprovider tests/unit

lint: $(STAMP)
	$(BIN)/ruff check .
	$(BIN)/ruff format --check .

type: $(STAMP)
	$(BIN)/mypy .

fmt: $(STAMP)
	$(BIN)/ruff format .
	$(BIN)/ruff check --fix .

bench: $(STAMP)
	$(BIN)/python bench/scheduler.py

clean:
	rm -rf $(VENV) .mypy_cache .ruff_cache .pytest_cache
