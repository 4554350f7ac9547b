"""Pure parts of the swap: Karpenter's kwok instance types from our catalog, and GPUs that a
node reports in allocatable only (how Karpenter's kwok provider builds its nodes)."""

from __future__ import annotations

from swap_support import SKU, SKU_GPUS

from kaito_common.presets import default_catalog
from kaito_testing import karpenter
from workspace_controller.nodes.assessment import NodeRequest, assess
from workspace_controller.nodes.facts import gpu_capacity


def karpenter_kwok_node(allocatable_gpus: str | None) -> dict[str, object]:
    allocatable = {"cpu": "31900m", "memory": "262134Mi", "pods": "110", "storage": "10Gi"}
    if allocatable_gpus is not None:
        allocatable["nvidia.com/gpu"] = allocatable_gpus
    return {
        "metadata": {
            "name": "kwok-ws1-x",
            "labels": {"node.kubernetes.io/instance-type": SKU, "accelerator": "nvidia"},
        },
        # Karpenter's kwok provider: capacity = the claim's requests; allocatable adds the
        # instance type's resources.
        "status": {
            "capacity": {"storage": "10Gi"},
            "allocatable": allocatable,
            "conditions": [{"type": "Ready", "status": "True"}],
        },
    }


def test_gpus_in_allocatable_only_count() -> None:
    assert gpu_capacity(karpenter_kwok_node(SKU_GPUS)) == int(SKU_GPUS)
    assert gpu_capacity(karpenter_kwok_node(None)) == 0
    request = NodeRequest("ws", "ns", 1, SKU, {}, provision=False)
    assert assess([karpenter_kwok_node(SKU_GPUS)], [], request).nodes_ready
    missing = assess([karpenter_kwok_node(None)], [], request)
    assert missing.nodes_reason == "NodePluginsNotReady"


def test_instance_type_matches_catalog_sku() -> None:
    sku = default_catalog().sku(SKU)
    assert sku is not None
    it = karpenter.instance_type(sku)
    assert it["name"] == SKU
    assert it["resources"]["nvidia.com/gpu"] == str(sku.gpu_count) == SKU_GPUS
    assert it["operatingSystems"] == ["linux"] and it["architecture"] == "amd64"
    (offering,) = it["offerings"]
    keys = {r["key"]: r["values"] for r in offering["Requirements"]}
    assert keys == {
        "karpenter.sh/capacity-type": ["on-demand"],
        "topology.kubernetes.io/zone": [karpenter.ZONE],
    }
    ref = karpenter.NodeClass()
    assert (ref.group, ref.kind) == ("karpenter.kwok.sh", "KWOKNodeClass")


def test_claim_initialization_lagging_its_ready_node_does_not_hold_the_workspace() -> None:
    """On a real cloud Karpenter core may keep Kaito's claim Initialized=Unknown (its `storage`
    request never shows in allocatable); the claim's Ready node with GPUs is what counts."""
    node = karpenter_kwok_node(SKU_GPUS)
    node["metadata"]["labels"].update(  # type: ignore[index]
        {"kaito.sh/workspace": "ws", "kaito.sh/workspacenamespace": "ns"}
    )
    lagging_claim = {
        "metadata": {
            "name": "ws1",
            "labels": {"kaito.sh/workspace": "ws", "kaito.sh/workspacenamespace": "ns"},
        },
        "status": {
            "nodeName": "kwok-ws1-x",
            "conditions": [
                {"type": "Launched", "status": "True", "reason": "Launched"},
                {"type": "Registered", "status": "True", "reason": "Registered"},
                {
                    "type": "Initialized",
                    "status": "Unknown",
                    "reason": "ResourceNotRegistered",
                    "message": 'Resource "storage" was requested but not registered',
                },
                {"type": "Ready", "status": "Unknown", "reason": "ReconcilingDependents"},
            ],
        },
    }
    result = assess([node], [lagging_claim], NodeRequest("ws", "ns", 1, SKU, {}))
    assert result.ready and result.to_create == 0 and result.selected == ["kwok-ws1-x"]
    # Without its node the same claim is reported with Karpenter's own words.
    waiting = assess([], [lagging_claim], NodeRequest("ws", "ns", 1, SKU, {}))
    assert not waiting.claims_ready and "ResourceNotRegistered" in waiting.claims_message
