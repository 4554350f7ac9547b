"""Where a workspace's pods run and what they ask of the node: affinity, tolerations, GPUs.

The inference pods and the tuning Job land on the same nodes the same way: the user's label
selector (less the keys the controller owns), the workspace's own nodes when the controller
provisioned them, and tolerations of the GPU and SKU taints.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kaito_common.api import labels as L
from kaito_common.api.workspace import Workspace
from kaito_common.controller.objects import Obj
from kaito_common.presets import GPUSku, Preset

GPU_TOLERATIONS: list[Obj] = [
    {"key": L.RESOURCE_NVIDIA_GPU, "operator": "Exists", "effect": "NoSchedule"},
    {
        "key": L.TAINT_SKU_KEY,
        "operator": "Equal",
        "value": L.TAINT_SKU_VALUE,
        "effect": "NoSchedule",
    },
]


@dataclass(frozen=True)
class NodeAffinity:
    """Required node affinity: the user's selector, plus the workspace's own nodes when
    the controller provisioned them."""

    match_labels: dict[str, str] = field(default_factory=dict)
    in_expressions: tuple[tuple[str, tuple[str, ...]], ...] = ()
    workspace: str | None = None


def node_affinity(ws: Workspace, provisioned: bool) -> NodeAffinity:
    selector = ws.resource.label_selector
    labels = {
        k: v for k, v in (selector.match_labels or {}).items() if k not in L.RESERVED_SELECTOR_KEYS
    }
    expressions = tuple(
        (e.key, tuple(e.values or ()))
        for e in selector.match_expressions or ()
        if e.operator == "In" and e.key not in L.RESERVED_SELECTOR_KEYS
    )
    return NodeAffinity(labels, expressions, ws.metadata.name if provisioned else None)


def affinity_manifest(affinity: NodeAffinity) -> Obj:
    expressions: list[Obj] = [
        {"key": k, "operator": "In", "values": [v]}
        for k, v in sorted(affinity.match_labels.items())
    ]
    expressions += [
        {"key": k, "operator": "In", "values": list(values)}
        for k, values in affinity.in_expressions
    ]
    if affinity.workspace:
        expressions.append(
            {"key": L.LABEL_WORKSPACE, "operator": "In", "values": [affinity.workspace]}
        )
    if not expressions:
        return {}
    return {
        "nodeAffinity": {
            "requiredDuringSchedulingIgnoredDuringExecution": {
                "nodeSelectorTerms": [{"matchExpressions": expressions}]
            }
        }
    }


def gpu_request(sku: GPUSku | None, preset: Preset | None) -> int:
    if sku is not None:
        return sku.gpu_count
    return preset.gpu_count if preset is not None else 0


def gpu_resources(gpus: int) -> Obj:
    """The container's `resources`: the GPUs as request and limit, or nothing."""
    if gpus <= 0:
        return {}
    request = {L.RESOURCE_NVIDIA_GPU: str(gpus)}
    return {"requests": dict(request), "limits": dict(request)}
