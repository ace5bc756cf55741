# Run `make help` for the list. Every target sets itself up first, so any one works on a fresh clone.
VENV ?= .venv
BIN := $(VENV)/bin

.DEFAULT_GOAL := help
.PHONY: help setup run test test-fast lint format clean clean-all

help: ## List the targets
	@grep -E '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | awk -F':.*## ' '{printf "  make %-9s %s\n", $$1, $$2}'

setup: ## Create .venv, install the package with its extras, install Java for Spark when missing
	@bash scripts/setup.sh

run: setup ## The main job on embedded defaults: synthesize data if none, validate, train, register in MLflow
	$(BIN)/taxi-duration run

test: setup ## Run the test suite, every tier (Spark tests share one local session)
	$(BIN)/pytest

test-fast: setup ## Run the unit tier only, on every core: no Spark, no training, no server (under two minutes)
	$(BIN)/pytest -m unit -n auto

lint: setup ## ruff lint and format check, mypy on the package, the layer order of its sub-packages
	$(BIN)/ruff check src tests scripts benchmarks notebooks
	$(BIN)/ruff format --check src tests scripts benchmarks notebooks
	$(BIN)/mypy src
	$(BIN)/lint-imports --no-logo --no-cache

format: setup ## Apply ruff fixes and formatting
	$(BIN)/ruff check --fix src tests scripts benchmarks notebooks
	$(BIN)/ruff format src tests scripts benchmarks notebooks

clean: ## Remove generated data and caches; keeps .venv and the MLflow runs and registry (data/mlflow)
	@echo "make clean: removing data/ but data/mlflow (runs and registered models stay: make clean-all removes them), and caches"
	@[ ! -d data ] || find data -mindepth 1 -maxdepth 1 ! -name mlflow -exec rm -rf {} +
	rm -rf .pytest_cache .ruff_cache .mypy_cache spark-warehouse

clean-all: clean ## Also remove data/mlflow: every MLflow run, artifact and registered model version
	@echo "make clean-all: removing data/mlflow: every MLflow run, artifact and registered model version (the champion too)"
	rm -rf data
