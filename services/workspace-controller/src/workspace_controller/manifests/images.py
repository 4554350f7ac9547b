"""Which images the controller's pods run: the project's runtimes and the preset images.

The inference pods and the tuning Job resolve their main image the same way (`model_weights.py`):
the preset image, or the project's runtime with the weights copied from a model image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.presets import Preset
from workspace_controller.manifests.model_weights import (
    ModelWeights,
    WeightsCache,
    WeightsRequest,
    resolve_weights,
)
from workspace_controller.manifests.runner_access import RunnerAccess


def vllm_variant(image: str) -> str:
    """`r/inference-server:t` -> `r/inference-server-vllm:t`: the vLLM build of a server image."""
    head, slash, last = image.rpartition("/")
    for sep in ("@", ":"):
        if sep in last:
            name, _, ref = last.partition(sep)
            return f"{head}{slash}{name}-vllm{sep}{ref}"
    return f"{image}-vllm"


def project_image(registry: str, name: str, tag: str) -> str:
    """`<registry>/<name>:<tag>`: one of the project's images in the registry it was pushed to."""
    return f"{registry.rstrip('/')}/{name}:{tag}"


# What `make images` builds (mk/images.mk: IMAGE_REPO, IMAGE_TAG); the chart passes the registry
# and tag its images were pushed with (`global.image.registry`, `global.image.tag`).
DEFAULT_IMAGE_REGISTRY = "localhost/kaito"
DEFAULT_IMAGE_TAG = "dev"
SERVER_IMAGE_NAME = "inference-server"
RUNNER_IMAGE_NAME = "tuning-runner"
DEFAULT_RUNNER_IMAGE = project_image(DEFAULT_IMAGE_REGISTRY, RUNNER_IMAGE_NAME, DEFAULT_IMAGE_TAG)
DEFAULT_SERVER_IMAGE = project_image(DEFAULT_IMAGE_REGISTRY, SERVER_IMAGE_NAME, DEFAULT_IMAGE_TAG)


@dataclass(frozen=True)
class ImageSettings:
    # Registry and tag of the weights images (`<registry>/kaito-model-<preset>:<tag>`).
    registry: str = DEFAULT_IMAGE_REGISTRY
    tag: str = DEFAULT_IMAGE_TAG
    # The tuning runner: the tuning Job's fetch/push steps and the adapter puller.
    runner: str = DEFAULT_RUNNER_IMAGE
    # The inference server: the pods of presets whose weights come in a model image.
    server: str = DEFAULT_SERVER_IMAGE
    # The same on vLLM (the inference-server-vllm image), for those served by vLLM.
    server_vllm: str = ""
    # What the runner may reach (data allow-list, plain-HTTP registries, CA bundle).
    runner_access: RunnerAccess = field(default_factory=RunnerAccess)
    # Image pull Secrets (names, in the workload's namespace) of the registry the images come from.
    pull_secrets: tuple[str, ...] = ()
    # Where "download at start" downloads from ("" = huggingface.co; a mirror, or the tests' hub).
    hf_endpoint: str = ""
    # The chart's weightsCache: a PVC per Workspace keeps downloaded weights across pods.
    weights_cache: WeightsCache = field(default_factory=WeightsCache)

    def server_for(self, runtime: str) -> str:
        """The runtime image of an inference pod served by `runtime`."""
        if runtime == L.RUNTIME_VLLM:
            return self.server_vllm or vllm_variant(self.server)
        return self.server

    def resolve(
        self,
        preset: Preset,
        runtime_image: str,
        *,
        workspace: str,
        annotations: Mapping[str, str],
        private_image: str | None,
    ) -> tuple[str, ModelWeights]:
        """(main container image, weights) of a pod of `preset` (model_weights.py): the main
        container always runs the runtime image; the weights reach their volume by the preset's
        delivery or the Workspace's choice."""
        request = WeightsRequest(
            workspace=workspace,
            runtime_image=runtime_image,
            annotations=annotations,
            private_image=private_image,
            registry=self.registry,
            tag=self.tag,
            cache=self.weights_cache,
        )
        return runtime_image, resolve_weights(preset, request)
