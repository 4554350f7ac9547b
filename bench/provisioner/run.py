"""Benchmark: 50 NodeClaims at once against the fake ARM with a 2 s operation latency.

A provisioner that launched one claim at a time would need at least claims x latency
(50 x 2 s = 100 s); launches run concurrently, so all claims should be Ready in a small
multiple of one operation. Prints the ratio and, last, the RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from pathlib import Path

from kubernetes_asyncio.config import new_client_from_config

from gpu_provisioner.app import build
from gpu_provisioner.cloud.azure import AzureCloud
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import AzureSettings, Settings
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.objects import Obj
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane
from kaito_testing.fakearm import FakeArm, Faults, StaticTokenCredential

REPO = Path(__file__).resolve().parents[2]


def nodeclaim(name: str) -> Obj:
    sku = "Standard_NC24ads_A100_v4"
    return {
        "metadata": {
            "name": name,
            "labels": {"karpenter.sh/nodepool": "kaito", "kaito.sh/workspace": "bench"},
        },
        "spec": {
            "nodeClassRef": {"group": "kaito.sh", "kind": "KaitoNodeClass", "name": "default"},
            "taints": [{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
            "requirements": [
                {"key": "node.kubernetes.io/instance-type", "operator": "In", "values": [sku]},
            ],
            "resources": {"requests": {"storage": "256Gi"}},
        },
    }


def ready(claim: Obj) -> bool:
    for cond in (claim.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


async def measure(kubeconfig: Path, work: Path, claims: int, latency_s: float) -> float:
    api_client = await new_client_from_config(config_file=str(kubeconfig))
    kube = KubeClient(api_client, 30.0)
    arm = FakeArm(kube, work / "arm", page_size=20, faults=Faults(op_latency_s=latency_s))
    await arm.start()
    azure = AzureSettings.model_validate(
        {
            "subscription_id": arm.subscription,
            "resource_group": arm.resource_group,
            "cluster_name": arm.cluster,
            "location": arm.location,
            "arm_endpoint": arm.endpoint,
            "arm_ca_bundle": str(arm.ca_bundle),
            "polling_interval_s": 0.5,
            "node_wait_interval_s": 0.2,
        }
    )
    settings = Settings.model_validate({"cloud": "azure", "metrics_port": 0, "azure": azure})

    def factory(k: KubeClient, metrics: ProvisionerMetrics) -> CloudProvider:
        return AzureCloud(azure, StaticTokenCredential(arm.token), k, metrics)

    provisioner = build(settings, api_client, cloud_factory=factory)
    task = asyncio.create_task(provisioner.run())
    await eventually(lambda: provisioner.manager.http_port is not None, 30, what="manager")
    names = [f"bench{i:03d}" for i in range(claims)]
    started = time.monotonic()
    await asyncio.gather(*(kube.create(NODECLAIM, nodeclaim(n)) for n in names))
    while True:
        items = await kube.list_all(NODECLAIM, label_selector="kaito.sh/workspace=bench")
        if sum(1 for c in items if ready(c)) == claims:
            break
        await asyncio.sleep(0.1)
    elapsed = time.monotonic() - started
    provisioner.manager.stop()
    await task
    await arm.stop()
    await api_client.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--op-latency-s", type=float, default=2.0)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)
    with tempfile.TemporaryDirectory(prefix="bench-provisioner-") as tmp:
        work = Path(tmp)
        with ControlPlane("full", work / "cluster") as plane:
            crd = REPO / "crds" / "karpenter.sh_nodeclaims.yaml"
            plane.kubectl("apply", "--server-side", "-f", str(crd))
            plane.kubectl(
                "wait",
                "--for=condition=Established",
                "crd/nodeclaims.karpenter.sh",
                "--timeout=30s",
            )
            elapsed = asyncio.run(
                measure(plane.kubeconfig_path, work, args.claims, args.op_latency_s)
            )
    serial = args.claims * args.op_latency_s
    print(f"serial lower bound (claims x op latency): {serial:.1f}s")
    print(f"concurrent launches, all Ready after:      {elapsed:.1f}s")
    print(f"speed-up vs serial: {serial / elapsed:.1f}x")
    print(
        f"RESULT claims={args.claims} op_latency_s={args.op_latency_s:g} "
        f"seconds_to_all_ready={elapsed:.1f}"
    )


if __name__ == "__main__":
    main()
