"""Karpenter core's own kwok provider against a local control plane.

Tests use it to swap a provisioner we did not write in for our gpu-provisioner. The binary
(``karpenter-kwok``) is built by ``hack/testbin/build.sh`` from the ``sigs.k8s.io/karpenter``
version pinned in ``versions.env``; its CRDs (NodePool, NodeClaim, NodeOverlay, KWOKNodeClass, ...)
are read from that module's files in the Go module cache at run time, never copied into the
repository. Its instance types are written from our SKU catalog entries (GPU count as
``nvidia.com/gpu`` capacity), so the same presets fit on its nodes.

Karpenter's kwok provider creates a Node per launched NodeClaim with the annotation
``kwok.x-k8s.io/node=fake``: the control plane's kwok then plays that Node's kubelet, so Pods
bound to it run.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import urllib.error
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

from kaito_common.presets import GPUSku
from kaito_testing.checkout import find_in_checkout
from kaito_testing.controlplane import ControlPlane, ControlPlaneError
from kaito_testing.gobuild import GoBuildError, go_command
from kaito_testing.ports import free_port
from kaito_testing.process import Component
from kaito_testing.testbin import BUILD_SCRIPT, TestbinError
from kaito_testing.waiting import wait_for

log = logging.getLogger(__name__)

BINARY = "karpenter-kwok"
MODULE = "sigs.k8s.io/karpenter"
NODE_CLASS_GROUP = "karpenter.kwok.sh"
NODE_CLASS_VERSION = "v1alpha1"
NODE_CLASS_KIND = "KWOKNodeClass"
NODE_CLASS_NAME = "default"
ZONE = "test-zone-a"
CAPACITY_TYPE = "on-demand"
# Host resources of every instance type (what a GPU VM of the catalog offers besides GPUs).
NODE_CPU = "32"
NODE_MEMORY = "256Gi"
NODE_PODS = "110"
START_TIMEOUT_S = 60.0
# The CRD files, relative to the module's directory: Karpenter core's (as its kwok chart ships
# them) and the kwok provider's node class.
CRD_DIRS = ("kwok/charts/crds", "kwok/apis/crds")


class KarpenterError(RuntimeError):
    """Karpenter's module or binary is missing, or the provider failed to start."""


def _testbin_dir() -> Path:
    """hack/testbin of the checkout this module runs from."""
    script = find_in_checkout(BUILD_SCRIPT)
    if script is not None:
        return script.parent
    raise TestbinError("cannot find hack/testbin/build.sh from the working directory")


def pinned_version(testbin_dir: Path | None = None) -> str:
    """KARPENTER_VERSION from hack/testbin/versions.env."""
    env_file = (testbin_dir or _testbin_dir()) / "versions.env"
    for line in env_file.read_text().splitlines():
        key, sep, value = line.strip().partition("=")
        if sep and key == "KARPENTER_VERSION":
            return value.strip()
    raise KarpenterError(f"{env_file} pins no KARPENTER_VERSION")


def _go() -> str:
    try:
        return go_command("locate Karpenter's CRDs in the module cache")
    except GoBuildError as err:
        raise KarpenterError(str(err)) from None


