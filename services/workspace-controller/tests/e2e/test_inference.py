"""End to end: an inference Workspace on the full local control plane with kwok nodes."""

from __future__ import annotations

import asyncio
import secrets
from typing import Any

import pytest
from wc_helpers.cluster import (
    NODECLAIM,
    WORKSPACE,
    ControllerProcess,
    claim_condition,
    fulfil_claim,
)
from wc_helpers.waits import (
    claims_of,
    condition,
    printer_columns,
    wait_claims,
    wait_condition,
    wait_event,
)

from kaito_common.api.workspace import Workspace
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import DEPLOYMENT, NODE, POD, SERVICE, STATEFUL_SET
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane
from kaito_testing.earlier_release import earlier_release_deployment
from workspace_controller.manifests.nodeclaim import NodeClassRef, nodeclaim_manifest

pytestmark = pytest.mark.full

Obj = dict[str, Any]


def workspace(name: str, namespace: str, preset: str, sku: str, count: int = 1) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "count": count,
            "instanceType": sku,
            "labelSelector": {"matchLabels": {"apps": f"{name}-{secrets.token_hex(3)}"}},
        },
        "inference": {"preset": {"name": preset}},
    }


async def ready_pods(kube: KubeClient, name: str, namespace: str) -> list[Obj]:
    pods = await kube.list_all(POD, namespace, label_selector=f"kaito.sh/workspace={name}")
    return [
        p
        for p in pods
        if not p["metadata"].get("deletionTimestamp")
        and any(
            c["type"] == "Ready" and c["status"] == "True"
            for c in (p.get("status") or {}).get("conditions") or []
        )
    ]


async def test_phi3_workspace_end_to_end(
    kube: KubeClient,
    namespace: str,
    control_plane: ControlPlane,
    controller: ControllerProcess,
) -> None:
    name = "workspace-phi-3-mini"
    manifest = workspace(name, namespace, "phi-3-mini-4k-instruct", "Standard_NC6s_v3")
    created = await kube.create(WORKSPACE, manifest)

    # A NodeClaim with the exact manifest appears.
    (claim,) = await wait_claims(kube, name, namespace, 1)
    expected = nodeclaim_manifest(
        Workspace.model_validate(created), claim["metadata"]["name"], NodeClassRef(), 80
    )
    assert claim["metadata"]["labels"] == expected["metadata"]["labels"]
    assert claim["metadata"]["annotations"] == expected["metadata"]["annotations"]
    assert claim["spec"] == expected["spec"]
    ws = await wait_condition(kube, name, namespace, "ResourceReady", "False")
    assert "0 of 1 Ready node(s)" in condition(ws, "ResourceReady")["message"]
    assert (await kube.get_or_none(STATEFUL_SET, name, namespace)) is None

    # The provisioner's part: a Ready node with a GPU (2, so a rolling update can surge).
    node_name = await fulfil_claim(kube, claim, gpus=2)
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    service = await kube.get(SERVICE, name, namespace)
    ports = {(p["name"], p["port"], p["targetPort"]) for p in service["spec"]["ports"]}
    assert ports == {("http", 80, 5000), ("torch", 29500, 29500)}
    (pod,) = await ready_pods(kube, name, namespace)
    assert pod["spec"]["nodeName"] == node_name and pod["status"]["phase"] == "Running"
    # Upstream's shape: StatefulSet <ws>, pod <ws>-0, headless Service <ws>-headless.
    assert pod["metadata"]["name"] == f"{name}-0"
    assert (await kube.get(SERVICE, f"{name}-headless", namespace))["spec"]["clusterIP"] == "None"
    assert "publishNotReadyAddresses" not in service["spec"]  # only Ready pods get requests
    node = await kube.get(NODE, node_name)
    assert node["metadata"]["labels"]["accelerator"] == "nvidia"
    table = control_plane.kubectl("get", "workspace", name, "-n", namespace).stdout
    columns = printer_columns(table)
    assert columns["INSTANCE"] == "Standard_NC6s_v3" and columns["JOBSTARTED"] == ""
    assert columns["RESOURCEREADY"] == "True"
    assert columns["INFERENCEREADY"] == "True"
    assert columns["WORKSPACESUCCEEDED"] == "True"
    assert columns["TARGETNODECOUNT"] == "1" and columns["STATE"] == "Ready"
    ws = await kube.get(WORKSPACE, name, namespace)
    assert ws["status"]["workerNodes"] == [node_name] and ws["status"]["state"] == "Ready"
    assert ws["metadata"]["annotations"]["workspace.kaito.io/revision"] == "1"

    # A converged workspace: a reconcile writes nothing.
    before_writes, before_reconciles = controller.writes(), controller.reconciles()
    await kube.patch(WORKSPACE, name, {"metadata": {"labels": {"touch": "1"}}}, namespace)
    await eventually(
        lambda: controller.reconciles() > before_reconciles, what="a reconcile after the touch"
    )
    await asyncio.sleep(0.5)  # let any write the reconcile would make land in the counter
    assert controller.writes() == before_writes, "a converged reconcile wrote to the API"

    # Adapters change: a new revision rolls out, with a pod serving throughout (a surge pod
    # <ws>-1 first, then <ws>-0 replaced, then the surge pod goes).
    old_pod = pod["metadata"]["uid"]
    seen: set[str] = set()
    adapters = [{"source": {"name": "adapter-a", "image": "registry.local/adapter-a:1"}}]
    await kube.patch(WORKSPACE, name, {"inference": {"adapters": adapters}}, namespace)
    served_throughout = True

    async def rolled() -> bool:
        nonlocal served_throughout
        pods = await ready_pods(kube, name, namespace)
        served_throughout = served_throughout and bool(pods)
        seen.update(p["metadata"]["name"] for p in pods)
        sts = await kube.get(STATEFUL_SET, name, namespace)
        return (
            len(pods) == 1
            and all(
                p["metadata"]["annotations"].get("workspace.kaito.io/revision") == "2" for p in pods
            )
            and all(p["metadata"]["uid"] != old_pod for p in pods)
            and sts["spec"]["replicas"] == 1
        )

    await eventually(rolled, timeout_s=60, interval_s=0.02, what="the rollout of revision 2")
    assert served_throughout, "no ready pod during the rollout"
    assert seen == {f"{name}-0", f"{name}-1"}, seen  # the surge pod served on the way
    sts = await kube.get(STATEFUL_SET, name, namespace)
    assert sts["metadata"]["annotations"]["workspace.kaito.io/revision"] == "2"
    assert sts["spec"]["updateStrategy"]["rollingUpdate"]["partition"] == 0
    pod_spec = sts["spec"]["template"]["spec"]
    assert [c["name"] for c in pod_spec["initContainers"]] == [
        "model-download",
        "adapter-adapter-a",
    ]
    assert {"name": "adapter-a", "value": "1.0"} in pod_spec["containers"][0]["env"]
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")

    # A Deployment <ws> as the earlier release made it goes once the StatefulSet serves.
    ws_obj = await kube.get(WORKSPACE, name, namespace)
    await kube.create(DEPLOYMENT, earlier_release_deployment(ws_obj, sts))

    async def migrated() -> bool:
        return await kube.get_or_none(DEPLOYMENT, name, namespace) is None

    await eventually(migrated, timeout_s=30, what="the earlier release's Deployment to go")
    event = await wait_event(kube, name, namespace, "WorkloadMigration")
    assert "StatefulSet" in event["message"], event

    # Delete: NodeClaims and children go; the workspace is gone.
    await kube.delete(WORKSPACE, name, namespace)

    async def gone() -> bool:
        return (
            await kube.get_or_none(WORKSPACE, name, namespace) is None
            and not await claims_of(kube, name, namespace)
            and await kube.get_or_none(STATEFUL_SET, name, namespace) is None
        )

    await eventually(gone, timeout_s=60, what="the workspace, its NodeClaims and StatefulSet gone")
    await kube.delete(NODE, node_name)


