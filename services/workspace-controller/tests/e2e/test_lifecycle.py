"""Crash safety and deletion without the NodeClaim API."""

from __future__ import annotations

import asyncio

import pytest
from wc_helpers.cluster import NODECLAIM, WORKSPACE, ControllerProcess, install_crds

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import CUSTOM_RESOURCE_DEFINITION
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane

pytestmark = pytest.mark.full


def ws(name: str, namespace: str) -> dict[str, object]:
    return {
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": name}},
        },
        "inference": {"preset": {"name": "phi-3-mini-4k-instruct"}},
    }


async def claim_counts(kube: KubeClient, namespace: str) -> dict[str, int]:
    counts: dict[str, int] = {}
    for claim in await kube.list_all(
        NODECLAIM, label_selector=f"kaito.sh/workspacenamespace={namespace}"
    ):
        owner = claim["metadata"]["labels"]["kaito.sh/workspace"]
        counts[owner] = counts.get(owner, 0) + 1
    return counts


async def test_kill_mid_reconcile_and_restart_makes_no_duplicates(
    kube: KubeClient, namespace: str, controller: ControllerProcess
) -> None:
    names = [f"crash-{i}" for i in range(6)]
    for name in names:
        await kube.create(WORKSPACE, ws(name, namespace), namespace)

    async def some_claims() -> bool:
        return bool(await claim_counts(kube, namespace))

    await eventually(some_claims, timeout_s=30, interval_s=0.01, what="the first NodeClaim")
    controller.kill()
    controller.start()

    async def all_claims() -> bool:
        return set(await claim_counts(kube, namespace)) == set(names)

    await eventually(all_claims, timeout_s=60, what="a NodeClaim for every workspace")
    # Several requeues later the count is still one per workspace.
    await asyncio.sleep(2)
    assert await claim_counts(kube, namespace) == dict.fromkeys(names, 1)
    for name in names:
        await kube.delete(WORKSPACE, name, namespace)
    await eventually(
        lambda: _no_workspaces(kube, namespace), timeout_s=60, what="workspaces deleted"
    )


async def _no_workspaces(kube: KubeClient, namespace: str) -> bool:
    return not await kube.list_all(WORKSPACE, namespace)


async def test_deletion_completes_without_the_nodeclaim_crd(
    kube: KubeClient,
    namespace: str,
    control_plane: ControlPlane,
    controller: ControllerProcess,
) -> None:
    await kube.create(WORKSPACE, ws("orphan", namespace), namespace)
    await eventually(lambda: _has_claims(kube, namespace), timeout_s=30, what="a NodeClaim")
    try:
        control_plane.kubectl("delete", "crd", "nodeclaims.karpenter.sh", "--timeout=60s")
        await eventually(
            lambda: _crd_gone(kube), timeout_s=60, what="the NodeClaim CRD to be removed"
        )
        await kube.delete(WORKSPACE, "orphan", namespace)
        await eventually(
            lambda: _no_workspaces(kube, namespace),
            timeout_s=30,
            what="the workspace to be deleted without the NodeClaim API",
        )
    finally:
        install_crds(control_plane)
        controller.restart()  # its NodeClaim informer started before the CRD came back


async def _has_claims(kube: KubeClient, namespace: str) -> bool:
    return bool(await claim_counts(kube, namespace))


async def _crd_gone(kube: KubeClient) -> bool:
    return await kube.get_or_none(CUSTOM_RESOURCE_DEFINITION, "nodeclaims.karpenter.sh") is None
