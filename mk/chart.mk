# The umbrella Helm chart (charts/kaito) and the demo. See docs/installation.md.

CHART := charts/kaito
HELM = $(shell bash hack/testbin/build.sh --print-dir)/helm

.PHONY: chart-crds
chart-crds: crds ## Copy the generated crds/ into the chart (charts/kaito/files/crds)
	cp crds/*.yaml $(CHART)/files/crds/

.PHONY: chart-lint
chart-lint: testbin ## helm lint --strict, default values and gpu-provisioner.enabled=false
	$(HELM) lint --strict $(CHART)
	$(HELM) lint --strict $(CHART) --set gpu-provisioner.enabled=false

.PHONY: chart-template
chart-template: testbin ## Render the chart with its default values to stdout
	@$(HELM) template kaito $(CHART) --namespace kaito-workspace

.PHONY: chart-test
chart-test: install testbin ## The chart's tests: lint, template, dry-run, helm install + e2e
	$(UV) run --frozen pytest charts/tests $(PYTEST_ARGS)

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started (controllers, server, registry, control plane)
	.venv/bin/python hack/demo/demo.py down

.PHONY: chart-check
chart-check: install ## ruff + mypy --strict on the chart tests and the demo (outside libs/services)
	$(UV) run --frozen ruff check charts/tests hack/demo
	$(UV) run --frozen ruff format --check charts/tests/*.py hack/demo/*.py
	MYPYPATH=charts/tests $(UV) run --frozen mypy --strict hack/demo/*.py charts/tests/*.py
