"""Fixtures of the real-node tests: the ``node`` control plane profile, with its teardown checked.

Every test here is marked ``realnode``. The node needs root and Debian's containerd, runc, CNI
plugins and iptables; the fixture installs what is missing with ``hack/realnode/install.sh``
(as ``make testbin`` builds missing binaries: never skipped).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from kaito_testing.controlplane import ControlPlane
from kaito_testing.testbin import ensure_testbin
from kaito_testing.toolbox_image import write_toolbox_archive

REPO_ROOT = Path(__file__).resolve().parents[4]
INSTALL = REPO_ROOT / "hack" / "realnode" / "install.sh"
_HERE = Path(__file__).resolve().parent


def pytest_configure(config: pytest.Config) -> None:
    config.addinivalue_line(
        "markers", "realnode: runs on a real kubelet + containerd node (root, cgroups, iptables)"
    )


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if _HERE in Path(str(item.fspath)).resolve().parents:
            item.add_marker(pytest.mark.realnode)


class Cluster:
    """The ``node`` control plane with kubectl helpers."""

    def __init__(self, plane: ControlPlane) -> None:
        self.plane = plane
        assert plane.real_node is not None
        self.node = plane.real_node

    def kubectl(self, *args: str, check: bool = True, timeout: float = 120.0) -> str:
        argv = [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig_path}"]
        result = subprocess.run(
            [*argv, *args], capture_output=True, text=True, check=False, timeout=timeout
        )
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed:\n{result.stderr}")
        return result.stdout

    def get(self, *args: str) -> Any:
        return json.loads(self.kubectl("get", *args, "-o", "json"))

    def apply(self, text: str, namespace: str) -> None:
        argv = [str(self.plane.bin_dir / "kubectl"), f"--kubeconfig={self.plane.kubeconfig_path}"]
        result = subprocess.run(
            [*argv, "apply", "-n", namespace, "-f", "-"],
            input=text,
            capture_output=True,
            text=True,
            check=False,
            timeout=60,
        )
        if result.returncode != 0:
            raise AssertionError(f"kubectl apply failed:\n{result.stderr}")


def _ensure_node_tools() -> None:
    if os.geteuid() != 0:
        raise RuntimeError("the real-node tests run as root (containerd, cgroups, iptables)")
    needed = ("containerd", "runc", "ctr", "iptables", "conntrack")
    if not all(shutil.which(tool) for tool in needed) or not Path("/bin/busybox").exists():
        subprocess.run(["bash", str(INSTALL)], check=True)


@pytest.fixture(scope="session")
def node_cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    _ensure_node_tools()
    plane = ControlPlane("node", tmp_path_factory.mktemp("realnode"), bin_dir=ensure_testbin())
    plane.start()
    node = plane.real_node
    assert node is not None
    try:
        node.import_image(write_toolbox_archive(plane.work_dir / "images"))
        yield Cluster(plane)
    finally:
        plane.stop()
    leftovers = node.leftovers()
    assert not leftovers, f"the real node left things behind: {leftovers}"


@pytest.fixture
def ns(node_cluster: Cluster, request: pytest.FixtureRequest) -> Iterator[str]:
    name = "rn-" + request.node.name.lower().replace("_", "-")[:40].strip("-")
    node_cluster.kubectl("create", "namespace", name)
    node_cluster.kubectl("wait", "--for=create", "serviceaccount/default", "-n", name)
    try:
        yield name
    finally:
        node_cluster.kubectl("delete", "namespace", name, "--wait=false", check=False)
