"""What an earlier release of this project left in a cluster, for the tests of its migration.

Up to this release a single-node preset ran as a Deployment `<ws>` (maxSurge 1); now every preset
runs as a StatefulSet `<ws>` as upstream's does, and the controller moves a Workspace over
without a gap (services/workspace-controller, inference/reconcile.py).
"""

from __future__ import annotations

from typing import Any

from kaito_common.controller.meta import controller_reference

Obj = dict[str, Any]


def earlier_release_deployment(workspace: Obj, statefulset: Obj) -> Obj:
    """The Deployment `<ws>` the earlier release made for ``workspace``, with the pod template
    of its current ``statefulset``."""
    meta = statefulset["metadata"]
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {
            "name": meta["name"],
            "namespace": meta["namespace"],
            "labels": dict(meta.get("labels") or {}),
            "annotations": dict(meta.get("annotations") or {}),
            "ownerReferences": [controller_reference(workspace)],
        },
        "spec": {
            "replicas": int(statefulset["spec"]["replicas"]),
            "selector": statefulset["spec"]["selector"],
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": statefulset["spec"]["template"],
        },
    }
