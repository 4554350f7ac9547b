"""Node qualification, selection, NodeClaim shortfall and readiness messages."""

from __future__ import annotations

from typing import Any

from workspace_controller.nodes.assessment import NodeRequest, assess, select_nodes

SKU = "Standard_NC6s_v3"


def node(name: str, *, ready: bool = True, gpus: int = 1, **labels: str) -> dict[str, Any]:
    base = {"node.kubernetes.io/instance-type": SKU, "apps": "phi-3"}
    base.update({k.replace("__", "/").replace("_", "."): v for k, v in labels.items()})
    return {
        "metadata": {"name": name, "labels": base},
        "status": {
            "conditions": [{"type": "Ready", "status": "True" if ready else "False"}],
            "capacity": {"nvidia.com/gpu": str(gpus)},
        },
    }


def claim(name: str, *, ready: bool = False, node_name: str | None = None, **conds: Any) -> dict:
    conditions = [{"type": "Ready", "status": "True" if ready else "Unknown"}]
    for type_, (status, reason, message) in conds.items():
        conditions.append({"type": type_, "status": status, "reason": reason, "message": message})
    status: dict[str, Any] = {"conditions": conditions}
    if node_name:
        status["nodeName"] = node_name
    return {
        "metadata": {
            "name": name,
            "labels": {"kaito.sh/workspace": "ws", "kaito.sh/workspacenamespace": "ns"},
        },
        "status": status,
    }


def request(**kw: Any) -> NodeRequest:
    args: dict[str, Any] = dict(
        workspace="ws", namespace="ns", target=1, instance_type=SKU, match_labels={"apps": "phi-3"}
    )
    args.update(kw)
    return NodeRequest(**args)


def test_no_nodes_creates_claims_for_the_shortfall() -> None:
    result = assess([], [], request(target=2))
    assert result.to_create == 2 and not result.ready
    assert "0 of 2 Ready node(s) with instance type Standard_NC6s_v3" in result.nodes_message


def test_claims_coming_up_are_not_created_again() -> None:
    result = assess([], [claim("ws1")], request(target=2))
    assert result.to_create == 1
    assert result.claims_pending == ["ws1"]


def test_provider_error_is_carried_into_the_message() -> None:
    failing = claim("ws1", Launched=("Unknown", "LaunchFailed", "quota exceeded for NCv3 family"))
    result = assess([], [failing], request())
    assert result.to_create == 0
    assert "quota exceeded for NCv3 family" in result.nodes_message
    assert result.claims_reason == "NodeClaimLaunchFailed"


def test_qualification_rules() -> None:
    nodes = [
        node("wrong-sku", **{"node.kubernetes.io/instance-type": "other"}),
        node("not-ready", ready=False),
        node("other-ws", **{"kaito.sh/workspace": "x", "kaito.sh/workspacenamespace": "ns"}),
        node("no-label", apps="nope"),
        node("good"),
    ]
    nodes[0]["metadata"]["labels"]["node.kubernetes.io/instance-type"] = "other"
    nodes[2]["metadata"]["labels"].update(
        {"kaito.sh/workspace": "x", "kaito.sh/workspacenamespace": "ns"}
    )
    nodes[3]["metadata"]["labels"]["apps"] = "nope"
    assert [n["metadata"]["name"] for n in select_nodes(nodes, request(target=5))] == ["good"]
    preferred = node("byo")
    preferred["metadata"]["labels"]["node.kubernetes.io/instance-type"] = "unknown"
    chosen = select_nodes([node("a"), preferred], request(target=1, preferred=("byo",)))
    assert [n["metadata"]["name"] for n in chosen] == ["byo"]


def test_selection_order_prefers_previous_then_provisioned() -> None:
    provisioned = node("b")
    provisioned["metadata"]["labels"]["karpenter.sh/nodepool"] = "kaito"
    nodes = [node("a"), provisioned, node("c")]
    names = [n["metadata"]["name"] for n in select_nodes(nodes, request(previous=("c",)))]
    assert names == ["c"]
    names = [n["metadata"]["name"] for n in select_nodes(nodes, request())]
    assert names == ["b"]


def test_gpu_capacity_and_accelerator_label() -> None:
    result = assess([node("n", gpus=0)], [], request())
    assert not result.nodes_ready and result.nodes_reason == "NodePluginsNotReady"
    assert "nvidia.com/gpu" in result.nodes_message
    assert result.needs_accelerator_label == ["n"]
    labelled = node("n")
    labelled["metadata"]["labels"]["accelerator"] = "nvidia"
    result = assess([labelled], [], request())
    assert result.ready and result.needs_accelerator_label == [] and result.to_create == 0


def test_ready_claim_with_ready_node_is_ready() -> None:
    n = node("n")
    n["metadata"]["labels"].update(
        {"kaito.sh/workspace": "ws", "kaito.sh/workspacenamespace": "ns"}
    )
    result = assess([n], [claim("ws1", ready=True, node_name="n")], request())
    assert result.ready and result.provisioned and result.selected == ["n"]


def test_byo_never_creates_claims() -> None:
    result = assess([], [], request(provision=False))
    assert result.to_create == 0 and "bring-your-own" in result.nodes_message
