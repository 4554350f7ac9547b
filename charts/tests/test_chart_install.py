"""The chart on a real control plane (RBAC on): server-side dry-run, `helm install`, then both
controllers as host processes with the chart's ServiceAccount identities, and the workspace flow.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_support import REGISTRY_VALUE, Helm

from kaito_testing.kaito_local import (
    GP,
    RELEASE,
    RELEASE_NAMESPACE,
    WC,
    Cluster,
    HostProcess,
    gpu_provisioner_process,
    helm_install,
    local_values,
    registry_secret,
    seed_tuning_workspace,
    workspace_controller_process,
)
from kaito_testing.ports import free_port

pytestmark = [pytest.mark.controlplane, pytest.mark.full]

Obj = dict[str, Any]
SKU = "Standard_NC6s_v3"


def wait_until(check: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.3)
    raise AssertionError(f"timed out after {timeout_s:.0f}s waiting for {what}")


@pytest.mark.parametrize("sets", [[], ["gpu-provisioner.enabled=false"]], ids=["default", "byo"])
def test_rendered_manifests_pass_server_side_dry_run(
    chart_plane: Any, helm: Helm, sets: list[str], tmp_path: Path
) -> None:
    namespace = "kaito-dry-run"
    chart_plane.kubectl("create", "namespace", namespace, check=False)
    docs = helm.template(*sets, "nvidiaDevicePlugin.enabled=true", namespace=namespace)
    manifest = tmp_path / "rendered.yaml"
    manifest.write_text(yaml.safe_dump_all(docs))
    out = chart_plane.kubectl(
        "apply", "--dry-run=server", "--server-side", "-f", str(manifest)
    ).stdout
    assert out.count("(server dry run)") == len(docs), out


@dataclass
class Installed:
    cluster: Cluster
    controller: HostProcess
    provisioner: HostProcess

    def get(self, *args: str) -> Obj:
        found: Obj = self.cluster.get_json(*args)
        return found

    def condition(self, ws: Obj, type_: str) -> str:
        for cond in (ws.get("status") or {}).get("conditions") or []:
            if cond["type"] == type_:
                return str(cond["status"])
        return ""

    def wait_condition(self, name: str, ns: str, type_: str, timeout_s: float = 90) -> Obj:
        found: Obj = {}

        def check() -> bool:
            nonlocal found
            found = self.get("workspace", name, "-n", ns)
            return self.condition(found, type_) == "True"

        try:
            wait_until(check, f"{type_}=True on {ns}/{name}", timeout_s)
        except AssertionError:
            print(json.dumps(found.get("status"), indent=1))
            raise
        return found


# Values as upstream Kaito v0.12's charts name them (docs/compatibility.md, "Helm chart"): they
# install unchanged next to ours.
UPSTREAM_STYLE_VALUES = [
    "workspace-controller.nodeProvisioner=azure-gpu-provisioner",
    "featureGates.vLLM=true",
    "featureGates.gatewayAPIInferenceExtension=false",
    "gpu-provisioner.settings.azure.clusterName=kaito-test",
]


@pytest.fixture(scope="module")
def installed(
    chart_plane: Any, bin_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Installed]:
    cluster = Cluster(bin_dir, chart_plane.kubeconfig_path)
    webhook_port = free_port()
    helm_install(cluster, [*local_values(webhook_port), REGISTRY_VALUE, *UPSTREAM_STYLE_VALUES])
    work = tmp_path_factory.mktemp("controllers")
    provisioner = gpu_provisioner_process(cluster, sys.executable, work)
    controller = workspace_controller_process(cluster, sys.executable, work, webhook_port)
    provisioner.start()
    try:
        controller.start()
    except Exception:
        provisioner.stop()
        raise
    try:
        yield Installed(cluster, controller, provisioner)
    finally:
        controller.stop()
        provisioner.stop()
        for proc in (controller, provisioner):
            print(f"--- {proc.name} log tail ---\n{proc.log_tail(3000)}")


def workspace(name: str, ns: str, body: Obj) -> str:
    doc = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": ns},
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": name}}},
        **body,
    }
    return yaml.safe_dump(doc)


def test_release_is_deployed_with_its_objects(installed: Installed) -> None:
    status = json.loads(
        installed.cluster.helm("status", RELEASE, "-n", RELEASE_NAMESPACE, "-o", "json")
    )
    assert status["info"]["status"] == "deployed"
    for name in ("inference-params-template", "lora-params-template", "qlora-params-template"):
        installed.get("configmap", name, "-n", RELEASE_NAMESPACE)
    config = installed.get(
        "validatingwebhookconfiguration", "validation.workspace.kaito.sh", "--show-managed-fields"
    )
    secret = installed.get("secret", "workspace-controller-webhook-cert", "-n", RELEASE_NAMESPACE)
    assert config["webhooks"][0]["clientConfig"]["caBundle"] == secret["data"]["ca.crt"]
    # The controller did not rewrite the chart's configuration (it runs --no-register-webhook).
    managers = {m["manager"] for m in config["metadata"]["managedFields"]}
    assert managers == {"helm"}, managers
    # The leases were taken with the ServiceAccounts' identities.
    leases = installed.get("leases", "-n", RELEASE_NAMESPACE)["items"]
    assert {lease["metadata"]["name"] for lease in leases} >= {
        "workspace-controller-leader",
        "gpu-provisioner-leader-election",
    }


@pytest.mark.parametrize(
    ("sa", "verb", "resource", "allowed"),
    [
        (WC, "create", "nodeclaims.karpenter.sh", True),
        (WC, "patch", "nodes", True),
        (WC, "create", "nodes", False),
        (WC, "get", "secrets", False),
        (WC, "update", "nodeclaims.karpenter.sh/status", False),
        (WC, "create", "validatingwebhookconfigurations.admissionregistration.k8s.io", False),
        (GP, "create", "nodes", True),
        (GP, "create", "pods/eviction", True),
        (GP, "update", "nodeclaims.karpenter.sh/status", True),
        (GP, "create", "nodeclaims.karpenter.sh", False),
        (GP, "list", "secrets", False),
        (GP, "list", "workspaces.kaito.sh", False),
    ],
)
def test_service_accounts_get_only_what_they_need(
    installed: Installed, sa: str, verb: str, resource: str, allowed: bool
) -> None:
    resource, _, subresource = resource.partition("/")
    argv = ["auth", "can-i", verb, resource, "--all-namespaces",
            f"--as=system:serviceaccount:{RELEASE_NAMESPACE}:{sa}"]  # fmt: skip
    if subresource:
        argv.append(f"--subresource={subresource}")
    answer = installed.cluster.kubectl(*argv, check=False).strip()
    assert answer == ("yes" if allowed else "no"), f"{sa} {verb} {resource}: {answer}"


def test_webhook_served_with_the_charts_certificate_rejects_bad_workspaces(
    installed: Installed,
) -> None:
    installed.cluster.kubectl("create", "namespace", "webhook-check", check=False)
    body = {"inference": {"preset": {"name": "no-such-model"}}}
    result = subprocess_apply(installed, workspace("bad", "webhook-check", body))
    assert result.returncode != 0
    assert "admission webhook" in result.stderr and "no-such-model" in result.stderr


def subprocess_apply(installed: Installed, text: str) -> subprocess.CompletedProcess[str]:
    cluster = installed.cluster
    argv = [str(cluster.bin_dir / "kubectl"), "--kubeconfig", str(cluster.kubeconfig)]
    return subprocess.run(
        [*argv, "apply", "-f", "-"],
        input=text,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_upstream_style_values_installed(installed: Installed) -> None:
    """The release took upstream's value names: the top-level gates reached the controller's
    ConfigMap, the provisioner alias the controller's flags."""
    gates = installed.get("configmap", f"{RELEASE}-feature-gates", "-n", RELEASE_NAMESPACE)
    assert gates["data"] == {
        "KAITO_WC_FEATURE_GATES_FROM_VALUES": "gatewayAPIInferenceExtension=false,vLLM=true"
    }
    deployment = installed.get("deployment", "workspace-controller", "-n", RELEASE_NAMESPACE)
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--node-provisioner=azure-gpu-provisioner" in args, args


