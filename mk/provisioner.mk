# gpu-provisioner: benchmark and local dev helpers. See docs/gpu-provisioner.md.

.PHONY: bench-provisioner
bench-provisioner: install testbin ## 50 NodeClaims against the fake ARM (2 s ops); prints RESULT
	$(PY) bench/provisioner/run.py --claims 50 --op-latency-s 2

BENCH_TARGETS += bench-provisioner
