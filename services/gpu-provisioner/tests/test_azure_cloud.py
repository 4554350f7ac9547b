"""The azure cloud, through the real azure-mgmt-containerservice SDK, against the fake ARM and
the full local control plane."""

from __future__ import annotations

import asyncio
import datetime as dt

import pytest
from gp_support import (
    StartProvisioner,
    claim_name,
    condition,
    is_ready,
    kaito_nodeclaim,
    provisioner_settings,
)

from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_testing.controllers import eventually
from kaito_testing.fakearm import FakeArm
from kaito_testing.fakearm.aks import node_name

pytestmark = pytest.mark.full


async def _ready(kube: KubeClient, name: str) -> bool:
    return is_ready(await kube.get_or_none(NODECLAIM, name))


async def _all_ready(kube: KubeClient, names: list[str]) -> bool:
    return all(await asyncio.gather(*(_ready(kube, n) for n in names)))


async def test_claim_becomes_ready_with_the_agent_pool_the_spec_describes(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    manifest = kaito_nodeclaim(
        name,
        sku="Standard_NC12s_v3",
        storage="120Gi",
        image_family="AzureLinux",
        extra_labels={"apps": "phi-3"},
    )
    await kube.create(NODECLAIM, manifest)
    await eventually(lambda: _ready(kube, name), timeout_s=30, what="the NodeClaim to be Ready")

    [body] = fake_arm.create_bodies[name]
    props = body["properties"]
    assert props["type"] == "VirtualMachineScaleSets"
    assert props["count"] == 1
    assert props["osType"] == "Linux"
    assert props["vmSize"] == "Standard_NC12s_v3"
    assert props["osDiskSizeGB"] == 120
    assert props["osSKU"] == "AzureLinux"
    assert props["nodeTaints"] == ["sku=gpu:NoSchedule"]
    labels = props["nodeLabels"]
    created = dt.datetime.strptime(labels.pop("kaito.sh/creation-timestamp"), "%Y-%m-%dT%H-%M-%SZ")
    assert abs((dt.datetime.now() - created).total_seconds()) < 3600 * 24
    assert labels == {
        **manifest["metadata"]["labels"],
        "karpenter.sh/nodepool": "kaito",
        "kaito.sh/machine-type": "gpu",
    }

    claim = await kube.get(NODECLAIM, name)
    node = await kube.get(NODE, node_name(name))
    # The providerID is the Node's own (lower-cased resource group), copied verbatim.
    assert claim["status"]["providerID"] == node["spec"]["providerID"]
    assert "/resourceGroups/mc_kaitorg_kaito-aks_eastus/" in claim["status"]["providerID"]
    assert claim["status"]["nodeName"] == node_name(name)
    assert claim["status"]["capacity"]["nvidia.com/gpu"] == "2"
    assert claim["status"]["imageID"].startswith("AKSUbuntu")
    assert node["metadata"]["labels"]["karpenter.sh/initialized"] == "true"
    assert node["metadata"]["labels"]["karpenter.sh/registered"] == "true"

    await kube.delete(NODECLAIM, name)

    async def gone() -> bool:
        return (
            await kube.get_or_none(NODECLAIM, name) is None
            and await kube.get_or_none(NODE, node_name(name)) is None
            and name not in fake_arm.pools
        )

    await eventually(gone, timeout_s=30, what="claim, node and agent pool to be gone")


async def test_quota_error_shows_in_launched_and_clears_when_quota_is_raised(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.quota_exceeded_sizes.add("Standard_NC24s_v3")
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_NC24s_v3"))

    async def launch_failed() -> bool:
        cond = condition(await kube.get_or_none(NODECLAIM, name), "Launched")
        return cond is not None and cond["reason"] == "LaunchFailed"

    await eventually(launch_failed, timeout_s=20, what="Launched to report LaunchFailed")
    claim = await kube.get(NODECLAIM, name)
    launched = condition(claim, "Launched")
    assert launched is not None and launched["status"] == "Unknown"
    assert "(QuotaExceeded)" in launched["message"]
    assert "standardNCSv3Family Cores quota" in launched["message"]
    ready = condition(claim, "Ready")
    assert ready is not None and ready["status"] == "Unknown"
    assert ready["reason"] == "ReconcilingDependents"
    assert name not in fake_arm.pools

    fake_arm.faults.quota_exceeded_sizes.clear()
    await eventually(lambda: _ready(kube, name), timeout_s=30, what="Ready once quota is raised")


async def test_unavailable_sku_is_a_terminal_launch_failure(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.unavailable_sizes.add("Standard_ND96isr_H200_v5")
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    await kube.create(NODECLAIM, kaito_nodeclaim(name, sku="Standard_ND96isr_H200_v5"))

    async def failed() -> bool:
        cond = condition(await kube.get_or_none(NODECLAIM, name), "Launched")
        return cond is not None and cond["status"] == "False"

    await eventually(failed, timeout_s=20, what="Launched=False")
    claim = await kube.get(NODECLAIM, name)
    launched = condition(claim, "Launched")
    assert launched is not None and launched["reason"] == "SKUNotAvailable"
    assert "is not available in location 'eastus'" in launched["message"]
    ready = condition(claim, "Ready")
    assert ready is not None
    assert (ready["status"], ready["reason"], ready["message"]) == (
        "False",
        "UnhealthyDependents",
        "Launched=False",
    )


async def test_throttling_and_server_errors_still_end_ready_without_leaks(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.throttle_rate = 0.1
    fake_arm.faults.error_rate = 0.1
    fake_arm.faults.retry_after_s = 1
    # Few SDK retries, so that some failures reach the controller and its own backoff.
    await start_provisioner(arm=fake_arm, retry_total=1)
    names = [claim_name() for _ in range(8)]
    for name in names:
        await kube.create(NODECLAIM, kaito_nodeclaim(name))
    await eventually(lambda: _all_ready(kube, names), timeout_s=90, what="all claims Ready")
    assert sorted(fake_arm.pools) == sorted(names)
    assert fake_arm.injected[429] > 0 and fake_arm.injected[500] > 0

    for name in names:
        await kube.delete(NODECLAIM, name)

    async def all_gone() -> bool:
        left = [n for n in names if await kube.get_or_none(NODECLAIM, n) is not None]
        return not left and not fake_arm.pools

    await eventually(all_gone, timeout_s=90, what="all claims and pools gone")


async def test_create_that_crashes_midway_is_retried_on_the_same_pool(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.crash_next_creates = 1
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    await kube.create(NODECLAIM, kaito_nodeclaim(name))
    await eventually(lambda: _ready(kube, name), timeout_s=30, what="Ready after the crash")
    assert list(fake_arm.pools) == [name]
    assert len(fake_arm.create_bodies[name]) == 2  # the failed create, then the repair PUT


async def test_claim_deleted_mid_create_deletes_its_pool(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    fake_arm.faults.hold_creates = asyncio.Event()
    await start_provisioner(arm=fake_arm)
    name = claim_name()
    await kube.create(NODECLAIM, kaito_nodeclaim(name))
    await eventually(lambda: name in fake_arm.pools, timeout_s=20, what="the pool to be creating")
    await kube.delete(NODECLAIM, name)

    async def gone() -> bool:
        return await kube.get_or_none(NODECLAIM, name) is None and name not in fake_arm.pools

    await eventually(gone, timeout_s=30, what="claim and pool gone")


async def test_leaked_pool_is_garbage_collected_and_foreign_pools_are_kept(
    kube: KubeClient, fake_arm: FakeArm, start_provisioner: StartProvisioner
) -> None:
    old = (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).strftime("%Y-%m-%dT%H-%M-%SZ")
    fake_arm.seed_pool(
        "wsleaked1",
        {
            "vmSize": "Standard_NC6s_v3",
            "nodeLabels": {
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": "gone",
                "kaito.sh/creation-timestamp": old,
            },
        },
    )
    fake_arm.seed_pool("nodepool1", {"vmSize": "Standard_D4s_v3", "mode": "System"})
    await start_provisioner(provisioner_settings(gc_interval_s=0.5), arm=fake_arm)
    await eventually(
        lambda: "wsleaked1" not in fake_arm.pools, timeout_s=20, what="the leaked pool collected"
    )
    assert "nodepool1" in fake_arm.pools
