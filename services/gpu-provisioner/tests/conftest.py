"""Fixtures: the NodeClaim CRD in the test cluster, the fake ARM, a running provisioner."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from gp_support import (
    CRD,
    TEST_LABEL,
    StartProvisioner,
    azure_settings,
    provisioner_settings,
)
from kubernetes_asyncio.client import ApiClient

from gpu_provisioner.app import Provisioner, build
from gpu_provisioner.cloud.azure import AzureCloud
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import Settings
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE
from kaito_testing.controllers import eventually
from kaito_testing.fakearm import FakeArm, Faults, StaticTokenCredential


@pytest.fixture(scope="session")
def nodeclaim_crd(control_plane: Any) -> None:
    control_plane.kubectl("apply", "--server-side", "-f", str(CRD))
    control_plane.kubectl(
        "wait", "--for=condition=Established", "crd/nodeclaims.karpenter.sh", "--timeout=30s"
    )


@pytest_asyncio.fixture
async def kube(api_client: ApiClient, nodeclaim_crd: None) -> AsyncIterator[KubeClient]:
    client = KubeClient(api_client, 10.0)
    yield client
    # Leave the cluster as found: claims of this run deleted (the provisioner still runs).
    for claim in await client.list_all(NODECLAIM, label_selector=TEST_LABEL):
        await client.delete(NODECLAIM, claim["metadata"]["name"])


@pytest_asyncio.fixture
async def fake_arm(kube: KubeClient, tmp_path: Path) -> AsyncIterator[FakeArm]:
    arm = FakeArm(kube, tmp_path / "arm", faults=Faults(op_latency_s=0.3))
    await arm.start()
    yield arm
    await arm.stop()
    for node in await kube.list_all(NODE, label_selector="kubernetes.azure.com/agentpool"):
        meta = node["metadata"]
        if meta.get("finalizers"):
            with contextlib.suppress(Exception):
                await kube.patch(NODE, meta["name"], {"metadata": {"finalizers": None}})
        await kube.delete(NODE, meta["name"])


@pytest_asyncio.fixture
async def start_provisioner(
    api_client: ApiClient, kube: KubeClient
) -> AsyncIterator[StartProvisioner]:
    """Start provisioners in this event loop; each is stopped at the end of the test (after
    the claims of the test are deleted and finalized)."""
    running: list[tuple[Provisioner, asyncio.Task[None]]] = []

    async def start(
        settings: Settings | None = None, arm: FakeArm | None = None, **azure: Any
    ) -> Provisioner:
        settings = settings or provisioner_settings()
        factory = None
        if arm is not None:
            az = azure_settings(arm, **azure)
            settings = settings.model_copy(update={"cloud": "azure", "azure": az})
            token = arm.token

            def factory(kube: KubeClient, metrics: ProvisionerMetrics) -> CloudProvider:
                return AzureCloud(az, StaticTokenCredential(token), kube, metrics)

        provisioner = build(settings, api_client, cloud_factory=factory)
        task = asyncio.create_task(provisioner.run())
        running.append((provisioner, task))
        await eventually(lambda: provisioner.manager.http_port is not None, 20, what="manager")
        return provisioner

    yield start
    for claim in await kube.list_all(NODECLAIM, label_selector=TEST_LABEL):
        await kube.delete(NODECLAIM, claim["metadata"]["name"])
    if running:
        await eventually(
            lambda: _no_claims(kube), timeout_s=30, what="the test's NodeClaims to be finalized"
        )
    for provisioner, task in running:
        provisioner.manager.stop()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(task, 20)


async def _no_claims(kube: KubeClient) -> bool:
    return not await kube.list_all(NODECLAIM, label_selector=TEST_LABEL)
