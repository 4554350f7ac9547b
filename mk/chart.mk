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
chart-template: testbin ## Render the chart with the images `make images` builds to stdout
	@$(HELM) template kaito $(CHART) --namespace kaito-workspace \
	  --set global.image.registry=$(IMAGE_REPO) --set global.image.tag=$(IMAGE_TAG)

.PHONY: chart-test
chart-test: install testbin ## The chart's tests: lint, template, dry-run, helm install + e2e
	$(UV) run --frozen pytest charts/tests $(PYTEST_ARGS)

.PHONY: demo-down
demo-down: ## Stop everything `make demo` started (either form: processes, registry, hub, control plane + node)
	.venv/bin/python hack/demo/demo.py down

.PHONY: chart-check
chart-check: install ## ruff + mypy --strict on the chart tests and the demo (outside libs/services)
	$(UV) run --frozen ruff check charts/tests hack/demo
	$(UV) run --frozen ruff format --check charts/tests/*.py hack/demo/*.py
	MYPYPATH=charts/tests:hack/demo $(UV) run --frozen mypy --strict hack/demo/*.py charts/tests/*.py
