"""Running the controller as a host process against the test cluster, and playing the node
provisioner (kwok Nodes matching NodeClaims, NodeClaim status) the way the tests need."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from typing import Any

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE, Kind
from kaito_testing.controlplane import ControlPlane
from kaito_testing.hfhub import LocalHub
from kaito_testing.kwok import node_manifest
from kaito_testing.ports import free_port

REPO = Path(__file__).resolve().parents[4]
CRDS = REPO / "crds"
WEBHOOK_CONFIG = "validation.workspace.kaito.sh"
RELEASE_NAMESPACE = "kaito-test-release"
WORKSPACE = Kind("kaito.sh", "v1beta1", "workspaces", "Workspace")
NODECLAIM = Kind("karpenter.sh", "v1", "nodeclaims", "NodeClaim", namespaced=False)


_HUB: LocalHub | None = None


def session_hub() -> LocalHub:
    """The local Hugging Face hub every controller process of the session reads repo-id presets
    from (`--hf-endpoint`), started on first use; tests add their repositories to it."""
    global _HUB
    if _HUB is None:
        _HUB = LocalHub().start()
    return _HUB


def install_crds(plane: ControlPlane) -> None:
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(CRDS))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s",
        "crd/workspaces.kaito.sh", "crd/nodeclaims.karpenter.sh",
    )  # fmt: skip


class ControllerProcess:
    """`python -m workspace_controller` with test settings; restartable, killable."""

    def __init__(self, plane: ControlPlane, log_dir: Path, *extra: str) -> None:
        self.plane = plane
        self.log_dir = log_dir
        self.extra = extra
        self.webhook_port = free_port()
        self.metrics_port = free_port()
        # Trainer pods whose kubelet the tests play get a loopback IP: the controller reads
        # their progress from 127.0.0.1 on this port.
        self.tuning_metrics_port = free_port()
        self.proc: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @property
    def log_path(self) -> Path:
        return self.log_dir / f"workspace-controller-{self.starts}.log"

    def argv(self) -> list[str]:
        url = f"https://127.0.0.1:{self.webhook_port}/validate/workspace.kaito.sh"
        return [
            sys.executable, "-m", "workspace_controller",
            f"--kubeconfig={self.plane.kubeconfig_path}",
            f"--webhook-port={self.webhook_port}", "--webhook-host=127.0.0.1",
            f"--webhook-url={url}", f"--metrics-port={self.metrics_port}",
            "--enable-test-presets", "--allow-loopback-urls",
            "--nodes-requeue-s=0.5", "--inference-requeue-s=0.5", "--tuning-requeue-s=0.5",
            f"--tuning-metrics-port={self.tuning_metrics_port}",
            "--tuning-progress-timeout-s=0.5",
            f"--release-namespace={RELEASE_NAMESPACE}", f"--hf-endpoint={session_hub().url}",
            *self.extra,
        ]  # fmt: skip

    def start(self) -> None:
        self.starts += 1
        self.log_dir.mkdir(parents=True, exist_ok=True)
        log = self.log_path.open("wb")
        self.proc = subprocess.Popen(
            self.argv(), stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"controller exited: {self.log_path.read_text()[-3000:]}")
            if self._ready():
                return
            time.sleep(0.1)
        raise RuntimeError(f"controller not ready: {self.log_path.read_text()[-3000:]}")

    def _ready(self) -> bool:
        try:
            with urllib.request.urlopen(
                f"http://127.0.0.1:{self.metrics_port}/readyz", timeout=1
            ) as resp:
                ready = resp.status == 200
        except OSError:
            return False
        if not ready:
            return False
        result = self.plane.kubectl(
            "get", "validatingwebhookconfiguration", WEBHOOK_CONFIG, check=False
        )
        return result.returncode == 0

    def kill(self) -> None:
        """SIGKILL: no graceful shutdown, like a crashed pod."""
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                self.kill()

    def restart(self) -> None:
        self.stop()
        self.start()

    def metrics(self) -> dict[str, float]:
        with urllib.request.urlopen(
            f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5
        ) as resp:
            text = resp.read().decode()
        out: dict[str, float] = {}
        for line in text.splitlines():
            if line and not line.startswith("#"):
                key, _, value = line.rpartition(" ")
                out[key] = float(value)
        return out

    def writes(self) -> float:
        m = self.metrics()
        return sum(
            m.get(f'rest_client_requests_total{{method="{verb}"}}', 0.0)
            for verb in ("POST", "PUT", "PATCH", "DELETE")
        )

    def reconciles(self) -> float:
        return sum(
            v
            for k, v in self.metrics().items()
            if k.startswith("controller_runtime_reconcile_total")
        )


def claim_condition(type_: str, status: str, reason: str, message: str = "") -> dict[str, Any]:
    return {
        "type": type_,
        "status": status,
        "reason": reason,
        "message": message,
        "lastTransitionTime": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }


def now_rfc3339() -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


async def fulfil_claim(
    client: KubeClient, claim: dict[str, Any], gpus: int = 1, *, kwok: bool = True
) -> str:
    """Play the provisioner: a Node with the claim's labels and GPUs, then a Ready claim.

    With `kwok=False` the Node is not kwok's: nothing runs its pods, the test plays its kubelet
    (the Node's status here; pod status with `play_kubelet`)."""
    name = claim["metadata"]["name"]
    sku = next(
        r["values"][0]
        for r in claim["spec"]["requirements"]
        if r["key"] == "node.kubernetes.io/instance-type"
    )
    labels = {**claim["metadata"]["labels"], "node.kubernetes.io/instance-type": sku}
    node = node_manifest(
        name,
        labels=labels,
        capacity={"nvidia.com/gpu": str(gpus)},
        taints=[{"key": "sku", "value": "gpu", "effect": "NoSchedule"}],
    )
    node["spec"]["providerID"] = f"kwok://{name}"
    if not kwok:
        node["metadata"]["annotations"] = {}
    await client.create(NODE, node)
    if not kwok:
        status = dict(node["status"])
        status["conditions"] = [
            {
                "type": "Ready",
                "status": "True",
                "reason": "KubeletReady",
                "message": "the test plays the kubelet",
                "lastHeartbeatTime": now_rfc3339(),
                "lastTransitionTime": now_rfc3339(),
            }
        ]
        await client.patch(NODE, name, {"status": status}, subresource="status")
    conditions = [
        claim_condition(t, "True", t) for t in ("Launched", "Registered", "Initialized", "Ready")
    ]
    await client.patch(
        NODECLAIM,
        name,
        {"status": {"nodeName": name, "providerID": f"kwok://{name}", "conditions": conditions}},
        subresource="status",
    )
    return name
