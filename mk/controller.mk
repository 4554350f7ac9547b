# Workspace controller: the developer environment and its benchmark.
# See docs/workspace-controller.md.

.PHONY: dev-up
dev-up: install testbin ## Local cluster + CRDs + every hack/dev/start-*.sh controller (logs in .dev/)
	@bash hack/dev/up.sh

.PHONY: dev-down
dev-down: ## Stop the controllers started by dev-up, then the local cluster
	@bash hack/dev/down.sh

.PHONY: bench-controller
bench-controller: install testbin ## 100 Workspaces at once: time to ready, reconciles, writes, RSS
	$(PY) bench/controller/bench_controller.py

BENCH_TARGETS += bench-controller
