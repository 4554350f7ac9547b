"""The weights cache: a PersistentVolumeClaim that keeps downloaded weights across pods.

With the chart's `weightsCache.storageClass` set, weights downloaded at start go to a claim of
that class (ReadWriteOnce, the preset's disk need unless `weightsCache.size` says otherwise), where
a restarted pod finds the finished copy: one per inference pod from the StatefulSet's claim
template (its pods may sit on different nodes), and `<ws>-weights`, owned by the Workspace, for a
tuning Job.
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
