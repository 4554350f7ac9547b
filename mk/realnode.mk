# One real node (containerd + CNI + kubelet + kube-proxy) in the local cluster.
# See docs/real-node.md.

REALNODE_STATE = $(DEV_DIR)/cluster
REALNODE_IMAGES ?= localhost/kaito/workspace-controller:dev localhost/kaito/gpu-provisioner:dev \
  localhost/kaito/inference-server:dev

.PHONY: realnode-tools
realnode-tools: ## Install Debian's containerd, runc, CNI plugins, iptables, conntrack, busybox-static (idempotent)
	@bash hack/realnode/install.sh

.PHONY: realnode-images
realnode-images: ## Build the images the real-node tests run when buildah lacks them (make images rebuilds)
	@bash hack/realnode/ensure-images.sh

TEST_DEPS += realnode-tools realnode-images

.PHONY: cluster-up-real
cluster-up-real: install testbin realnode-tools ## cluster-up with one real node (kubelet + containerd); stop with cluster-down
	@$(PY) -m kaito_testing.devcluster up --profile node --timeout 300 \
	  --state $(REALNODE_STATE) --kubeconfig $(DEV_DIR)/kubeconfig

.PHONY: realnode-import
realnode-import: ## Link REALNODE_IMAGES from buildah's store into the running real node's containerd (no copy)
	@$(PY) -m kaito_testing.image_import \
	  --socket $(REALNODE_STATE)/work/node/containerd/containerd.sock $(REALNODE_IMAGES)

.PHONY: test-realnode
test-realnode: install testbin realnode-tools realnode-images ## The real-node tests (node, pods, Services, helm install)
	$(UV) run --frozen pytest libs/kaito-common/tests/realnode $(PYTEST_ARGS)
