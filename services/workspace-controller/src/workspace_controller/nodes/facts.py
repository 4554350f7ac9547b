"""Small readers of Node and NodeClaim objects (plain dicts)."""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

NODE_READY = "Ready"
"""The kubelet's condition on a Node (not a NodeClaim condition)."""


def node_ready(node: Obj) -> bool:
    return objects.condition_true(node, NODE_READY)


def gpu_capacity(node: Obj) -> int:
    """GPUs the node reports, in capacity or allocatable: a device plugin fills both, while
    Karpenter's kwok provider puts the instance type's GPUs in allocatable only."""
    status = node.get("status") or {}
    return max(
        objects.parse_count((status.get(field) or {}).get(L.RESOURCE_NVIDIA_GPU))
        for field in ("capacity", "allocatable")
    )


def belongs_to(obj: Obj, workspace: str, namespace: str) -> bool:
    labels = objects.labels(obj)
    return (
        labels.get(L.LABEL_WORKSPACE) == workspace
        and labels.get(L.LABEL_WORKSPACE_NAMESPACE) == namespace
    )


def claimed_by_other(obj: Obj, workspace: str, namespace: str) -> bool:
    """Labelled for a different workspace (its pods would not land here)."""
    labels = objects.labels(obj)
    if L.LABEL_WORKSPACE not in labels:
        return False
    return not belongs_to(obj, workspace, namespace)
