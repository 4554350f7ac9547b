# Container images of the four services, built and run with buildah (no Docker daemon).
# See docs/images.md.

IMAGE_REPO ?= localhost/kaito
IMAGE_TAG ?= dev
export IMAGE_REPO IMAGE_TAG

.PHONY: image-tools
image-tools: ## Install buildah, debootstrap and docker-compose from Debian (idempotent)
	@bash hack/images/install-tools.sh

.PHONY: base-image
base-image: image-tools ## debian:bookworm-slim equivalent from debootstrap, committed with buildah
	@bash hack/images/base-image.sh

.PHONY: images
images: image-tools base-image ## Build the four service images with buildah (layers and downloads cached)
	@bash hack/images/build.sh

.PHONY: image-vllm
image-vllm: image-tools base-image ## The inference server on vLLM (VLLM_TARGET=gpu|cpu; ~6 GB, needs ~20 GB free disk)
	@bash hack/images/build.sh inference-server-vllm

.PHONY: images-push
images-push: image-tools ## Push the built images to REGISTRY=<host[:port]/path> [TAG= AUTHFILE= TLS_VERIFY=false COMPRESSION=zstd]
	@REGISTRY="$(REGISTRY)" TAG="$(TAG)" AUTHFILE="$(AUTHFILE)" TLS_VERIFY="$(TLS_VERIFY)" \
	  COMPRESSION="$(COMPRESSION)" bash hack/images/push.sh

.PHONY: compose-config
compose-config: image-tools ## Check docker-compose.test.yml with docker-compose config
	@docker-compose -f docker-compose.test.yml config --quiet && echo "docker-compose.test.yml is valid"

.PHONY: smoke-images
smoke-images: install testbin install-registry compose-config ## Start each built image with buildah run; check it answers as non-root
	$(UV) run --frozen pytest hack/images/tests -p no:cacheprovider $(PYTEST_ARGS)
