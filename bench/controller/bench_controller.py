"""Benchmark: 100 inference Workspaces applied at once on the full local control plane.

Nodes are pre-created (one kwok GPU node per workspace, matching its label selector and
instance type), so the measure is the controller's own work: revisions, Services, Deployments,
status. Prints the time until every workspace is `WorkspaceSucceeded`, reconciles and API
writes per workspace (from the controller's /metrics), and the controller's peak RSS, then a
`RESULT` line. Not a test: it never fails the build on a slow machine.
"""

from __future__ import annotations

import argparse
import asyncio
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

import yaml
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NAMESPACE, NODE
from kaito_testing.controlplane import ControlPlane
from kaito_testing.kwok import node_manifest
from kaito_testing.ports import free_port

REPO = Path(__file__).resolve().parents[2]
SKU = "Standard_NC6s_v3"
WORKSPACES = ("kaito.sh", "v1beta1", "workspaces")
NAMESPACE_NAME = "bench"


def workspace(i: int) -> dict[str, Any]:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": f"ws-{i:03d}", "namespace": NAMESPACE_NAME},
        "resource": {
            "instanceType": SKU,
            "labelSelector": {"matchLabels": {"bench": f"ws-{i:03d}"}},
        },
        "inference": {"preset": {"name": "phi-3-mini-4k-instruct"}},
    }


def metrics(port: int) -> dict[str, float]:
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=5) as resp:
        text = resp.read().decode()
    out: dict[str, float] = {}
    for line in text.splitlines():
        if line and not line.startswith("#"):
            key, _, value = line.rpartition(" ")
            out[key] = float(value)
    return out


def peak_rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return 0.0


async def succeeded(kube: KubeClient) -> int:
    from kaito_common.controller.kinds import Kind

    page = await kube.list_all(Kind(*WORKSPACES, "Workspace"), NAMESPACE_NAME)
    return sum(
        1
        for ws in page
        if any(
            c.get("type") == "WorkspaceSucceeded" and c.get("status") == "True"
            for c in (ws.get("status") or {}).get("conditions") or []
        )
    )


def start_controller(plane: ControlPlane, work: Path, metrics_port: int) -> subprocess.Popen[bytes]:
    """The controller as a host process, waited for until /readyz answers."""
    webhook_port = free_port()
    log = (work / "controller.log").open("wb")
    argv = [
        sys.executable, "-m", "workspace_controller",
        f"--kubeconfig={plane.kubeconfig_path}",
        "--webhook-host=127.0.0.1", f"--webhook-port={webhook_port}",
        f"--webhook-url=https://127.0.0.1:{webhook_port}/validate/workspace.kaito.sh",
        f"--metrics-port={metrics_port}", "--log-level=warning",
    ]  # fmt: skip
    proc = subprocess.Popen(argv, stdout=log, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{metrics_port}/readyz", timeout=1
            ) as resp:
                if resp.status == 200:
                    return proc
        except OSError:
            pass
        if proc.poll() is not None:
            break
        time.sleep(0.1)
    raise RuntimeError((work / "controller.log").read_text()[-3000:])


async def run(count: int, timeout_s: float) -> None:
    work = Path(tempfile.mkdtemp(prefix="bench-controller-"))
    plane = ControlPlane("full", work / "cluster")
    plane.start()
    proc: subprocess.Popen[bytes] | None = None
    try:
        plane.kubectl("apply", "--server-side", "-f", str(REPO / "crds"))
        plane.kubectl(
            "wait", "--for=condition=Established", "--timeout=60s", "crd/workspaces.kaito.sh"
        )
        cfg = k8s.Configuration()
        await k8s_config.load_kube_config(str(plane.kubeconfig_path), client_configuration=cfg)
        async with k8s.ApiClient(cfg) as api:
            kube = KubeClient(api)
            await kube.create(NAMESPACE, {"metadata": {"name": NAMESPACE_NAME}})
            nodes = [
                node_manifest(
                    f"gpu-{i:03d}",
                    labels={"node.kubernetes.io/instance-type": SKU, "bench": f"ws-{i:03d}"},
                    capacity={"nvidia.com/gpu": "1"},
                )
                for i in range(count)
            ]
            plane.kubectl("apply", "-f", "-", input=yaml.safe_dump_all(nodes))
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                ready = [
                    n
                    for n in await kube.list_all(NODE)
                    if any(
                        c["type"] == "Ready" and c["status"] == "True"
                        for c in (n.get("status") or {}).get("conditions") or []
                    )
                ]
                if len(ready) > count:
                    break
                await asyncio.sleep(0.5)
            while True:  # pods are only admitted once the default ServiceAccount exists
                if (
                    plane.kubectl(
                        "get", "sa", "default", "-n", NAMESPACE_NAME, check=False
                    ).returncode
                    == 0
                ):
                    break
                await asyncio.sleep(0.2)

            metrics_port = free_port()
            proc = start_controller(plane, work, metrics_port)
            # Let the webhook registration reach the API server's cache.
            await asyncio.sleep(1.0)
            before = metrics(metrics_port)

            started = time.monotonic()
            kind = KubeClient(api)
            from kaito_common.controller.kinds import Kind

            ws_kind = Kind(*WORKSPACES, "Workspace")
            await asyncio.gather(*(kind.create(ws_kind, workspace(i)) for i in range(count)))
            done = 0
            while time.monotonic() - started < timeout_s:
                done = await succeeded(kube)
                if done >= count:
                    break
                await asyncio.sleep(0.25)
            elapsed = time.monotonic() - started
            after = metrics(metrics_port)
            rss = peak_rss_mb(proc.pid)
    finally:
        if proc is not None:
            proc.terminate()
            proc.wait(15)
        plane.stop()

    def delta(prefix: str) -> float:
        return sum(v - before.get(k, 0.0) for k, v in after.items() if k.startswith(prefix))

    reconciles = delta("controller_runtime_reconcile_total")
    writes = sum(
        delta(f'rest_client_requests_total{{method="{m}"}}')
        for m in ("POST", "PUT", "PATCH", "DELETE")
    )
    requests = delta("rest_client_requests_total")
    print(f"workspaces ready: {done}/{count} in {elapsed:.1f}s")
    print(f"reconciles: {reconciles:.0f}  api requests: {requests:.0f}  writes: {writes:.0f}")
    # Ideal writes per workspace: finalizer, revision, annotations, Service, Deployment, node
    # label, and one or two status writes: about 8. The ratio shows the overhead.
    print(f"ratio writes_per_ws / 8 = {writes / count / 8:.2f}")
    print(
        f"RESULT workspaces={count} seconds_to_all_ready={elapsed:.1f} "
        f"reconciles_per_ws={reconciles / count:.1f} writes_per_ws={writes / count:.1f} "
        f"peak_rss_mb={rss:.0f}"
    )


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--workspaces", type=int, default=100)
    parser.add_argument("--timeout", type=float, default=600.0)
    args = parser.parse_args()
    asyncio.run(run(args.workspaces, args.timeout))
    return 0


if __name__ == "__main__":
    sys.exit(main())
