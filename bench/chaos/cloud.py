"""Cloud chaos for `make chaos`: 20 NodeClaims against a fake ARM that answers 20% of the
requests with 429 (Retry-After) or 500 and adds latency, while the gpu-provisioner process is
killed mid-create and started again (kaito_testing.fakearm.chaos).

`run_cloud_chaos()` is synchronous (it starts its own local control plane) and returns
{"arm_fault_rate", "claims_ready", "claims_total", "leaked_pools", ...}. Run alone, it prints
that dict.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import sys
import tempfile
from pathlib import Path
from typing import Any

from kubernetes_asyncio.config import new_client_from_config

from kaito_common.controller.client import KubeClient
from kaito_common.controller.objects import Obj
from kaito_testing.controlplane import ControlPlane
from kaito_testing.fakearm import FakeArm, Faults
from kaito_testing.fakearm.chaos import run_cloud_chaos as run_chaos
from kaito_testing.nodeclaims import gpu_nodeclaim

REPO = Path(__file__).resolve().parents[2]
CRD = REPO / "crds" / "karpenter.sh_nodeclaims.yaml"
RUNNER = REPO / "services" / "gpu-provisioner" / "tests" / "run_provisioner.py"


def nodeclaim(name: str) -> Obj:
    return gpu_nodeclaim(name, "chaos")


async def _run(
    kubeconfig: Path, work: Path, claims: int, fault_rate: float, seed: int
) -> dict[str, Any]:
    api_client = await new_client_from_config(config_file=str(kubeconfig))
    kube = KubeClient(api_client, 30.0)
    faults = Faults.chaos(
        fault_rate, latency_s=0.01, latency_jitter_s=0.1, seed=seed, op_latency_s=1.0
    )
    arm = FakeArm(kube, work / "arm", page_size=10, faults=faults)
    await arm.start()
    try:
        result = await run_chaos(
            kube,
            arm,
            kubeconfig=kubeconfig,
            runner=RUNNER,
            manifest=nodeclaim,
            names=[f"chaos{i:03d}" for i in range(claims)],
            log_dir=work / "logs",
        )
    finally:
        await arm.stop()
        await api_client.close()
    return result.as_dict()


def run_cloud_chaos(claims: int = 20, fault_rate: float = 0.2, seed: int = 19) -> dict[str, Any]:
    """Synchronous: a control plane of its own, the chaos run, the figures."""
    with tempfile.TemporaryDirectory(prefix="cloud-chaos-") as tmp:
        work = Path(tmp)
        with ControlPlane("full", work / "cluster") as plane:
            plane.kubectl("apply", "--server-side", "-f", str(CRD))
            plane.kubectl(
                "wait",
                "--for=condition=Established",
                "crd/nodeclaims.karpenter.sh",
                "--timeout=30s",
            )
            return asyncio.run(_run(plane.kubeconfig_path, work, claims, fault_rate, seed))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--claims", type=int, default=20)
    parser.add_argument("--fault-rate", type=float, default=0.2)
    parser.add_argument("--seed", type=int, default=19)
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr)
    print(run_cloud_chaos(args.claims, args.fault_rate, args.seed))


if __name__ == "__main__":
    main()
