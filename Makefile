# hauswissen: `make run` sets everything up and serves the UI; `make test` sets up and checks everything.
SHELL := /bin/bash
VENV := .venv
BIN := $(VENV)/bin
export HF_HUB_OFFLINE := 1
export TRANSFORMERS_OFFLINE := 1
export DO_NOT_TRACK := 1
export SCARF_NO_ANALYTICS := true
export PIP_CONSTRAINT := $(CURDIR)/constraints.txt

.PHONY: run test setup models ingest-samples lint pytest bench clean

## run: install, prepare the default model, ingest examples/docs, serve UI + worker on 127.0.0.1:8501
run: setup models ingest-samples
	$(BIN)/hauswissen serve

## test: install, then lint (ruff), types (mypy), layering (import-linter) and the whole test suite
test: setup models lint pytest

setup:
	@scripts/bootstrap.sh

models:
	@$(BIN)/hauswissen prepare

ingest-samples:
	@$(BIN)/hauswissen ingest

lint:
	$(BIN)/ruff check .
	$(BIN)/mypy
	$(BIN)/lint-imports

pytest:
	$(BIN)/pytest

## bench: retrieval and ingestion benchmarks (tables with baselines)
bench: setup
	$(BIN)/python -m bench
	$(BIN)/python -m bench ingest

clean:
	rm -rf data test-artifacts .pytest_cache .mypy_cache .ruff_cache
