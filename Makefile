# Kaito in Python — developer entry points. `make help` lists them.
SHELL := /bin/bash
.DEFAULT_GOAL := help

export UV_SYSTEM_CERTS ?= 1
# Hardlinks from uv's cache: each venv (.venv, .venv-vllm; one more per CI clone) holds ~6 GiB of
# wheels (torch) that would otherwise be copied; uv falls back to copying across filesystems.
export UV_LINK_MODE ?= hardlink
UV ?= $(shell command -v uv 2>/dev/null || echo $(HOME)/.local/bin/uv)
PY := .venv/bin/python
PYTEST_ARGS ?=

# Area makefiles (mk/*.mk) add their own targets and append to BENCH_TARGETS (benchmarks
# run by `make bench`) and TEST_DEPS (things `make pytest` needs installed first).
BENCH_TARGETS :=
TEST_DEPS :=
-include mk/*.mk

.PHONY: help
help: ## List the targets
	@grep -hE '^[a-zA-Z0-9_.-]+:.*?## ' $(MAKEFILE_LIST) | sort -u | \
	  awk 'BEGIN {FS = ":.*?## "}; {printf "  \033[36m%-18s\033[0m %s\n", $$1, $$2}'

.PHONY: uv
uv: ## Install uv when the machine lacks it
	@command -v uv >/dev/null 2>&1 || [ -x $(HOME)/.local/bin/uv ] || python3 -m pip install --user --quiet uv

.venv/.installed: uv pyproject.toml uv.lock libs/*/pyproject.toml services/*/pyproject.toml
	$(UV) sync --all-packages --frozen
	@touch $@

.PHONY: install
install: .venv/.installed ## Create the development environment in .venv (uv, all packages)

.PHONY: lint
lint: install ## ruff check + format check
	$(UV) run --frozen ruff check libs services bench
	$(UV) run --frozen ruff format --check libs services bench

.PHONY: fmt
fmt: install ## Apply ruff fixes and formatting
	$(UV) run --frozen ruff check --fix libs services bench
	$(UV) run --frozen ruff format libs services bench

.PHONY: typecheck
typecheck: install ## mypy --strict on libs and services
	$(UV) run --frozen mypy

.PHONY: crds
crds: install ## Generate crds/ from the pydantic models
	$(PY) -m kaito_common.crdgen --out crds

.PHONY: verify-crds
verify-crds: install ## Fail when crds/ is stale
	$(PY) -m kaito_common.crdgen --out crds --check

.PHONY: pytest
pytest: install $(TEST_DEPS) ## Run the test suite only
	$(UV) run --frozen pytest $(PYTEST_ARGS)

.PHONY: test
test: lint typecheck chart-check verify-crds pytest ## Everything CI runs: lint, typecheck, verify-crds, tests

.PHONY: bench
bench: install $(BENCH_TARGETS) ## Run every benchmark (prints ratios; never fails the build)

.PHONY: demo
demo: install ## The main job on a local embedded setup
	bash hack/demo.sh
