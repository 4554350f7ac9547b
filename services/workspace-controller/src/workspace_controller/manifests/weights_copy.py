"""The init container that copies a model image's weights into the pod's weights volume.

A model image's entrypoint takes one argument, the directory to copy its weights into
(docs/images.md): the container gets that argument, the emptyDir mounted there, and the locked
down security context of the project's other helper containers. The runtime container mounts the
same volume read-only at the same path. Nothing is added for weights inside the main image.
"""

from __future__ import annotations

from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights
from workspace_controller.manifests.runner import locked_down

WEIGHTS_VOLUME = "weights"
WEIGHTS_CONTAINER = "model-weights"


def weights_volumes(weights: ModelWeights) -> list[Obj]:
    if weights.image is None:
        return []
    return [{"name": WEIGHTS_VOLUME, "emptyDir": {}}]


def weights_mounts(weights: ModelWeights) -> list[Obj]:
    """The runtime container's read-only view of the copied weights."""
    if weights.image is None:
        return []
    return [{"name": WEIGHTS_VOLUME, "mountPath": weights.path, "readOnly": True}]


def weights_init_containers(weights: ModelWeights) -> list[Obj]:
    if weights.image is None:
        return []
    return [
        {
            "name": WEIGHTS_CONTAINER,
            "image": weights.image,
            "imagePullPolicy": "IfNotPresent",
            "args": [weights.path],
            "volumeMounts": [{"name": WEIGHTS_VOLUME, "mountPath": weights.path}],
            "terminationMessagePolicy": "FallbackToLogsOnError",
            "securityContext": locked_down(),
        }
    ]