def test_inference_and_tuning_workspaces_then_deletion(installed: Installed) -> None:
    ns = "e2e"
    installed.cluster.kubectl("create", "namespace", ns, check=False)
    installed.cluster.kubectl(
        "apply", "-f", "-",
        input=workspace("tiny", ns, {"inference": {"preset": {"name": "test-tiny-llama"}}}),
    )  # fmt: skip
    ws = installed.wait_condition("tiny", ns, "InferenceReady")
    installed.wait_condition("tiny", ns, "WorkspaceSucceeded")
    (node,) = ws["status"]["workerNodes"]
    claim = installed.get("nodeclaim", node)
    assert claim["metadata"]["labels"]["kaito.sh/workspace"] == "tiny"
    assert any(
        c["type"] == "Ready" and c["status"] == "True" for c in claim["status"]["conditions"]
    )
    workload = installed.get("statefulset", "tiny", "-n", ns)
    assert workload["status"].get("readyReplicas") == 1
    installed.get("service", "tiny", "-n", ns)
    copied = installed.get("configmap", "tiny-inference-params", "-n", ns)
    template = installed.get("configmap", "inference-params-template", "-n", RELEASE_NAMESPACE)
    assert copied["data"] == template["data"]

    installed.cluster.kubectl("delete", "workspace", "tiny", "-n", ns, "--wait=false")

    def gone() -> bool:
        left = installed.cluster.kubectl("get", "workspace", "tiny", "-n", ns, check=False)
        claims = installed.cluster.kubectl("get", "nodeclaim", node, check=False)
        nodes = installed.cluster.kubectl("get", "node", node, check=False)
        return not (left or claims or nodes)

    wait_until(gone, "the Workspace, its NodeClaim and its Node to be deleted")


