# Reliability under faults (issue 19): controller chaos (kills, API server restart, 410 Gone,
# leader failover) and cloud chaos (bench/chaos/cloud.py). See docs/reliability.md.
# Prerequisites and details print to stderr: stdout is the one RESULT line.

.PHONY: chaos
chaos: ## Controller + cloud chaos on the local control plane; prints one RESULT line
	@$(MAKE) --no-print-directory -s install testbin >&2
	@$(PY) bench/chaos/run.py
