"""The provisioner swap: the same inference Workspace, once with Karpenter core's own kwok
provider (a provisioner we did not write) and once with our gpu-provisioner's kwok cloud.

Only the workspace controller's settings differ between the two runs (the node class its
NodeClaims name). Each run: the Workspace reaches WorkspaceSucceeded=True on nodes the
provisioner made, its pods run there (kwok plays the kubelet), and deleting the Workspace
removes the NodeClaims and the nodes.
"""

from __future__ import annotations

import json
import secrets
import time
from pathlib import Path
from typing import Any

import pytest
from swap_support import SKU, SKU_GPUS, Provisioner
from wc_helpers.cluster import NODECLAIM, WORKSPACE, ControllerProcess

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE, POD
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane

pytestmark = pytest.mark.full

Obj = dict[str, Any]
PRESET = "test-tiny-llama"
WS_LABELS = "kaito.sh/workspace={name},kaito.sh/workspacenamespace={namespace}"


def workspace(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "count": 1,
            "instanceType": SKU,
            "labelSelector": {"matchLabels": {"apps": f"{name}-{secrets.token_hex(3)}"}},
        },
        "inference": {"preset": {"name": PRESET}},
    }


def conditions(obj: Obj) -> dict[str, Obj]:
    return {c["type"]: c for c in (obj.get("status") or {}).get("conditions") or []}


def check_node_origin(provisioner: str, node: Obj, claim: Obj) -> None:
    """The node is the one the provisioner under test made for this claim."""
    labels = node["metadata"]["labels"]
    assert node["spec"]["providerID"] == claim["status"]["providerID"]
    assert node["spec"]["providerID"].startswith("kwok://")
    assert labels["node.kubernetes.io/instance-type"] == SKU
    assert labels["karpenter.sh/registered"] == "true"
    assert labels["karpenter.sh/initialized"] == "true"
    # Accepted by both NodeClaim CRDs; Karpenter core would delete the claim once it expired.
    assert claim["spec"]["expireAfter"] == "Never"
    owners = node["metadata"].get("ownerReferences") or []
    assert [(o["kind"], o["name"]) for o in owners] == [("NodeClaim", claim["metadata"]["name"])]
    if provisioner == "karpenter":
        # Karpenter's kwok provider names nodes kwok-<claim>-<random> and stamps its own
        # instance-type labels; its capacity is the claim's requests, its GPUs in allocatable.
        assert node["metadata"]["name"].startswith(f"kwok-{claim['metadata']['name']}-")
        assert "karpenter.kwok.sh/instance-family" in labels
        assert node["status"]["allocatable"]["nvidia.com/gpu"] == SKU_GPUS
        assert claim["spec"]["nodeClassRef"]["kind"] == "KWOKNodeClass"
    else:
        assert node["metadata"]["name"] == claim["metadata"]["name"]
        assert node["status"]["capacity"]["nvidia.com/gpu"] == SKU_GPUS
        assert claim["spec"]["nodeClassRef"]["kind"] == "KaitoNodeClass"


def karpenter_errors(log_path: Path) -> list[str]:
    """Karpenter's error log lines, less the one it writes for claims without a NodePool (its
    cluster-cost tracker cannot find NodePool `kaito`; cosmetic, see docs/karpenter.md) and
    optimistic-concurrency conflicts, which it retries."""
    unexpected = []
    for line in log_path.read_text().splitlines():
        if '"level":"ERROR"' not in line:
            continue
        entry = json.loads(line)
        error = str(entry.get("error", ""))
        no_nodepool = entry.get("controller") == "state.nodeclaim" and error.startswith(
            'NodePool.karpenter.sh "kaito" not found'
        )
        if not no_nodepool and "the object has been modified" not in error:
            unexpected.append(line)
    return unexpected


