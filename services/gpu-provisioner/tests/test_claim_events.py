"""The Events `kubectl describe nodeclaim` shows: each lifecycle step once (kwok cloud), a
launch that the fake ARM refuses for quota as one Warning whose count is the number of attempts,
a SKU that is not offered as a Warning that says it is not retried, and the termination."""

from __future__ import annotations

import re
from typing import Any

import pytest
from gp_support import StartProvisioner, claim_name, is_ready, kaito_nodeclaim

from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import EVENT, NODE
from kaito_testing.controllers import eventually
from kaito_testing.fakearm import FakeArm

pytestmark = pytest.mark.full

Obj = dict[str, Any]


async def events_about(kube: KubeClient, uid: str) -> list[Obj]:
    # NodeClaims and Nodes are cluster-scoped: their Events are in `default`.
    return [e for e in await kube.list_all(EVENT, "default") if e["involvedObject"]["uid"] == uid]


async def wait_reasons(kube: KubeClient, uid: str, *reasons: str) -> dict[str, Obj]:
    found: dict[str, Obj] = {}

    async def seen() -> bool:
        nonlocal found
        found = {e["reason"]: e for e in await events_about(kube, uid)}
        return all(r in found for r in reasons)

    await eventually(seen, timeout_s=30, what=f"Events {', '.join(reasons)}")
    return found


async def test_each_lifecycle_step_is_one_event(
    kube: KubeClient, start_provisioner: StartProvisioner, control_plane: Any
) -> None:
    await start_provisioner()
    name = claim_name()
    created = await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_NC24ads_A100_v4"))
    uid = created["metadata"]["uid"]
    await eventually(lambda: _ready(kube, name), timeout_s=30, what="the NodeClaim to be Ready")
    found = await wait_reasons(kube, uid, "Launched", "Registered", "Initialized")
    assert sorted((e["type"], e["reason"], e["count"]) for e in found.values()) == [
        ("Normal", "Initialized", 1),
        ("Normal", "Launched", 1),
        ("Normal", "Registered", 1),
    ]
    assert found["Launched"]["message"] == f"Launched instance kwok://{name}, 1 GPU(s)"
    assert found["Registered"]["message"] == f"Registered node {name}"
    assert found["Launched"]["source"]["component"] == "gpu-provisioner"
    text = control_plane.kubectl("describe", "nodeclaim", name).stdout
    for reason in ("Launched", "Registered", "Initialized"):
        assert re.search(rf"Normal\s+{reason}\s+.*gpu-provisioner", text), text

    node_uid = (await kube.get(NODE, name))["metadata"]["uid"]
    await kube.delete(NODECLAIM, name)
    found = await wait_reasons(kube, uid, "Terminating", "Deleted")
    assert found["Terminating"]["count"] == 1
    assert f"draining node(s) {name}" in found["Terminating"]["message"]
    (node_deleted,) = await events_about(kube, node_uid)
    assert node_deleted["reason"] == "Deleted" and name in node_deleted["message"]
    assert node_deleted["involvedObject"]["kind"] == "Node"


async def test_a_quota_error_is_one_warning_counting_the_attempts(
    kube: KubeClient,
    fake_arm: FakeArm,
    start_provisioner: StartProvisioner,
    control_plane: Any,
) -> None:
    fake_arm.faults.quota_exceeded_sizes.add("Standard_NC24s_v3")
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    created = await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_NC24s_v3"))
    uid = created["metadata"]["uid"]

    async def retried() -> bool:
        events = [e for e in await events_about(kube, uid) if e["reason"] == "LaunchFailed"]
        return len(events) == 1 and events[0]["count"] >= 2

    await eventually(retried, timeout_s=30, what="a LaunchFailed Event seen twice")
    (failed,) = [e for e in await events_about(kube, uid) if e["reason"] == "LaunchFailed"]
    assert failed["type"] == "Warning"
    assert failed["message"].startswith("Launching the instance failed, retrying: ")
    assert "(QuotaExceeded)" in failed["message"]
    assert "standardNCSv3Family Cores quota" in failed["message"]
    text = control_plane.kubectl("describe", "nodeclaim", name).stdout
    assert re.search(r"Warning\s+LaunchFailed\s+.*\(x\d+ over .*\)\s+gpu-provisioner", text), text
    assert "(QuotaExceeded)" in text, text
    print(text)  # what a user sees (`pytest -s`)

    fake_arm.faults.quota_exceeded_sizes.clear()
    await wait_reasons(kube, uid, "Launched", "Registered", "Initialized")


async def test_an_unavailable_sku_says_it_is_not_retried(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.unavailable_sizes.add("Standard_ND96isr_H200_v5")
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    created = await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_ND96isr_H200_v5"))
    found = await wait_reasons(kube, created["metadata"]["uid"], "LaunchFailed")
    message = found["LaunchFailed"]["message"]
    assert message.startswith("Launching the instance failed and will not be retried"), message
    assert "is not available in location 'eastus'" in message


async def _ready(kube: KubeClient, name: str) -> bool:
    return is_ready(await kube.get_or_none(NODECLAIM, name))