def test_seed_tuning_workspace_starts_its_job_then_is_deleted(installed: Installed) -> None:
    ns = "e2e-tuning"
    cluster = installed.cluster
    cluster.kubectl("create", "namespace", ns, check=False)
    # The registry is only named: kwok runs the Job's pod, nothing pushes to it.
    host = "127.0.0.1:5000"
    cluster.kubectl("apply", "-f", "-", input=registry_secret("push", ns, host, "u", "p"))
    cluster.kubectl("apply", "-n", ns, "-f", "-", input=seed_tuning_workspace(host, "push"))
    ws = installed.wait_condition("workspace-tuning-phi-3", ns, "JobStarted")
    assert ws["tuning"]["output"]["image"] == f"{host}/tuning-phi-3:0.0.1"
    job = installed.get("job", "workspace-tuning-phi-3", "-n", ns)
    assert job["metadata"]["labels"]["kaito.sh/workspace"] == "workspace-tuning-phi-3"
    copies = installed.get("configmaps", "-n", ns, "-l", "kaito.sh/workspace")["items"]
    template = installed.get("configmap", "qlora-params-template", "-n", RELEASE_NAMESPACE)
    assert [c["data"] for c in copies] == [template["data"]]
    (node,) = ws["status"]["workerNodes"]

    cluster.kubectl("delete", "workspace", "workspace-tuning-phi-3", "-n", ns, "--wait=false")

    def gone() -> bool:
        left = cluster.kubectl("get", "workspace", "workspace-tuning-phi-3", "-n", ns, check=False)
        return not (left or cluster.kubectl("get", "node", node, check=False))

    wait_until(gone, "the tuning Workspace and its node to be deleted")


def test_no_request_was_forbidden(installed: Installed) -> None:
    for proc in (installed.controller, installed.provisioner):
        log = proc.log_path.read_text()
        assert "Forbidden" not in log and " 403" not in log, proc.log_tail()


def test_uninstall_removes_the_release_but_keeps_the_crds(installed: Installed) -> None:
    cluster = installed.cluster
    cluster.helm("uninstall", RELEASE, "-n", RELEASE_NAMESPACE, "--wait")
    assert not cluster.kubectl(
        "get", "validatingwebhookconfiguration", "validation.workspace.kaito.sh", check=False
    )
    assert not cluster.kubectl("get", "clusterrole", f"{RELEASE}-{WC}", check=False)
    assert cluster.kubectl("get", "crd", "workspaces.kaito.sh", "nodeclaims.karpenter.sh")
