# Inference server: benchmark against `transformers serve` (sequential and continuous batching).
.PHONY: bench-inference
bench-inference: install ## Inference server throughput/TTFT vs transformers serve (prints RESULT)
	-$(PY) bench/inference/run_bench.py $(BENCH_INFERENCE_ARGS)

BENCH_TARGETS += bench-inference
