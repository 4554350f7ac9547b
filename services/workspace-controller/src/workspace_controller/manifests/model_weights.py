"""Where a pod's model weights come from, and so which image its main container runs.

Kaito's classic preset images carry the weights next to the runtime: the pod runs
`<registry>/kaito-<preset>:<tag>` and finds the model at the preset's weights path. A preset with
`source.delivery: model-image` ships its weights alone, in a model image
(`<registry>/kaito-model-<preset>:<tag>`): the pod runs the project's runtime image (the inference
server, or the tuning runner in a tuning Job) and an init container started from the model image
copies the weights into an emptyDir mounted at the weights path (`weights_copy.py`).

A private image (`accessMode: private` with `presetOptions.image`) replaces the image that holds
the weights: the preset image, or the model image.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from kaito_common.presets import Preset

WEIGHTS_DIR = "/workspace/weights"


@dataclass(frozen=True)
class ModelWeights:
    path: str = WEIGHTS_DIR  # where the runtime reads the model
    image: str | None = None  # model image copied by an init container; None: in the main image


def default_image_name(preset: Preset, registry: str, tag: str) -> str:
    prefix = "kaito-model-" if preset.source.delivery == "model-image" else "kaito-"
    return f"{registry}/{prefix}{preset.name}:{tag}"


def resolve_weights(
    preset: Preset,
    *,
    runtime_image: str,
    private_image: str | None,
    registry: str,
    tag: str,
) -> tuple[str, ModelWeights]:
    """(the main container's image, the weights) for a pod running `preset`."""
    path = preset.source.local_path or WEIGHTS_DIR
    holder = private_image or preset.source.image or default_image_name(preset, registry, tag)
    if preset.source.delivery == "model-image":
        return runtime_image, ModelWeights(path, holder)
    return holder, ModelWeights(path, None)


def hf_token_env(secret: str) -> dict[str, Any]:
    """`HF_TOKEN` from the `modelAccessSecret` (models fetched from the hub at start); optional so
    that a Secret without the key does not keep the pod from starting."""
    return {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret, "key": "HF_TOKEN", "optional": True}},
    }
