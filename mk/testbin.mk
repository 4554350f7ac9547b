# Local Kubernetes control plane: binaries (make testbin) and the developer cluster.
# See docs/development.md.

TESTBIN_BUILD := hack/testbin/build.sh
DEV_DIR := .dev

.PHONY: testbin
testbin: ## Build etcd, kube-*, kubectl, kwok, helm from hack/testbin/versions.env (cached)
	@bash $(TESTBIN_BUILD) >/dev/null

TEST_DEPS += testbin

.PHONY: testbin-dir
testbin-dir: ## Print the directory holding the control plane's binaries
	@bash $(TESTBIN_BUILD) --print-dir

.PHONY: cluster-up
cluster-up: install testbin ## Start the full local control plane in the background (.dev/kubeconfig)
	@$(PY) -m kaito_testing.devcluster up --state $(DEV_DIR)/cluster --kubeconfig $(DEV_DIR)/kubeconfig

.PHONY: cluster-down
cluster-down: ## Stop the local control plane started by cluster-up
	@$(PY) -m kaito_testing.devcluster down --state $(DEV_DIR)/cluster --kubeconfig $(DEV_DIR)/kubeconfig
