"""The weights volume of a pod and what fills it (model_weights.py says which way applies).

- download: an emptyDir sized to the preset's disk need, or the Workspace's weights cache PVC
  when the chart sets `weightsCache.storageClass`; filled by `weights_download.py`.
- model-image: an emptyDir filled by `weights_copy.py`.
- volume: the user's PVC (read-only) or host path.

The runtime container always mounts the volume read-only at the weights path.
"""

from __future__ import annotations

from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights
from workspace_controller.manifests.weights_copy import WEIGHTS_VOLUME, copy_container
from workspace_controller.manifests.weights_download import SCRATCH_VOLUME, download_container


def weights_volumes(weights: ModelWeights) -> list[Obj]:
    if weights.source is None:
        return []
    scratch: list[Obj] = []
    if weights.source == "download":
        scratch = [{"name": SCRATCH_VOLUME, "emptyDir": {}}]
    return [_weights_volume(weights), *scratch]


def _weights_volume(weights: ModelWeights) -> Obj:
    if weights.claim:
        claim: Obj = {"claimName": weights.claim}
        if weights.source == "volume":
            claim["readOnly"] = True
        return {"name": WEIGHTS_VOLUME, "persistentVolumeClaim": claim}
    if weights.host_path:
        return {
            "name": WEIGHTS_VOLUME,
            "hostPath": {"path": weights.host_path, "type": "Directory"},
        }
    empty_dir: Obj = {"sizeLimit": f"{weights.size_gib}Gi"} if weights.size_gib else {}
    return {"name": WEIGHTS_VOLUME, "emptyDir": empty_dir}


def weights_mounts(weights: ModelWeights) -> list[Obj]:
    """The runtime container's read-only view of the weights."""
    if weights.source is None:
        return []
    return [{"name": WEIGHTS_VOLUME, "mountPath": weights.path, "readOnly": True}]


def weights_init_containers(
    weights: ModelWeights,
    hf_endpoint: str = "",
    token_secret: str | None = None,
    log_format: str = "text",
) -> list[Obj]:
    if weights.source == "download":
        return [download_container(weights, hf_endpoint, token_secret, log_format)]
    if weights.source == "model-image":
        return [copy_container(weights)]
    return []
