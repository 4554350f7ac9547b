"""The weights cache: a PersistentVolumeClaim that keeps downloaded weights across pods.

With the chart's `weightsCache.storageClass` set, a Workspace whose weights are downloaded at
start gets a claim `<ws>-weights` of that class (ReadWriteOnce, the preset's disk need unless
`weightsCache.size` says otherwise), owned by the Workspace so that it goes with it. The
download finds a finished copy there and does not repeat it. A StatefulSet (multi-node presets)
gets one claim per pod from a volume claim template instead, since its pods sit on different
nodes.
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj
from workspace_controller.manifests.model_weights import ModelWeights
from workspace_controller.manifests.weights_copy import WEIGHTS_VOLUME


def _claim_spec(weights: ModelWeights) -> Obj:
    return {
        "accessModes": ["ReadWriteOnce"],
        "storageClassName": weights.cache_storage_class,
        "resources": {"requests": {"storage": weights.cache_size}},
    }


def uses_weights_cache(weights: ModelWeights) -> bool:
    return weights.source == "download" and bool(weights.cache_storage_class and weights.claim)


def weights_claim_manifest(
    weights: ModelWeights, workspace: str, namespace: str, owner: Obj
) -> Obj:
    assert weights.claim is not None
    return {
        "apiVersion": "v1",
        "kind": "PersistentVolumeClaim",
        "metadata": {
            "name": weights.claim,
            "namespace": namespace,
            "labels": {L.LABEL_WORKSPACE: workspace},
            "ownerReferences": [owner],
        },
        "spec": _claim_spec(weights),
    }


def weights_claim_template(weights: ModelWeights, workspace: str) -> Obj:
    """The StatefulSet's volume claim template (its pods get `weights-<ws>-<ordinal>`)."""
    return {
        "metadata": {"name": WEIGHTS_VOLUME, "labels": {L.LABEL_WORKSPACE: workspace}},
        "spec": _claim_spec(weights),
    }
