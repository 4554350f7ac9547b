"""End to end: tuning Workspaces on the full local control plane with kwok nodes.

- The seed's manifest, applied with `kubectl apply -f` (placeholders filled in), goes through
  NodeClaim -> Node -> Job; the Job's pod spec is checked field by field; kwok runs the pod to
  completion; a new input URL replaces the Job under a new revision.
- On a Node whose kubelet the test plays, the pod's status is written as a kubelet would: the
  trainer running (its progress gauges, named as the runner exports them, served on the pod's
  loopback IP), then ending with an exit code and a termination message.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import secrets
from collections.abc import Iterator
from typing import Any

import pytest
from prometheus_client import start_http_server
from wc_helpers.cluster import (
    REPO,
    WORKSPACE,
    ControllerProcess,
    fulfil_claim,
    now_rfc3339,
    session_hub,
)
from wc_helpers.trainer import TrainerGauges
from wc_helpers.waits import condition, printer_columns, wait_claims, wait_condition

from kaito_common.api.workspace import Workspace
from kaito_common.controller.apply import is_subset
from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import CONFIG_MAP, JOB, NODE, POD
from kaito_common.presets import default_catalog
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.tuning.job import job_pod_spec
from workspace_controller.tuning.plan import tuning_plan

pytestmark = pytest.mark.full

Obj = dict[str, Any]
SEED = REPO / "examples" / "kaito_workspace_tuning_phi_3.yaml"
CHART_FILES = REPO / "charts" / "kaito" / "charts" / "workspace-controller" / "files"
CATALOG = default_catalog(include_test=True)


async def wait_job(
    kube: KubeClient, name: str, namespace: str, revision: str, timeout_s: float = 60
) -> Obj:
    job: Obj | None = None

    async def found() -> bool:
        nonlocal job
        job = await kube.get_or_none(JOB, name, namespace)
        annotations = ((job or {}).get("metadata") or {}).get("annotations") or {}
        return (
            job is not None
            and not job["metadata"].get("deletionTimestamp")
            and annotations.get("workspace.kaito.io/revision") == revision
        )

    await eventually(found, timeout_s=timeout_s, what=f"Job {name} of revision {revision}")
    assert job is not None
    return job


def assert_pod_spec_matches(expected: Obj, live: Obj) -> None:
    """Every field the builder sets is in the live pod spec, container by container."""
    for key in ("initContainers", "containers"):
        want = {c["name"]: c for c in expected.get(key) or []}
        have = {c["name"]: c for c in live.get(key) or []}
        assert list(want) == list(have), key
        for name, container in want.items():
            for field, value in container.items():
                assert is_subset(value, have[name].get(field)), (key, name, field)
    for field in ("volumes", "tolerations", "affinity", "securityContext", "restartPolicy"):
        assert is_subset(expected[field], live.get(field)), field


async def test_seed_tuning_workspace_end_to_end(
    kube: KubeClient, namespace: str, control_plane: ControlPlane, controller: ControllerProcess
) -> None:
    name = "workspace-tuning-phi-3"
    image = "kaitotest.azurecr.io/phi-3-adapter:0.0.1"
    manifest = (
        SEED.read_text()
        .replace("ACR_REPO_HERE.azurecr.io/IMAGE_NAME_HERE:0.0.1", image)
        .replace("ACR_REGISTRY_SECRET_HERE", "acr-push-secret")
    )
    control_plane.kubectl(
        "create", "secret", "docker-registry", "acr-push-secret", "-n", namespace,
        "--docker-server=kaitotest.azurecr.io", "--docker-username=kaito",
        "--docker-password=not-a-real-password",
    )  # fmt: skip
    applied = control_plane.kubectl("apply", "-n", namespace, "-f", "-", input=manifest)
    assert "created" in applied.stdout

    # NodeClaim -> Node (kwok runs its pods) -> Job.
    (claim,) = await wait_claims(kube, name, namespace, 1)
    assert "Standard_NC6s_v3" in json.dumps(claim["spec"]["requirements"])
    node_name = await fulfil_claim(kube, claim, gpus=1)
    job = await wait_job(kube, name, namespace, "1")
    ws = await wait_condition(kube, name, namespace, "JobStarted", "True")
    assert condition(ws, "ResourceReady")["status"] == "True"

    # The pod spec, field by field, against the builder given the same workspace.
    workspace = Workspace.model_validate(ws)
    preset = CATALOG.preset("phi-3-mini-128k-instruct")
    assert preset is not None
    plan = tuning_plan(
        workspace,
        preset,
        CATALOG.sku("Standard_NC6s_v3"),
        revision="1",
        # The controller process downloads from the session's hub (--hf-endpoint).
        images=ImageSettings(hf_endpoint=session_hub().url),
        config_map=f"{name}-tuning-params",
        output_dir="/mnt/results",
        metrics_port=controller.tuning_metrics_port,
        allow_loopback=True,
        backoff_limit=2,
        provisioned=True,
    )
    live = job["spec"]["template"]["spec"]
    assert_pod_spec_matches(job_pod_spec(plan), live)
    download, fetch, trainer = live["initContainers"]
    assert download["name"] == "model-download"
    assert "--repo=microsoft/Phi-3-mini-128k-instruct" in download["command"]
    (pusher,) = live["containers"]
    seed_url = workspace.tuning.input.urls[0]  # type: ignore[union-attr,index]
    assert fetch["command"][5:8] == ["fetch", "--dest", "/mnt/data"]
    assert ["--url", seed_url] == fetch["command"][8:10]
    assert trainer["resources"]["requests"] == {"nvidia.com/gpu": "1"}
    assert trainer["resources"]["limits"] == {"nvidia.com/gpu": "1"}
    assert {m["mountPath"] for m in trainer["volumeMounts"]} >= {
        "/mnt/config",
        "/mnt/data",
        "/mnt/results",
    }
    assert pusher["command"][5:8] == ["push", "--image", image]
    volumes = {v["name"]: v for v in live["volumes"]}
    assert volumes["push-secret"]["secret"]["secretName"] == "acr-push-secret"
    assert all(
        not (c.get("securityContext") or {}).get("privileged")
        for c in [*live["initContainers"], *live["containers"]]
    )
    selector = live["affinity"]["nodeAffinity"]["requiredDuringSchedulingIgnoredDuringExecution"]
    expressions = selector["nodeSelectorTerms"][0]["matchExpressions"]
    assert {"key": "app", "operator": "In", "values": ["tuning-phi-3"]} in expressions
    assert job["spec"]["template"]["metadata"]["labels"]["kaito.sh/workspace"] == name
    assert job["metadata"]["ownerReferences"][0]["uid"] == ws["metadata"]["uid"]

    # The copy of the chart's qlora template is what the trainer mounts.
    params = await kube.get(CONFIG_MAP, f"{name}-tuning-params", namespace)
    qlora = (CHART_FILES / "qlora-params-template.yaml").read_text()
    assert params["data"] == {"training_config.yaml": qlora}

    # kwok completes the pod: the Job succeeds, and so does the workspace.
    ws = await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    assert ws["status"]["state"] == "Succeeded"
    assert image in condition(ws, "WorkspaceSucceeded")["message"]
    columns = printer_columns(
        control_plane.kubectl("get", "workspace", name, "-n", namespace).stdout
    )
    assert columns["JOBSTARTED"] == "True" and columns["WORKSPACESUCCEEDED"] == "True"

    # New input: the Job is replaced under revision 2.
    new_url = "https://huggingface.co/datasets/kaito/other/resolve/main/train.jsonl"
    await kube.patch(WORKSPACE, name, {"tuning": {"input": {"urls": [new_url]}}}, namespace)
    replaced = await wait_job(kube, name, namespace, "2")
    assert replaced["metadata"]["uid"] != job["metadata"]["uid"]
    assert replaced["spec"]["template"]["spec"]["initContainers"][1]["command"][8:10] == [
        "--url",
        new_url,
    ]
    ws = await kube.get(WORKSPACE, name, namespace)
    assert ws["metadata"]["annotations"]["workspace.kaito.io/revision"] == "2"

    async def succeeded_again() -> bool:
        ws = await kube.get(WORKSPACE, name, namespace)
        return (
            condition(ws, "WorkspaceSucceeded").get("status") == "True"
            and condition(ws, "WorkspaceSucceeded").get("observedGeneration")
            == ws["metadata"]["generation"]
        )

    await eventually(succeeded_again, timeout_s=60, what="revision 2 to succeed")
    await kube.delete(WORKSPACE, name, namespace)
    await eventually(
        lambda: _gone(kube, name, namespace), timeout_s=60, what="the tuning workspace gone"
    )
    await kube.delete(NODE, node_name)


async def _gone(kube: KubeClient, name: str, namespace: str) -> bool:
    return await kube.get_or_none(WORKSPACE, name, namespace) is None


# ----------------------------------------------------------------------------------------------
# The test as kubelet.


def tiny_tuning(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"app": f"{name}-{secrets.token_hex(3)}"}},
        },
        "tuning": {
            "preset": {"name": "test-tiny-llama"},
            "method": "lora",
            "input": {"urls": ["http://127.0.0.1:8000/dolly.jsonl"]},
            "output": {"image": "127.0.0.1:5000/tuned/tiny:1", "imagePushSecret": "push"},
        },
    }


def terminated(name: str, code: int, message: str = "") -> Obj:
    state: Obj = {
        "exitCode": code,
        "reason": "Completed" if code == 0 else "Error",
        "startedAt": now_rfc3339(),
        "finishedAt": now_rfc3339(),
    }
    if message:
        state["message"] = message
    return _status(name, {"terminated": state})


def _status(name: str, state: Obj) -> Obj:
    return {
        "name": name,
        "image": "image",
        "imageID": "image",
        "ready": False,
        "restartCount": 0,
        "state": state,
    }


async def job_pod(kube: KubeClient, name: str, namespace: str) -> Obj:
    pods: list[Obj] = []

    async def scheduled() -> bool:
        nonlocal pods
        pods = await kube.list_all(POD, namespace, label_selector=f"job-name={name}")
        return len(pods) == 1 and bool(pods[0]["spec"].get("nodeName"))

    await eventually(scheduled, timeout_s=60, what=f"the pod of Job {name} to be scheduled")
    return pods[0]


async def write_pod_status(kube: KubeClient, pod: Obj, status: Obj) -> None:
    await kube.patch(
        POD,
        pod["metadata"]["name"],
        {"status": status},
        pod["metadata"]["namespace"],
        subresource="status",
    )


async def start_training(kube: KubeClient, pod: Obj, started_s_ago: float) -> None:
    """As a kubelet: fetch done, trainer running, pusher not started; a loopback pod IP."""
    started = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=started_s_ago)
    await write_pod_status(
        kube,
        pod,
        {
            "phase": "Pending",
            "hostIP": "10.240.0.10",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "startTime": now_rfc3339(),
            "initContainerStatuses": [
                terminated("fetch", 0),
                _status(
                    "trainer", {"running": {"startedAt": started.strftime("%Y-%m-%dT%H:%M:%SZ")}}
                ),
            ],
            "containerStatuses": [_status("pusher", {"waiting": {"reason": "PodInitializing"}})],
        },
    )


@contextlib.contextmanager
def serving(reporter: TrainerGauges, port: int) -> Iterator[None]:
    server, thread = start_http_server(port, addr="127.0.0.1", registry=reporter.registry)
    try:
        yield
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


async def tuning_ws_with_kubelet(kube: KubeClient, name: str, namespace: str) -> tuple[Obj, str]:
    await kube.create(WORKSPACE, tiny_tuning(name, namespace))
    (claim,) = await wait_claims(kube, name, namespace, 1)
    node = await fulfil_claim(kube, claim, gpus=1, kwok=False)
    await wait_job(kube, name, namespace, "1")
    await wait_condition(kube, name, namespace, "JobStarted", "True")
    return await job_pod(kube, name, namespace), node


async def test_progress_then_failure_with_the_trainers_message(
    kube: KubeClient, namespace: str, controller: ControllerProcess
) -> None:
    name = "tune-fails"
    pod, node = await tuning_ws_with_kubelet(kube, name, namespace)
    reporter = TrainerGauges()  # the gauges the runner exports, by the contract's names
    reporter.update(phase="Training", step=3, total_steps=10, loss=1.5, epoch=0.3)
    with serving(reporter, controller.tuning_metrics_port):
        await start_training(kube, pod, started_s_ago=30)

        async def progress(step: int) -> bool:
            ws = await kube.get(WORKSPACE, name, namespace)
            return ((ws.get("status") or {}).get("tuningProgress") or {}).get("step") == step

        await eventually(lambda: progress(3), timeout_s=30, what="step 3 in tuningProgress")
        ws = await kube.get(WORKSPACE, name, namespace)
        shown = ws["status"]["tuningProgress"]
        assert shown["totalSteps"] == 10 and shown["loss"] == 1.5
        assert 40 <= shown["etaSeconds"] <= 200, shown  # ~30 s for 3 steps, 7 to go
        assert ws["status"]["state"] == "Running"
        summary = condition(ws, "WorkspaceSucceeded")
        assert summary["status"] == "False" and "step 3 of 10" in summary["message"]
        reporter.update(step=7, loss=0.9)
        await eventually(lambda: progress(7), timeout_s=30, what="step 7 in tuningProgress")

    reason = "InvalidDataset: dolly.jsonl has no column the runner can train on"
    await write_pod_status(
        kube,
        pod,
        {
            "phase": "Failed",
            "initContainerStatuses": [terminated("fetch", 0), terminated("trainer", 1, reason)],
            "containerStatuses": [_status("pusher", {"waiting": {"reason": "PodInitializing"}})],
        },
    )
    ws = await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "False")

    async def failed() -> bool:
        nonlocal ws
        ws = await kube.get(WORKSPACE, name, namespace)
        return (ws.get("status") or {}).get("state") == "Failed"

    await eventually(failed, timeout_s=60, what="state Failed")
    message = condition(ws, "WorkspaceSucceeded")["message"]
    assert reason in message and "trainer" in message, message
    assert condition(ws, "WorkspaceSucceeded")["reason"] == "TuningJobFailed"
    assert condition(ws, "JobStarted")["status"] == "False"
    assert ws["status"]["tuningProgress"]["phase"] == "Failed"
    job = await kube.get(JOB, name, namespace)
    assert int(job["status"].get("failed") or 0) == 1, "the runner's exit 1 is not retried"
    await kube.delete(NODE, node)


async def test_success_shows_the_final_progress(
    kube: KubeClient, namespace: str, controller: ControllerProcess
) -> None:
    name = "tune-succeeds"
    pod, node = await tuning_ws_with_kubelet(kube, name, namespace)
    final = {
        "phase": "Completed", "step": 30, "total_steps": 30, "epoch": 3.0, "loss": 0.42,
        "eta_seconds": 0.0, "tokens_per_second": 812.5, "tokens_seen": 9000, "message": "",
    }  # fmt: skip
    await write_pod_status(
        kube,
        pod,
        {
            "phase": "Succeeded",
            "podIP": "127.0.0.1",
            "podIPs": [{"ip": "127.0.0.1"}],
            "initContainerStatuses": [
                terminated("fetch", 0),
                terminated("trainer", 0, json.dumps(final)),
            ],
            "containerStatuses": [terminated("pusher", 0)],
        },
    )
    ws = await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    assert ws["status"]["state"] == "Succeeded"
    assert ws["status"]["tuningProgress"] == {
        "phase": "Completed",
        "step": 30,
        "totalSteps": 30,
        "loss": 0.42,
        "epoch": 3.0,
        "etaSeconds": 0,
        "tokensPerSecond": 812.5,
    }
    assert condition(ws, "JobStarted")["status"] == "True"
    # Training is over: losing the node changes nothing (and no new NodeClaim is made).
    await kube.delete(NODE, node)
    before = controller.reconciles()
    await kube.patch(WORKSPACE, name, {"metadata": {"labels": {"touch": "1"}}}, namespace)
    await eventually(lambda: controller.reconciles() > before, what="a reconcile after the touch")
    ws = await kube.get(WORKSPACE, name, namespace)
    assert condition(ws, "WorkspaceSucceeded")["status"] == "True"
    assert len(await wait_claims(kube, name, namespace, 1)) == 1


async def test_volume_output_has_no_push_step(kube: KubeClient, namespace: str) -> None:
    name = "tune-to-volume"
    obj = tiny_tuning(name, namespace)
    obj["tuning"]["input"] = {"volumeSource": {"hostPath": {"path": "/srv/dolly"}}}
    obj["tuning"]["output"] = {"volumeSource": {"emptyDir": {}}}
    await kube.create(WORKSPACE, obj)
    (claim,) = await wait_claims(kube, name, namespace, 1)
    node = await fulfil_claim(kube, claim, gpus=1, kwok=False)
    job = await wait_job(kube, name, namespace, "1")
    spec = job["spec"]["template"]["spec"]
    # No fetch (volume input) and no push (volume output): only the tiny preset's weights copy.
    assert [c["name"] for c in spec["initContainers"]] == ["model-weights"]
    assert [c["name"] for c in spec["containers"]] == ["trainer"]
    volumes = {v["name"]: v for v in spec["volumes"]}
    assert volumes["data"]["hostPath"]["path"] == "/srv/dolly"
    assert volumes["results"]["emptyDir"] == {}
    pod = await job_pod(kube, name, namespace)
    await write_pod_status(
        kube, pod, {"phase": "Succeeded", "containerStatuses": [terminated("trainer", 0)]}
    )
    ws = await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    assert "written to the output volume" in condition(ws, "WorkspaceSucceeded")["message"]
    assert ws["status"]["state"] == "Succeeded"
    await kube.delete(NODE, node)
