# Tuning runner: the registry the tests push to, and the tuning benchmark.

.PHONY: install-registry
install-registry: ## Install Debian's docker-registry and htpasswd for the registry tests
	bash hack/install-registry.sh

TEST_DEPS += install-registry

.PHONY: bench-tuning
bench-tuning: install ## Tuning benchmark: ours vs Kaito's TRL SFTTrainer recipe (prints ratios)
	-$(PY) bench/tuning/run.py

BENCH_TARGETS += bench-tuning
