"""The chart with another Karpenter provider: `helm install` with `gpu-provisioner.enabled=false`
and the node class of Karpenter's kwok provider, next to Karpenter's own CRDs; the workspace
controller then runs with the chart's Deployment args and ServiceAccount identity (RBAC on), and
an inference Workspace succeeds on Karpenter's nodes.

This module gets its own control plane (the `swap_plane` fixture is module-scoped): the chart's
Helm release owns the Workspace CRD and the webhook configuration, which Helm will not adopt.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from swap_support import SKU

from kaito_common.presets import default_catalog
from kaito_testing import karpenter
from kaito_testing.controlplane import ControlPlane
from kaito_testing.kaito_local import (
    RELEASE,
    RELEASE_NAMESPACE,
    WC,
    Cluster,
    helm_install,
    local_values,
    workspace_controller_process,
)
from kaito_testing.ports import free_port
from kaito_testing.waiting import wait_for

pytestmark = pytest.mark.full

Obj = dict[str, Any]
NODE_CLASS = karpenter.NodeClass()
# The chart values of the Karpenter mode (what docs/karpenter.md tells an operator to set).
KARPENTER_VALUES = [
    "gpu-provisioner.enabled=false",
    "workspace-controller.nodeProvisioner=karpenter-nodeclaims",
    f"workspace-controller.nodeClassRef.group={NODE_CLASS.group}",
    f"workspace-controller.nodeClassRef.kind={NODE_CLASS.kind}",
    f"workspace-controller.nodeClassRef.name={NODE_CLASS.name}",
]


@pytest.fixture(scope="module")
def karpenter_only(
    swap_plane: ControlPlane, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[karpenter.KarpenterKwok]:
    karpenter.install_crds(swap_plane)
    sku = default_catalog().sku(SKU)
    assert sku is not None
    work = tmp_path_factory.mktemp("karpenter-chart")
    with karpenter.KarpenterKwok(swap_plane, work, [sku]) as provider:
        yield provider


def status_of(obj: Obj, type_: str) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond["type"] == type_:
            return str(cond["status"])
    return ""


def test_chart_installs_with_karpenter_values_and_serves_a_workspace(
    swap_plane: ControlPlane,
    karpenter_only: karpenter.KarpenterKwok,
    tmp_path: Path,
) -> None:
    cluster = Cluster(swap_plane.bin_dir, swap_plane.kubeconfig_path)
    karpenter_crd = cluster.get_json("crd", "nodeclaims.karpenter.sh")
    webhook_port = free_port()
    helm_install(cluster, [*local_values(webhook_port), *KARPENTER_VALUES])

    release = json.loads(cluster.helm("status", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json"))
    assert release["info"]["status"] == "deployed"
    # Neither our provisioner nor our NodeClaim CRD: Karpenter's CRD is untouched.
    deployments = cluster.get_json("deployments", "-n", RELEASE_NAMESPACE)["items"]
    assert [d["metadata"]["name"] for d in deployments] == [WC]
    crd = cluster.get_json("crd", "nodeclaims.karpenter.sh")
    assert crd["metadata"]["uid"] == karpenter_crd["metadata"]["uid"]
    assert "meta.helm.sh/release-name" not in (crd["metadata"].get("annotations") or {})
    args = deployments[0]["spec"]["template"]["spec"]["containers"][0]["args"]
    for flag in (
        f"--node-class-group={NODE_CLASS.group}",
        f"--node-class-kind={NODE_CLASS.kind}",
        f"--node-class-name={NODE_CLASS.name}",
        "--node-provisioner=karpenter-nodeclaims",
    ):
        assert flag in args, args

    controller = workspace_controller_process(cluster, sys.executable, tmp_path, webhook_port)
    controller.start()
    try:
        _inference_round_trip(cluster)
    except BaseException:
        print(f"--- {controller.name} log tail ---\n{controller.log_tail(4000)}")
        print(f"--- karpenter-kwok log tail ---\n{karpenter_only.log_tail(30)}")
        raise
    finally:
        controller.stop()
    cluster.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE)


def _inference_round_trip(cluster: Cluster) -> None:
    ns = "chart-karpenter"
    cluster.kubectl("create", "namespace", ns)
    doc = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "tiny", "namespace": ns},
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": "tiny"}}},
        "inference": {"preset": {"name": "test-tiny-llama"}},
    }
    cluster.kubectl("apply", "-f", "-", input=json.dumps(doc))
    started = time.monotonic()
    wait_for(
        lambda: (
            status_of(cluster.get_json("workspace", "tiny", "-n", ns), "WorkspaceSucceeded")
            == "True"
        ),
        timeout=180,
        what="WorkspaceSucceeded=True",
        interval=0.5,
    )
    print(f"chart + karpenter: WorkspaceSucceeded=True after {time.monotonic() - started:.1f}s")
    selector = f"kaito.sh/workspace=tiny,kaito.sh/workspacenamespace={ns}"
    (claim,) = cluster.get_json("nodeclaims", "-l", selector)["items"]
    assert claim["spec"]["nodeClassRef"] == {
        "group": NODE_CLASS.group,
        "kind": NODE_CLASS.kind,
        "name": NODE_CLASS.name,
    }
    (node,) = cluster.get_json("nodes", "-l", selector)["items"]
    assert node["metadata"]["name"].startswith(f"kwok-{claim['metadata']['name']}-")

    cluster.kubectl("delete", "workspace", "tiny", "-n", ns, "--wait=false")
    wait_for(
        lambda: (
            not cluster.get_json("nodes", "-l", selector)["items"]
            and not cluster.get_json("nodeclaims", "-l", selector)["items"]
            and not cluster.kubectl("get", "workspace", "-n", ns, "-o", "name").strip()
        ),
        timeout=120,
        what="workspace, NodeClaim and node gone",
        interval=0.5,
    )
