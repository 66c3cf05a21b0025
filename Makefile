# The README's two commands are `make demo` and `make test`. Everything they need is installed from here:
# a virtualenv in .venv, the Python packages from pyproject.toml, and the Kafka broker's jars from Maven
# Central into .cache/kafka (git-ignored).

PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed
KAFKA_STAMP = .cache/kafka/.fetched
PYTEST_ARGS ?=

.PHONY: help venv kafka test lint typecheck unit demo bench clean

help:
	@echo "make demo   - run the whole pipeline on the built-in simulator and a local Kafka broker"
	@echo "make test   - lint, type-check and run the full test suite (real Kafka broker included)"
	@echo "make bench  - throughput / CPU / memory benchmark (prints a table, saves JSON)"

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/pip install --quiet --upgrade pip
	$(BIN)/pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

$(KAFKA_STAMP): $(STAMP) connector/testbed/broker/pom.xml
	$(BIN)/python -m connector.testbed.broker fetch

kafka: $(KAFKA_STAMP)

lint: $(STAMP)
	$(BIN)/ruff check connector tests
	$(BIN)/ruff format --check connector tests

typecheck: $(STAMP)
	$(BIN)/mypy

unit: $(STAMP)
	$(BIN)/pytest -m unit tests/unit $(PYTEST_ARGS)

test: $(STAMP) $(KAFKA_STAMP) lint typecheck
	$(BIN)/pytest $(PYTEST_ARGS)

demo: $(STAMP) $(KAFKA_STAMP)
	$(BIN)/genesys-connector demo

bench: $(STAMP) $(KAFKA_STAMP)
	$(BIN)/python -m bench

clean:
	rm -rf $(VENV) .cache .mypy_cache .ruff_cache .pytest_cache
