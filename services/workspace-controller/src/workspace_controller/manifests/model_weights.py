"""Where a pod's model weights come from. The pod always runs one of the project's runtime images
(the inference server, its vLLM build, or the tuning runner); the weights reach the weights
volume, mounted at the preset's weights path, one of three ways (docs/presets.md):

- ``download``: an init container in the same runtime image downloads the preset's repository
  at the catalog's pinned commit from the Hugging Face hub (`weights_download.py`);
- ``model-image``: an init container started from a weights-only OCI image
  (`<registry>/kaito-model-<preset>:<tag>`, or a private `presetOptions.image`) copies them
  (`weights_copy.py`);
- ``volume``: a volume the user gives (a PVC or a host path) already holds them.

The preset's catalog entry names the default; the `kaito.sh/weights-source` annotation chooses
another (`download`, `image`, `volume`, the last with `kaito.sh/weights-volume-claim` or
`kaito.sh/weights-host-path`). A private `presetOptions.image` always means `model-image`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Literal

from kaito_common.api import labels as L
from kaito_common.presets import Preset

WEIGHTS_DIR = "/workspace/weights"

WeightsSource = Literal["download", "model-image", "volume"]

# The annotation's values, as a user writes them, to the delivery they mean.
SOURCE_VALUES: Mapping[str, WeightsSource] = {
    "download": "download",
    "image": "model-image",
    "model-image": "model-image",
    "volume": "volume",
}


class WeightsSourceError(ValueError):
    """The Workspace asks for weights in a way that cannot work (the webhook says it first)."""


@dataclass(frozen=True)
class WeightsCache:
    """The chart's `weightsCache`: a PVC keeps downloaded weights across pod replacements."""

    storage_class: str = ""
    size: str = ""  # "" = the preset's disk need


@dataclass(frozen=True)
class ModelWeights:
    path: str = WEIGHTS_DIR  # where the runtime reads the model
    source: WeightsSource | None = None  # None: nothing to fill (weights at a local path)
    image: str | None = None  # model-image: the image copied by the init container
    repo: str = ""  # download: the Hugging Face repository ...
    revision: str = ""  # ... at this commit
    downloader_image: str = ""  # download: the runtime image that runs the download
    trust_remote_code: bool = False  # download: also fetch the repository's *.py files
    size_gib: int = 0  # the preset's disk need: the emptyDir's size limit, the PVC's request
    claim: str | None = None  # a PVC holding the weights (the user's, or the weights cache)
    host_path: str | None = None  # volume: a directory on the node
    cache_storage_class: str = ""  # download: the weights cache PVC's storage class ...
    cache_size: str = ""  # ... and its size (default: the preset's disk need)

    @property
    def filled(self) -> bool:
        """An init container fills the volume (download or copy)."""
        return self.source in ("download", "model-image")


def default_image_name(preset: Preset, registry: str, tag: str) -> str:
    """The weights image `make model-image PRESET=<name>` builds."""
    return f"{registry}/kaito-model-{preset.name}:{tag}"


def weights_source(preset: Preset, annotations: Mapping[str, str], private: bool) -> WeightsSource:
    if private:
        return "model-image"
    value = annotations.get(L.ANNOTATION_WEIGHTS_SOURCE, "").strip().lower()
    if not value:
        return preset.source.delivery
    if value not in SOURCE_VALUES:
        raise WeightsSourceError(
            f"metadata.annotations[{L.ANNOTATION_WEIGHTS_SOURCE}]: {value!r} is not one of "
            f"{', '.join(sorted(set(SOURCE_VALUES) - {'model-image'}))}"
        )
    return SOURCE_VALUES[value]


def cache_claim_name(workspace: str) -> str:
    return f"{workspace}-weights"


@dataclass(frozen=True)
class WeightsRequest:
    """What decides a pod's weights besides the preset."""

    workspace: str
    runtime_image: str
    annotations: Mapping[str, str]
    private_image: str | None
    registry: str
    tag: str
    cache: WeightsCache = WeightsCache()


def resolve_weights(preset: Preset, request: WeightsRequest) -> ModelWeights:
    """The weights of a pod running `preset` (its main container runs `request.runtime_image`)."""
    path = preset.source.local_path or WEIGHTS_DIR
    annotations = request.annotations
    source = weights_source(preset, annotations, request.private_image is not None)
    if source == "model-image":
        image = (
            request.private_image
            or preset.source.image
            or default_image_name(preset, request.registry, request.tag)
        )
        return ModelWeights(path, "model-image", image=image, size_gib=preset.disk_gib)
    if source == "volume":
        claim = annotations.get(L.ANNOTATION_WEIGHTS_VOLUME_CLAIM) or None
        host_path = annotations.get(L.ANNOTATION_WEIGHTS_HOST_PATH) or None
        if (claim is None) == (host_path is None):
            if preset.source.local_path and claim is None and host_path is None:
                return ModelWeights(path, None)  # test presets: the weights are on the node
            raise WeightsSourceError(
                f"metadata.annotations: weights-source volume needs exactly one of "
                f"{L.ANNOTATION_WEIGHTS_VOLUME_CLAIM} or {L.ANNOTATION_WEIGHTS_HOST_PATH}"
            )
        return ModelWeights(path, "volume", claim=claim, host_path=host_path)
    uses_remote_code = bool(
        any(params.get("trust_remote_code") for params in preset.runtimes.values())
    )
    cache = request.cache
    return ModelWeights(
        path,
        "download",
        repo=preset.source.repo,
        revision=preset.source.revision,
        downloader_image=request.runtime_image,
        trust_remote_code=uses_remote_code,
        size_gib=preset.disk_gib,
        claim=cache_claim_name(request.workspace) if cache.storage_class else None,
        cache_storage_class=cache.storage_class,
        cache_size=(cache.size or f"{preset.disk_gib}Gi") if cache.storage_class else "",
    )


def hf_token_env(secret: str) -> dict[str, Any]:
    """`HF_TOKEN` from the `modelAccessSecret` (models fetched from the hub at start); optional so
    that a Secret without the key does not keep the pod from starting."""
    return {
        "name": "HF_TOKEN",
        "valueFrom": {"secretKeyRef": {"name": secret, "key": "HF_TOKEN", "optional": True}},
    }
