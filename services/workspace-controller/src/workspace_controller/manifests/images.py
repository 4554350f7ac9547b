"""Which images the controller's pods run: the project's runtimes and the preset images.

The inference pods and the tuning Job resolve their main image the same way (`model_weights.py`):
the preset image, or the project's runtime with the weights copied from a model image.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.presets import Preset
from workspace_controller.manifests.model_weights import ModelWeights, resolve_weights
from workspace_controller.manifests.runner_access import RunnerAccess


def vllm_variant(image: str) -> str:
    """`r/inference-server:t` -> `r/inference-server-vllm:t`: the vLLM build of a server image."""
    head, slash, last = image.rpartition("/")
    for sep in ("@", ":"):
        if sep in last:
            name, _, ref = last.partition(sep)
            return f"{head}{slash}{name}-vllm{sep}{ref}"
    return f"{image}-vllm"


DEFAULT_RUNNER_IMAGE = "mcr.microsoft.com/aks/kaito/tuning-runner:0.1.0"
DEFAULT_SERVER_IMAGE = "mcr.microsoft.com/aks/kaito/inference-server:0.1.0"


@dataclass(frozen=True)
class ImageSettings:
    registry: str = "mcr.microsoft.com/aks/kaito"
    tag: str = "0.1.0"
    # The tuning runner: the tuning Job's fetch/push steps and the adapter puller.
    runner: str = DEFAULT_RUNNER_IMAGE
    # The inference server: the pods of presets whose weights come in a model image.
    server: str = DEFAULT_SERVER_IMAGE
    # The same on vLLM (the inference-server-vllm image), for those served by vLLM.
    server_vllm: str = ""
    # What the runner may reach (data allow-list, plain-HTTP registries, CA bundle).
    runner_access: RunnerAccess = field(default_factory=RunnerAccess)

    def server_for(self, runtime: str) -> str:
        """The runtime image of an inference pod served by `runtime`."""
        if runtime == L.RUNTIME_VLLM:
            return self.server_vllm or vllm_variant(self.server)
        return self.server

    def resolve(
        self, preset: Preset, runtime_image: str, private_image: str | None
    ) -> tuple[str, ModelWeights]:
        """(main container image, weights) of a pod of `preset` (model_weights.py)."""
        return resolve_weights(
            preset,
            runtime_image=runtime_image,
            private_image=private_image,
            registry=self.registry,
            tag=self.tag,
        )