def module_dir(version: str | None = None) -> Path:
    """The pinned Karpenter module's directory in the Go module cache (downloaded if missing,
    as `make testbin` already did when it built the binary)."""
    testbin = _testbin_dir()
    version = version or pinned_version(testbin)
    env = {**os.environ, "GOFLAGS": "-mod=mod", "GOTOOLCHAIN": "local"}
    result = subprocess.run(
        [_go(), "mod", "download", "-json", f"{MODULE}@{version}"],
        cwd=testbin / "karpenter",
        env=env,
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    try:
        info = json.loads(result.stdout)
    except json.JSONDecodeError:
        info = {}
    directory = info.get("Dir")
    if result.returncode != 0 or not directory:
        detail = info.get("Error") or result.stderr.strip()
        raise KarpenterError(f"go mod download {MODULE}@{version} failed: {detail}")
    return Path(directory)


def crd_files(directory: Path) -> list[Path]:
    """Every CRD file the kwok provider needs, from the module's own directories."""
    files = sorted(p for sub in CRD_DIRS for p in (directory / sub).glob("*.yaml"))
    if not files:
        raise KarpenterError(f"found no CRD files under {directory} ({', '.join(CRD_DIRS)})")
    return files


def instance_type(sku: GPUSku, *, price: float = 1.0) -> dict[str, Any]:
    """One instance type of Karpenter's kwok provider (its JSON format) for a catalog SKU."""
    return {
        "name": sku.name,
        "architecture": "amd64",
        "operatingSystems": ["linux"],
        "resources": {
            "cpu": NODE_CPU,
            "memory": NODE_MEMORY,
            "pods": NODE_PODS,
            "nvidia.com/gpu": str(sku.gpu_count),
        },
        "offerings": [
            {
                "Price": price,
                "Available": True,
                "Requirements": [
                    {
                        "key": "karpenter.sh/capacity-type",
                        "operator": "In",
                        "values": [CAPACITY_TYPE],
                    },
                    {"key": "topology.kubernetes.io/zone", "operator": "In", "values": [ZONE]},
                ],
            }
        ],
    }


def node_class_manifest(name: str = NODE_CLASS_NAME) -> dict[str, Any]:
    return {
        "apiVersion": f"{NODE_CLASS_GROUP}/{NODE_CLASS_VERSION}",
        "kind": NODE_CLASS_KIND,
        "metadata": {"name": name},
    }


@dataclass(frozen=True)
class NodeClass:
    """The nodeClassRef that points NodeClaims and NodePools at Karpenter's kwok node class."""

    group: str = NODE_CLASS_GROUP
    kind: str = NODE_CLASS_KIND
    name: str = NODE_CLASS_NAME


def install_crds(plane: ControlPlane, directory: Path | None = None) -> list[Path]:
    """Applies Karpenter's CRDs (replacing any NodeClaim CRD already there) and waits until
    they are served."""
    files = crd_files(directory or module_dir())
    args: list[str] = []
    for path in files:
        args += ["-f", str(path)]
    plane.kubectl("apply", "--server-side", "--force-conflicts", *args)
    plane.kubectl("wait", "--for=condition=Established", "--timeout=60s", "crd", "--all")
    log.info("Installed Karpenter CRDs", extra={"files": [p.name for p in files]})
    return files


class KarpenterKwok:
    """The ``karpenter-kwok`` process: Karpenter core's controllers with its kwok cloud.

    ``feature_gates`` is passed through (e.g. ``StaticCapacity=true`` for NodePools with
    ``replicas``). Leader election is off; metrics and health listen on free ports."""

    def __init__(
        self,
        plane: ControlPlane,
        work_dir: Path,
        skus: Iterable[GPUSku],
        *,
        feature_gates: str = "",
        log_level: str = "debug",
    ) -> None:
        self.plane = plane
        self.work_dir = Path(work_dir)
        self.skus = list(skus)
        self.feature_gates = feature_gates
        self.log_level = log_level
        self.metrics_port = free_port()
        self.health_port = free_port()
        self.instance_types_path = self.work_dir / "instance-types.json"
        self._component: Component | None = None

    @property
    def binary(self) -> Path:
        return self.plane.bin_dir / BINARY

    @property
    def log_path(self) -> Path:
        return self.work_dir / "karpenter-kwok.log"

    def argv(self) -> list[str]:
        argv = [
            # Karpenter reads the kubeconfig only from the environment (controller-runtime).
            "env",
            f"KUBECONFIG={self.plane.kubeconfig_path}",
            str(self.binary),
            f"--instance-types-file-path={self.instance_types_path}",
            "--disable-leader-election",
            f"--metrics-port={self.metrics_port}",
            f"--health-probe-port={self.health_port}",
            f"--log-level={self.log_level}",
        ]
        if self.feature_gates:
            argv.append(f"--feature-gates={self.feature_gates}")
        return argv

    def __enter__(self) -> KarpenterKwok:
        self.start()
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def start(self) -> None:
        """Writes the instance types, creates the node class and starts the provider; returns
        once it reports ready (CRDs found, caches synced). Install the CRDs first."""
        if not self.binary.is_file():
            raise KarpenterError(
                f"{self.binary} is missing; run `make testbin` (hack/testbin/build.sh)"
            )
        self.work_dir.mkdir(parents=True, exist_ok=True)
        self.instance_types_path.write_text(
            json.dumps([instance_type(sku) for sku in self.skus], indent=2)
        )
        self.plane.kubectl("apply", "-f", "-", input=json.dumps(node_class_manifest()))
        component = Component("karpenter-kwok", self.argv(), self.log_path)
        component.start()
        self._component = component
        wait_for(
            self._ready,
            timeout=START_TIMEOUT_S,
            what="Karpenter's kwok provider to be ready",
            interval=0.2,
            alive=self._check_alive,
        )
        log.info(
            "Started Karpenter kwok provider",
            extra={"pid": component.pid, "instance_types": [s.name for s in self.skus]},
        )

    def _check_alive(self) -> None:
        component = self._component
        if component is not None and not component.running():
            raise ControlPlaneError(
                f"karpenter-kwok exited with code {component.exit_code()}; "
                f"log {component.log_path}:\n{component.log_tail(30)}"
            )

    def _ready(self) -> bool:
        url = f"http://127.0.0.1:{self.health_port}/readyz"
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                return bool(resp.status == 200)
        except (urllib.error.URLError, OSError):
            return False

    def running(self) -> bool:
        return self._component is not None and self._component.running()

    def log_tail(self, lines: int = 40) -> str:
        return self._component.log_tail(lines) if self._component else ""

    def stop(self) -> None:
        if self._component is not None:
            self._component.stop()
            self._component = None
