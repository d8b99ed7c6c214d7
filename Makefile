# warmpool developer entry points. `make help` lists them.
SHELL := /bin/bash
VENV ?= .venv
BIN := $(VENV)/bin
PYTEST_ARGS ?=

.PHONY: help setup test test-unit lint format crd demo demo-down clean

help: ## list the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  %-10s %s\n", $$1, $$2}'

setup: ## install the venv and build/install every real component (cached)
	hack/setup.sh

test: setup ## run every test tier (unit, integration, e2e) against the real components
	$(BIN)/pytest $(PYTEST_ARGS)

test-unit: ## run the pure unit tests only (no real components needed)
	hack/setup.sh python
	$(BIN)/pytest tests/unit $(PYTEST_ARGS)

lint: ## ruff (lint + format check) and mypy --strict
	$(BIN)/ruff check operator tests benchmarks hack
	$(BIN)/ruff format --check operator tests benchmarks hack
	$(BIN)/mypy

format: ## apply ruff's formatting and safe fixes
	$(BIN)/ruff check --fix operator tests benchmarks hack
	$(BIN)/ruff format operator tests benchmarks hack

crd: ## regenerate the CRD in crds/ and in the chart from the models
	hack/sync-crds.sh

demo: ## one real local node: chart installed, example pools Ready, a request at zero answered
	hack/demo.sh

demo-down: ## stop the demo and remove everything it started
	hack/demo-down.sh

clean: ## remove build and test leftovers in the clone (not the binary cache)
	rm -rf .demo .pytest_cache .mypy_cache .ruff_cache
