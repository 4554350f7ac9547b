"""The init container that copies a weights image's files into the pod's weights volume.

A weights image's entrypoint takes one argument, the directory to copy its weights into
(docs/images.md): the container gets that argument, the weights volume mounted there, and the
locked down security context of the project's other helper containers.
"""

from __future__ import annotations

from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights
from workspace_controller.manifests.runner import locked_down

WEIGHTS_VOLUME = "weights"
COPY_CONTAINER = "model-weights"


def copy_container(weights: ModelWeights) -> Obj:
    assert weights.image is not None
    return {
        "name": COPY_CONTAINER,
        "image": weights.image,
        "imagePullPolicy": "IfNotPresent",
        "args": [weights.path],
        "volumeMounts": [{"name": WEIGHTS_VOLUME, "mountPath": weights.path}],
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": locked_down(),
    }
