"""Fixtures: the NodeClaim CRD in the test cluster, the fake ARM, a running provisioner."""

from __future__ import annotations

import asyncio
import contextlib
import secrets
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio

sys.path.insert(0, str(Path(__file__).parent))

from fakearm import FakeArm, Faults, StaticTokenCredential
from kubernetes_asyncio.client import ApiClient

from gpu_provisioner.app import Provisioner, build
from gpu_provisioner.claims import NODECLAIM
from gpu_provisioner.cloud.azure import AzureCloud
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import AzureSettings, Settings
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE, Obj
from kaito_common.controller.testing import eventually

REPO = Path(__file__).resolve().parents[3]
CRD = REPO / "crds" / "karpenter.sh_nodeclaims.yaml"
TEST_LABEL = "gpu-provisioner.test/run"


def claim_name() -> str:
    """Kaito's shape: `ws` + 9 hex characters (a valid AKS pool name)."""
    return "ws" + secrets.token_hex(5)[:9]


def kaito_nodeclaim(
    name: str,
    *,
    sku: str = "Standard_NC12s_v3",
    storage: str = "120Gi",
    workspace: str = "ws-a",
    namespace: str = "default",
    image_family: str | None = None,
    extra_labels: dict[str, str] | None = None,
) -> Obj:
    """A NodeClaim as the workspace controller writes it."""
    annotations = {"karpenter.sh/do-not-disrupt": "true"}
    if image_family:
        annotations["kaito.sh/node-image-family"] = image_family
    return {
        "apiVersion": "karpenter.sh/v1",
        "kind": "NodeClaim",
        "metadata": {
            "name": name,
            "labels": {
                "karpenter.sh/nodepool": "kaito",
                "kaito.sh/workspace": workspace,
                "kaito.sh/workspacenamespace": namespace,
                TEST_LABEL: "true",
                **(extra_labels or {}),
            },
            "annotations": annotations,
        },
        "spec": {
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"},
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {"key": "karpenter.sh/nodepool", "operator": "In", "values": ["kaito"]},
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [sku]},
                {"key": "kubernetes.io/os", "operator": "In", "values": ["linux"]},
                {"key": "karpenter.azure.com/sku-name", "operator": "In", "values": [sku]},
            ],
            "resources": {"requests": {"storage": storage}},
        },
    }


def condition(obj: Obj | None, type_: str) -> Obj | None:
    for cond in ((obj or {}).get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_:
            return dict(cond)
    return None


def is_ready(obj: Obj | None) -> bool:
    cond = condition(obj, "Ready")
    return cond is not None and cond.get("status") == "True"


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


def azure_settings(arm: FakeArm, **overrides: Any) -> AzureSettings:
    values: dict[str, Any] = {
        "subscription_id": arm.subscription,
        "resource_group": arm.resource_group,
        "cluster_name": arm.cluster,
        "location": arm.location,
        "arm_endpoint": arm.endpoint,
        "arm_ca_bundle": str(arm.ca_bundle),
        "polling_interval_s": 0.1,
        "retry_total": 3,
        "retry_backoff_factor": 0.05,
        "retry_backoff_max_s": 1,
        "node_wait_timeout_s": 10.0,
        "node_wait_interval_s": 0.1,
    }
    values.update(overrides)
    return AzureSettings.model_validate(values)


def provisioner_settings(**overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "cloud": "kwok",
        "metrics_port": 0,
        "poll_interval_s": 0.2,
        "gc_interval_s": 3600.0,
        "launch_backoff_max_s": 2.0,
    }
    values.update(overrides)
    return Settings.model_validate(values)


StartProvisioner = Callable[..., Awaitable[Provisioner]]


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