async def test_multinode_preset_gets_statefulset_and_headless_service(
    kube: KubeClient, namespace: str
) -> None:
    name = "qwen-multi"
    manifest = workspace(
        name, namespace, "qwen2.5-coder-32b-instruct", "Standard_NC24ads_A100_v4", 2
    )
    await kube.create(WORKSPACE, manifest)
    claims = await wait_claims(kube, name, namespace, 2)
    nodes = [await fulfil_claim(kube, c) for c in claims]
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    sts = await kube.get(STATEFUL_SET, name, namespace)
    assert sts["spec"]["replicas"] == 2 and sts["spec"]["serviceName"] == f"{name}-headless"
    headless = await kube.get(SERVICE, f"{name}-headless", namespace)
    assert headless["spec"]["clusterIP"] == "None"
    assert len(await ready_pods(kube, name, namespace)) == 2
    await kube.delete(WORKSPACE, name, namespace)
    await eventually(
        lambda: _absent(kube, name, namespace), timeout_s=60, what="multi-node workspace gone"
    )
    for node in nodes:
        await kube.delete(NODE, node)


async def _absent(kube: KubeClient, name: str, namespace: str) -> bool:
    return await kube.get_or_none(WORKSPACE, name, namespace) is None


async def test_node_that_never_comes_shows_the_provider_error(
    kube: KubeClient, namespace: str
) -> None:
    name = "no-quota"
    await kube.create(
        WORKSPACE, workspace(name, namespace, "phi-3-mini-4k-instruct", "Standard_NC6s_v3")
    )
    (claim,) = await wait_claims(kube, name, namespace, 1)
    ws = await wait_condition(kube, name, namespace, "ResourceReady", "False")
    message = condition(ws, "ResourceReady")["message"]
    assert "0 of 1 Ready node(s) with instance type Standard_NC6s_v3" in message
    error = "Operation could not be completed as it results in exceeding approved quota"
    await kube.patch(
        NODECLAIM,
        claim["metadata"]["name"],
        {"status": {"conditions": [claim_condition("Launched", "Unknown", "LaunchFailed", error)]}},
        subresource="status",
    )

    async def shows_error() -> bool:
        ws = await kube.get(WORKSPACE, name, namespace)
        return error in condition(ws, "ResourceReady").get("message", "")

    await eventually(shows_error, timeout_s=30, what="the quota error in ResourceReady")
    ws = await kube.get(WORKSPACE, name, namespace)
    assert condition(ws, "WorkspaceSucceeded")["status"] == "False"
    assert ws["status"]["state"] == "Pending"
    assert len(await claims_of(kube, name, namespace)) == 1, "a failing claim is not duplicated"
    # And the operator sees it in `kubectl describe workspace`: one Warning, counted, not repeated.
    event = await wait_event(kube, name, namespace, "NodeClaimLaunchFailed")
    assert event["type"] == "Warning" and error in event["message"], event
