"""The Services in front of the inference pods."""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj

HTTP_PORT = 80
SERVER_PORT = 5000
TORCH_PORT = 29500


def headless_service_name(workspace_name: str) -> str:
    return f"{workspace_name}-headless"


def service_manifest(
    name: str,
    namespace: str,
    owner: Obj,
    *,
    load_balancer: bool,
    stateful: bool,
) -> Obj:
    """Service `<ws>`: `http 80→5000` and `torch 29500`; for a multi-node preset (``stateful``)
    only pod 0 serves."""
    selector = {L.LABEL_WORKSPACE: name}
    if stateful:
        selector["statefulset.kubernetes.io/pod-name"] = f"{name}-0"
    manifest: Obj = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {L.LABEL_WORKSPACE: name},
            "ownerReferences": [owner],
        },
        "spec": {
            "type": "LoadBalancer" if load_balancer else "ClusterIP",
            "selector": selector,
            "ports": [
                {"name": "http", "protocol": "TCP", "port": HTTP_PORT, "targetPort": SERVER_PORT},
                {"name": "torch", "protocol": "TCP", "port": TORCH_PORT, "targetPort": TORCH_PORT},
            ],
        },
    }
    if stateful:
        # Multi-node: pod 0 answers on the torch port while the others join. Otherwise only
        # Ready pods get requests (a loading surge pod must not).
        manifest["spec"]["publishNotReadyAddresses"] = True
    return manifest


def headless_service_manifest(name: str, namespace: str, owner: Obj) -> Obj:
    """`<ws>-headless`: the StatefulSet's governing Service (stable DNS names for its pods)."""
    return {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {
            "name": headless_service_name(name),
            "namespace": namespace,
            "labels": {L.LABEL_WORKSPACE: name},
            "ownerReferences": [owner],
        },
        "spec": {
            "clusterIP": "None",
            "selector": {L.LABEL_WORKSPACE: name},
            "ports": [
                {"name": "torch", "protocol": "TCP", "port": TORCH_PORT, "targetPort": TORCH_PORT}
            ],
            "publishNotReadyAddresses": True,
        },
    }
