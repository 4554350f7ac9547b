"""Benchmark: 50 NodeClaims at once against the fake ARM with a 2 s operation latency.

A provisioner that launched one claim at a time would need at least claims x latency
(50 x 2 s = 100 s); launches run concurrently, so all claims should be Ready in a small
multiple of one operation (the target: within 3x). Also counts the lifecycle reconciles that
failed (an exception, retried with backoff) and the write conflicts met (requeued, not failed):
a quiet run should have no failed reconcile. Prints the ratio and, last, the RESULT line.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import aiohttp
from kubernetes_asyncio.config import new_client_from_config

from gpu_provisioner.app import Provisioner, build
from gpu_provisioner.cloud.azure import AzureCloud
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.metrics import ProvisionerMetrics
from gpu_provisioner.settings import AzureSettings, Settings
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller.client import KubeClient
from kaito_common.controller.informer import Informer, WatchEvent
from kaito_common.controller.objects import Obj
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane
from kaito_testing.fakearm import FakeArm, Faults, StaticTokenCredential
from kaito_testing.nodeclaims import gpu_nodeclaim

log = logging.getLogger("bench.provisioner")
REPO = Path(__file__).resolve().parents[2]
TIMEOUT_S = 180.0  # a run that has not converged by then fails instead of hanging


def nodeclaim(name: str) -> Obj:
    return gpu_nodeclaim(name, "bench")


def ready(claim: Obj) -> bool:
    for cond in (claim.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return bool(cond.get("status") == "True")
    return False


@dataclass
class Measured:
    seconds_to_all_ready: float
    failed_reconciles: int
    conflicts: int


def _counted(provisioner: Provisioner) -> tuple[int, int]:
    """(failed lifecycle reconciles, 409 conflicts met) from the provisioner's metrics."""
    failed = conflicts = 0
    registries = (provisioner.manager.metrics.registry, provisioner.metrics.registry)
    for registry in {id(r): r for r in registries}.values():
        for family in registry.collect():
            for sample in family.samples:
                labels = sample.labels
                if (
                    sample.name == "controller_runtime_reconcile_total"
                    and labels.get("controller") == "nodeclaim.lifecycle"
                    and labels.get("result") in ("error", "terminal_error")
                ):
                    failed += int(sample.value)
                if sample.name == "gpu_provisioner_kube_api_errors_total" and (
                    labels.get("status") == "409"
                ):
                    conflicts += int(sample.value)
    return failed, conflicts


async def measure(kubeconfig: Path, work: Path, claims: int, latency_s: float) -> Measured:
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

    async def ready_to_serve() -> bool:
        # /readyz: caches synced and workers started (the clock starts after warm-up).
        url = f"http://127.0.0.1:{provisioner.manager.http_port}/readyz"
        async with aiohttp.ClientSession() as session, session.get(url) as response:
            return response.status == 200

    await eventually(ready_to_serve, 30, what="the provisioner to be ready")
    # Watch (not poll) the claims, so that measuring adds no load to the API server.
    watcher = Informer(kube, NODECLAIM, label_selector="kaito.sh/workspace=bench")
    all_ready = asyncio.Event()

    def check(_: WatchEvent) -> None:
        if sum(1 for c in watcher.store.list() if ready(c)) == claims:
            all_ready.set()

    watcher.add_handler(check)
    watching = asyncio.create_task(watcher.run())
    await watcher.wait_synced()
    # The API server's first NodeClaim writes are slow (the CRD's validation rules are
    # compiled on first use): pay that before the clock starts, with a claim that is not the
    # provisioner's (another node class), deleted again.
    warmup = nodeclaim("warmup")
    warmup["metadata"]["labels"] = {}
    warmup["spec"]["nodeClassRef"] = {"group": "example.com", "kind": "Other", "name": "x"}
    await kube.create(NODECLAIM, warmup)
    await kube.delete(NODECLAIM, "warmup")
    names = [f"bench{i:03d}" for i in range(claims)]
    started = time.monotonic()
    await asyncio.gather(*(kube.create(NODECLAIM, nodeclaim(n)) for n in names))
    log.info("Created the NodeClaims claims=%d after=%.2fs", claims, time.monotonic() - started)
    await asyncio.wait_for(all_ready.wait(), timeout=TIMEOUT_S)
    elapsed = time.monotonic() - started
    watching.cancel()
    failed, conflicts = _counted(provisioner)
    provisioner.manager.stop()
    await task
    await arm.stop()
    await api_client.close()
    return Measured(elapsed, failed, conflicts)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=50)
    parser.add_argument("--op-latency-s", type=float, default=2.0)
    parser.add_argument("--log-level", default="WARNING", help="e.g. INFO for the timeline")
    args = parser.parse_args()
    logging.basicConfig(
        level=args.log_level.upper(), format="%(relativeCreated)8.0f %(name)s %(message)s"
    )
    logging.getLogger("azure").setLevel(max(logging.WARNING, logging.getLogger().level))
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
            result = asyncio.run(
                measure(plane.kubeconfig_path, work, args.claims, args.op_latency_s)
            )
    elapsed = result.seconds_to_all_ready
    serial = args.claims * args.op_latency_s
    print(f"serial lower bound (claims x op latency): {serial:.1f}s")
    print(f"concurrent launches, all Ready after:      {elapsed:.1f}s")
    print(f"speed-up vs serial: {serial / elapsed:.1f}x")
    print(f"all Ready after {elapsed / args.op_latency_s:.1f}x one operation's latency (target 3x)")
    print(
        f"lifecycle reconciles failed: {result.failed_reconciles}; "
        f"write conflicts requeued: {result.conflicts}"
    )
    print(
        f"RESULT claims={args.claims} op_latency_s={args.op_latency_s:g} "
        f"seconds_to_all_ready={elapsed:.1f} failed_reconciles={result.failed_reconciles} "
        f"conflicts={result.conflicts}"
    )


if __name__ == "__main__":
    main()
