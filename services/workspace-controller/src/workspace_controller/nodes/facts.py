"""Small readers of Node and NodeClaim objects (plain dicts)."""

from __future__ import annotations

from typing import Any

from kaito_common.api import labels as L

Obj = dict[str, Any]


def labels_of(obj: Obj) -> dict[str, str]:
    return dict((obj.get("metadata") or {}).get("labels") or {})


def name_of(obj: Obj) -> str:
    return str((obj.get("metadata") or {}).get("name") or "")


def condition(obj: Obj, type_: str) -> Obj | None:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def condition_true(obj: Obj, type_: str) -> bool:
    cond = condition(obj, type_)
    return cond is not None and cond.get("status") == "True"


def is_deleting(obj: Obj) -> bool:
    return bool((obj.get("metadata") or {}).get("deletionTimestamp"))


def node_ready(node: Obj) -> bool:
    return condition_true(node, "Ready")


def parse_count(quantity: Any) -> int:
    """An integer resource quantity ("1", 2, "1k"); anything unparsable counts as 0."""
    text = str(quantity or "0").strip()
    try:
        if text.endswith("k"):
            return int(text[:-1]) * 1000
        return int(float(text))
    except ValueError:
        return 0


def gpu_capacity(node: Obj) -> int:
    """GPUs the node reports, in capacity or allocatable: a device plugin fills both, while
    Karpenter's kwok provider puts the instance type's GPUs in allocatable only."""
    status = node.get("status") or {}
    return max(
        parse_count((status.get(field) or {}).get(L.RESOURCE_NVIDIA_GPU))
        for field in ("capacity", "allocatable")
    )


def belongs_to(obj: Obj, workspace: str, namespace: str) -> bool:
    labels = labels_of(obj)
    return (
        labels.get(L.LABEL_WORKSPACE) == workspace
        and labels.get(L.LABEL_WORKSPACE_NAMESPACE) == namespace
    )


def claimed_by_other(obj: Obj, workspace: str, namespace: str) -> bool:
    """Labelled for a different workspace (its pods would not land here)."""
    labels = labels_of(obj)
    if L.LABEL_WORKSPACE not in labels:
        return False
    return not belongs_to(obj, workspace, namespace)