async def test_inference_workspace_on_swapped_provisioner(
    provisioner: Provisioner,
    swap_plane: ControlPlane,
    swap_kube: KubeClient,
    tmp_path: Path,
) -> None:
    kube = swap_kube
    controller = ControllerProcess(swap_plane, tmp_path / "wc", *provisioner.controller_args)
    controller.start()
    try:
        await _run_swap(provisioner.name, kube, swap_plane, controller)
        if provisioner.name == "karpenter":
            assert karpenter_errors(provisioner.log_path) == []
    except BaseException:
        print(controller.log_path.read_text()[-6000:])
        raise
    finally:
        controller.stop()
        swap_plane.kubectl(
            "delete", "validatingwebhookconfiguration", "validation.workspace.kaito.sh",
            "--ignore-not-found",
        )  # fmt: skip


async def _run_swap(
    provisioner: str, kube: KubeClient, plane: ControlPlane, controller: ControllerProcess
) -> None:
    namespace = f"swap-{provisioner}-{secrets.token_hex(3)}"
    plane.kubectl("create", "namespace", namespace)
    name = "tiny"
    selector = WS_LABELS.format(name=name, namespace=namespace)
    started = time.monotonic()
    await kube.create(WORKSPACE, workspace(name, namespace))

    ws: Obj = {}

    async def succeeded() -> bool:
        nonlocal ws
        ws = await kube.get(WORKSPACE, name, namespace)
        return conditions(ws).get("WorkspaceSucceeded", {}).get("status") == "True"

    try:
        await eventually(succeeded, timeout_s=180, interval_s=0.5, what="WorkspaceSucceeded")
    except AssertionError:
        print(
            {t: (c["status"], c.get("reason"), c.get("message")) for t, c in conditions(ws).items()}
        )
        raise
    print(f"{provisioner}: WorkspaceSucceeded=True after {time.monotonic() - started:.1f}s")
    conds = conditions(ws)
    for type_ in ("NodeClaimReady", "NodesReady", "ResourceReady", "InferenceReady"):
        assert conds[type_]["status"] == "True", conds[type_]

    # The nodes came from the provisioner under test, through NodeClaims of this workspace.
    # (The workspace may succeed a moment before the provisioner marks the claim Initialized:
    # a Ready node with its GPUs is all it waits for.)
    claim: Obj = {}
    node: Obj = {}

    async def claim_ready() -> bool:
        nonlocal claim, node
        claims = await kube.list_all(NODECLAIM, label_selector=selector)
        assert len(claims) == 1, [c["metadata"]["name"] for c in claims]
        claim = claims[0]
        if conditions(claim).get("Ready", {}).get("status") != "True":
            return False
        node = await kube.get(NODE, claim["status"]["nodeName"])
        return bool(node["metadata"]["labels"].get("karpenter.sh/initialized") == "true")

    await eventually(claim_ready, timeout_s=30, interval_s=0.2, what="NodeClaim Ready")
    check_node_origin(provisioner, node, claim)
    assert ws["status"]["workerNodes"] == [node["metadata"]["name"]]

    # The inference pods run on that node (kwok plays its kubelet).
    pods = await kube.list_all(POD, namespace, label_selector=f"kaito.sh/workspace={name}")
    assert pods, "no inference pods"
    for pod in pods:
        assert pod["spec"]["nodeName"] == node["metadata"]["name"]
        assert pod["status"]["phase"] == "Running"

    # Deleting the workspace removes its NodeClaims and their nodes.
    started = time.monotonic()
    await kube.delete(WORKSPACE, name, namespace)

    async def all_gone() -> bool:
        left_ws = await kube.get_or_none(WORKSPACE, name, namespace)
        left_claims = await kube.list_all(NODECLAIM, label_selector=selector)
        left_nodes = await kube.list_all(NODE, label_selector=selector)
        return left_ws is None and not left_claims and not left_nodes

    await eventually(all_gone, timeout_s=120, interval_s=0.5, what="workspace, claims, nodes gone")
    print(f"{provisioner}: workspace, NodeClaim and node gone {time.monotonic() - started:.1f}s")
