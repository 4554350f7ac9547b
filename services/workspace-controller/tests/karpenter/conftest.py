"""The provisioner swap: one full control plane for this folder, and per test either Karpenter
core's kwok provider or our gpu-provisioner (kwok cloud), never both.

The control plane is this folder's own (not the session's): Karpenter's CRDs replace ours here,
and no other test's workspace controller may reconcile these workspaces.
"""

from __future__ import annotations

import subprocess
import sys
import time
import urllib.request
from collections.abc import AsyncIterator, Generator, Iterator
from pathlib import Path

import pytest
import pytest_asyncio
from kubernetes_asyncio import client as k8s
from kubernetes_asyncio import config as k8s_config
from swap_support import SKU, Provisioner
from wc_helpers.cluster import CRDS, RELEASE_NAMESPACE, REPO, install_crds

from kaito_common.controller.client import KubeClient
from kaito_common.presets import default_catalog
from kaito_testing import karpenter
from kaito_testing.controlplane import ControlPlane
from kaito_testing.ports import free_port
from kaito_testing.testbin import ensure_testbin
from kaito_testing.waiting import wait_for

INFERENCE_TEMPLATE = (
    REPO / "charts/kaito/charts/workspace-controller/files/inference-params-template.yaml"
)


@pytest.fixture(scope="module")
def swap_plane(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ControlPlane]:
    plane = ControlPlane(
        "full", tmp_path_factory.mktemp("swap-plane"), bin_dir=ensure_testbin(), kwok_nodes=0
    )
    plane.start()
    try:
        plane.kubectl("create", "namespace", RELEASE_NAMESPACE)
        if INFERENCE_TEMPLATE.is_file():
            manifest = plane.kubectl(
                "create", "configmap", "inference-params-template", "-n", RELEASE_NAMESPACE,
                f"--from-file=inference_config.yaml={INFERENCE_TEMPLATE}",
                "--dry-run=client", "-o", "yaml",
            ).stdout  # fmt: skip
            plane.kubectl("apply", "-f", "-", input=manifest)
        yield plane
    finally:
        plane.stop()


@pytest.fixture(scope="module")
def our_crds(swap_plane: ControlPlane) -> ControlPlane:
    """The repository's CRDs (Workspace, NodeClaim) on the module's control plane."""
    install_crds(swap_plane)
    return swap_plane


def _karpenter(plane: ControlPlane, work: Path) -> Generator[Provisioner]:
    karpenter.install_crds(plane)  # Karpenter's NodeClaim CRD replaces ours
    ref = karpenter.NodeClass()
    sku = default_catalog().sku(SKU)
    assert sku is not None, f"{SKU} is not in the SKU catalog"
    provider = karpenter.KarpenterKwok(plane, work, [sku])
    with provider:
        yield Provisioner(
            "karpenter",
            (
                f"--node-class-group={ref.group}",
                f"--node-class-kind={ref.kind}",
                f"--node-class-name={ref.name}",
            ),
            provider.log_path,
        )


def _gpu_provisioner(plane: ControlPlane, work: Path) -> Generator[Provisioner]:
    # Our NodeClaim CRD back in place of Karpenter's (a no-op when it is still ours).
    nodeclaim_crd = CRDS / "karpenter.sh_nodeclaims.yaml"
    plane.kubectl("apply", "--server-side", "--force-conflicts", "-f", str(nodeclaim_crd))
    plane.kubectl(
        "wait", "--for=condition=Established", "--timeout=60s", "crd/nodeclaims.karpenter.sh"
    )
    work.mkdir(parents=True, exist_ok=True)
    port = free_port()
    log_path = work / "gpu-provisioner.log"
    argv = [
        sys.executable, "-m", "gpu_provisioner", "--cloud=kwok",
        f"--kubeconfig={plane.kubeconfig_path}", f"--metrics-port={port}",
    ]  # fmt: skip
    with log_path.open("wb") as out:
        proc = subprocess.Popen(argv, stdout=out, stderr=subprocess.STDOUT)

    def alive() -> None:
        if proc.poll() is not None:
            raise RuntimeError(f"gpu-provisioner exited: {log_path.read_text()[-3000:]}")

    try:
        wait_for(
            lambda: _http_ok(f"http://127.0.0.1:{port}/readyz"),
            timeout=60,
            what="gpu-provisioner to be ready",
            alive=alive,
        )
        yield Provisioner("gpu-provisioner", (), log_path)
    finally:
        proc.terminate()
        try:
            proc.wait(15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=1) as resp:
            return bool(resp.status == 200)
    except OSError:
        return False


@pytest.fixture(params=["karpenter", "gpu-provisioner"])
def provisioner(
    request: pytest.FixtureRequest, our_crds: ControlPlane, tmp_path: Path
) -> Iterator[Provisioner]:
    started = time.monotonic()
    run = _karpenter if request.param == "karpenter" else _gpu_provisioner
    gen = run(our_crds, tmp_path / request.param)
    prov = next(gen)
    print(f"{prov.name} ready in {time.monotonic() - started:.1f}s")
    try:
        yield prov
    finally:
        report = getattr(request.node, "rep_call", None)
        if report is not None and report.failed and prov.log_path.exists():
            print(f"---- {prov.name} log tail\n{prov.log_path.read_text()[-6000:]}")
        gen.close()


@pytest_asyncio.fixture
async def swap_kube(swap_plane: ControlPlane) -> AsyncIterator[KubeClient]:
    configuration = k8s.Configuration()
    await k8s_config.load_kube_config(
        config_file=str(swap_plane.kubeconfig_path), client_configuration=configuration
    )
    api = k8s.ApiClient(configuration)
    try:
        yield KubeClient(api, request_timeout_s=15)
    finally:
        await api.close()


@pytest.hookimpl(wrapper=True, tryfirst=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]):  # type: ignore[no-untyped-def]
    report = yield
    setattr(item, f"rep_{report.when}", report)
    return report
