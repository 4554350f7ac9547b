"""The inference workload: a StatefulSet `<ws>` for every preset (as upstream), or a Deployment
of the user's own pod template."""

from __future__ import annotations

import copy

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj
from workspace_controller.inference.plan import InferencePlan
from workspace_controller.inference.pod import pod_template
from workspace_controller.inference.rollout import RolloutStep
from workspace_controller.inference.service import headless_service_name
from workspace_controller.manifests.placement import (
    GPU_TOLERATIONS,
    NodeAffinity,
    affinity_manifest,
)
from workspace_controller.manifests.weights_claim import (
    uses_weights_cache,
    weights_claim_template,
)
from workspace_controller.manifests.weights_copy import WEIGHTS_VOLUME


def _metadata(name: str, namespace: str, owner: Obj, revision: str) -> Obj:
    return {
        "name": name,
        "namespace": namespace,
        "labels": {L.LABEL_WORKSPACE: name},
        "annotations": {L.ANNOTATION_WORKSPACE_REVISION: revision},
        "ownerReferences": [owner],
    }


def statefulset_manifest(plan: InferencePlan, owner: Obj, step: RolloutStep | None = None) -> Obj:
    """StatefulSet `<ws>` (pods `<ws>-0` ..., headless Service `<ws>-headless`, parallel pod
    management). ``step`` (single-node presets, inference/rollout.py) sets the replicas and the
    partition of a surging update; multi-node presets update in place (one instance spans
    every pod)."""
    template = pod_template(plan)
    replicas, partition = (step.replicas, step.partition) if step else (plan.replicas, 0)
    manifest: Obj = {
        "apiVersion": "apps/v1",
        "kind": "StatefulSet",
        "metadata": _metadata(plan.name, plan.namespace, owner, plan.revision),
        "spec": {
            "replicas": replicas,
            "podManagementPolicy": "Parallel",
            "serviceName": headless_service_name(plan.name),
            "selector": {"matchLabels": {L.LABEL_WORKSPACE: plan.name}},
            "updateStrategy": {"type": "RollingUpdate", "rollingUpdate": {"partition": partition}},
            "template": template,
        },
    }
    if uses_weights_cache(plan.weights):
        # One weights cache per pod (they may run on different nodes), from a claim template;
        # the surge pod's claim goes when it does.
        spec = template["spec"]
        spec["volumes"] = [v for v in spec["volumes"] if v["name"] != WEIGHTS_VOLUME]
        manifest["spec"]["volumeClaimTemplates"] = [weights_claim_template(plan.weights, plan.name)]
        manifest["spec"]["persistentVolumeClaimRetentionPolicy"] = {
            "whenScaled": "Delete",
            "whenDeleted": "Retain",
        }
    return manifest


def template_deployment_manifest(
    name: str,
    namespace: str,
    owner: Obj,
    template: Obj,
    *,
    replicas: int,
    revision: str,
    affinity: NodeAffinity,
) -> Obj:
    """A Deployment of the user's own pod template; label, affinity and tolerations forced."""
    pod = copy.deepcopy(template)
    meta = pod.setdefault("metadata", {})
    meta.setdefault("labels", {})[L.LABEL_WORKSPACE] = name
    meta.setdefault("annotations", {})[L.ANNOTATION_WORKSPACE_REVISION] = revision
    spec = pod.setdefault("spec", {})
    forced = affinity_manifest(affinity)
    node_affinity = forced.get("nodeAffinity")
    if node_affinity:
        spec.setdefault("affinity", {})["nodeAffinity"] = node_affinity
    tolerations = list(spec.get("tolerations") or [])
    for toleration in GPU_TOLERATIONS:
        if toleration not in tolerations:
            tolerations.append(dict(toleration))
    spec["tolerations"] = tolerations
    return {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": _metadata(name, namespace, owner, revision),
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {L.LABEL_WORKSPACE: name}},
            "strategy": {
                "type": "RollingUpdate",
                "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0},
            },
            "template": pod,
        },
    }
