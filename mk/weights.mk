# Model weights: weights-only OCI images of presets, built with buildah (docs/images.md,
# "Model images"). The download-at-start init container needs no make target: it runs
# `python -m kaito_common.weights download` inside the runtime images.

PRESET ?=
FROM ?=
IMAGE ?=
WEIGHTS_CACHE ?= .dev/weights-cache

.PHONY: model-image
model-image: install image-tools ## Weights image of a preset: PRESET=name [FROM=dir] [IMAGE=name] (HF_TOKEN, HF_ENDPOINT)
	@test -n "$(PRESET)" || { echo "usage: make model-image PRESET=<preset> [FROM=<model dir>] [IMAGE=<image>]" >&2; exit 2; }
	$(PY) -m kaito_common.weights build-image \
	  --image "$(or $(IMAGE),$(IMAGE_REPO)/kaito-model-$(PRESET):$(IMAGE_TAG))" \
	  --cache-dir "$(WEIGHTS_CACHE)" \
	  $(if $(FROM),--from "$(FROM)",--preset "$(PRESET)")
