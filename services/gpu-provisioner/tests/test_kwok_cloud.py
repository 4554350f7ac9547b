"""The kwok cloud against the full local control plane: claim -> kwok Node -> Ready -> gone."""

from __future__ import annotations

import pytest
from gp_support import (
    TEST_LABEL,
    StartProvisioner,
    claim_name,
    condition,
    is_ready,
    kaito_nodeclaim,
)

from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_testing.controllers import eventually

pytestmark = pytest.mark.full


async def test_kwok_claim_becomes_ready_and_is_removed(
    kube: KubeClient, start_provisioner: StartProvisioner
) -> None:
    await start_provisioner()
    name = claim_name()
    await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_NC24ads_A100_v4"))

    async def ready() -> bool:
        return is_ready(await kube.get_or_none(NODECLAIM, name))

    await eventually(ready, timeout_s=30, what="the NodeClaim to be Ready")
    claim = await kube.get(NODECLAIM, name)
    for type_ in ("Launched", "Registered", "Initialized"):
        cond = condition(claim, type_)
        assert cond is not None and cond["status"] == "True" and cond["reason"] == type_
    assert [c["type"] for c in claim["status"]["conditions"]][-1] == "Ready"
    assert claim["status"]["providerID"] == f"kwok://{name}"
    assert claim["status"]["nodeName"] == name
    assert claim["metadata"]["labels"]["node.kubernetes.io/instance-type"] == (
        "Standard_NC24ads_A100_v4"
    )
    assert "karpenter.sh/termination" in claim["metadata"]["finalizers"]

    node = await kube.get(NODE, name)
    labels = node["metadata"]["labels"]
    assert labels["karpenter.sh/registered"] == "true"
    assert labels["karpenter.sh/initialized"] == "true"
    assert labels["kaito.sh/workspace"] == "ws-a"
    assert labels[TEST_LABEL] == "true"
    assert node["status"]["capacity"]["nvidia.com/gpu"] == "1"
    taints = {(t["key"], t["effect"]) for t in node["spec"].get("taints") or []}
    assert ("sku", "NoSchedule") in taints
    assert ("karpenter.sh/unregistered", "NoExecute") not in taints
    assert "karpenter.sh/termination" in node["metadata"]["finalizers"]
    owner = node["metadata"]["ownerReferences"][0]
    assert (owner["kind"], owner["name"]) == ("NodeClaim", name)

    await kube.delete(NODECLAIM, name)

    async def gone() -> bool:
        claim_left = await kube.get_or_none(NODECLAIM, name)
        node_left = await kube.get_or_none(NODE, name)
        return claim_left is None and node_left is None

    await eventually(gone, timeout_s=30, what="the NodeClaim and its Node to be gone")
