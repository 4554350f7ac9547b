"""End to end: the Events `kubectl describe workspace` shows, for a Workspace that becomes ready
and for each injected failure (an image that cannot be pulled, an OOM kill, a crash loop, a
tuning Job that fails with the runner's message). Pod statuses are written as a kubelet would,
through the status subresource, on a Node whose kubelet the test plays. The controller reconciles
a failing workspace every 0.5 s: each failure must still be one Event."""

from __future__ import annotations

import asyncio
import re
import secrets
from typing import Any

import pytest
from wc_helpers.cluster import WORKSPACE, ControllerProcess, fulfil_claim
from wc_helpers.waits import events_of, wait_claims, wait_condition, wait_event

from kaito_common.controller.client import KubeClient
from kaito_common.controller.kinds import NODE, POD
from kaito_testing.controllers import eventually
from kaito_testing.controlplane import ControlPlane

pytestmark = pytest.mark.full

Obj = dict[str, Any]


def inference_ws(name: str, namespace: str) -> Obj:
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name, "namespace": namespace},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": f"{name}-{secrets.token_hex(3)}"}},
        },
        "inference": {"preset": {"name": "phi-3-mini-4k-instruct"}},
    }


def tuning_ws(name: str, namespace: str) -> Obj:
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


async def kubelet_pod(kube: KubeClient, namespace: str, selector: str) -> Obj:
    pods: list[Obj] = []

    async def scheduled() -> bool:
        nonlocal pods
        pods = await kube.list_all(POD, namespace, label_selector=selector)
        return len(pods) == 1 and bool(pods[0]["spec"].get("nodeName"))

    await eventually(scheduled, timeout_s=60, what=f"one pod of {selector} scheduled")
    return pods[0]


async def write_pod_status(kube: KubeClient, pod: Obj, status: Obj) -> None:
    meta = pod["metadata"]
    body = {"status": status}
    await kube.patch(POD, meta["name"], body, meta["namespace"], subresource="status")


def container(name: str, image: str, state: Obj, restarts: int = 0, last: Obj | None = None) -> Obj:
    status: Obj = {
        "name": name,
        "image": image,
        "imageID": "",
        "ready": False,
        "restartCount": restarts,
        "state": state,
    }
    if last is not None:
        status["lastState"] = last
    return status


def describe(plane: ControlPlane, name: str, namespace: str) -> str:
    return str(plane.kubectl("describe", "workspace", name, "-n", namespace).stdout)


async def test_a_ready_workspace_tells_each_step_once(
    kube: KubeClient, namespace: str, control_plane: ControlPlane, controller: ControllerProcess
) -> None:
    name = "events-ready"
    await kube.create(WORKSPACE, inference_ws(name, namespace))
    (claim,) = await wait_claims(kube, name, namespace, 1)
    node = await fulfil_claim(kube, claim, gpus=1)  # kwok runs the pod: it becomes Ready
    await wait_condition(kube, name, namespace, "WorkspaceSucceeded", "True")
    await wait_event(kube, name, namespace, "WorkspaceSucceeded")
    # More reconciles of the converged workspace say nothing again.
    before = controller.reconciles()
    for touch in range(3):
        await kube.patch(WORKSPACE, name, {"metadata": {"labels": {"t": str(touch)}}}, namespace)
    await eventually(lambda: controller.reconciles() >= before + 3, what="three reconciles")
    await asyncio.sleep(0.5)
    events = await events_of(kube, name, namespace)
    told = sorted((e["type"], e["reason"], e["count"]) for e in events)
    assert told == [
        ("Normal", "InferenceReady", 1),
        ("Normal", "NodeClaimCreated", 1),
        ("Normal", "ResourcesReady", 1),
        ("Normal", "WorkloadCreated", 1),
        ("Normal", "WorkspaceSucceeded", 1),
    ]
    assert all(e["source"]["component"] == "workspace-controller" for e in events)
    text = describe(control_plane, name, namespace)
    events_section = text[text.index("Events:") :]
    for reason in ("NodeClaimCreated", "ResourcesReady", "InferenceReady", "WorkspaceSucceeded"):
        assert reason in events_section, text
    await kube.delete(WORKSPACE, name, namespace)
    await kube.delete(NODE, node)


async def test_pod_failures_are_warnings_once_each(
    kube: KubeClient, namespace: str, control_plane: ControlPlane
) -> None:
    name = "events-pod-failures"
    await kube.create(WORKSPACE, inference_ws(name, namespace))
    (claim,) = await wait_claims(kube, name, namespace, 1)
    node = await fulfil_claim(kube, claim, gpus=1, kwok=False)
    pod = await kubelet_pod(kube, namespace, f"kaito.sh/workspace={name}")
    server = pod["spec"]["containers"][0]
    image = "registry.invalid/kaito/missing:0.1"
    pull_message = f'failed to pull and unpack image "{image}": not found'

    # A bad image: the kubelet's ErrImagePull, kept for a while (the controller looks every
    # 0.5 s), then its back-off.
    waiting = {"waiting": {"reason": "ErrImagePull", "message": pull_message}}
    await write_pod_status(
        kube,
        pod,
        {"phase": "Pending", "containerStatuses": [container(server["name"], image, waiting)]},
    )
    pull = await wait_event(kube, name, namespace, "ImagePullError")
    assert pull["type"] == "Warning"
    assert image in pull["message"] and pull_message in pull["message"], pull["message"]
    await asyncio.sleep(2)  # several reconciles of the same failure
    backoff = {"waiting": {"reason": "ImagePullBackOff", "message": f'Back-off pulling "{image}"'}}
    await write_pod_status(
        kube, pod, {"containerStatuses": [container(server["name"], image, backoff)]}
    )
    await asyncio.sleep(2)
    (pull,) = [e for e in await events_of(kube, name, namespace) if e["reason"] == "ImagePullError"]
    assert pull["count"] == 1, "one failure, one Event"

    # The image is there now, but the server runs out of memory and backs off.
    oom = {"terminated": {"reason": "OOMKilled", "exitCode": 137}}
    crash = {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 20s restarting"}}
    await write_pod_status(
        kube,
        pod,
        {
            "phase": "Running",
            "containerStatuses": [container(server["name"], image, crash, 2, oom)],
        },
    )
    killed = await wait_event(kube, name, namespace, "ContainerOOMKilled")
    assert killed["type"] == "Warning" and "ran out of memory" in killed["message"]
    assert "restarted 2 time(s)" in killed["message"]

    # Then it crashes for another reason: a crash loop with the count and the last exit.
    error = {"terminated": {"reason": "Error", "exitCode": 1}}
    await write_pod_status(
        kube, pod, {"containerStatuses": [container(server["name"], image, crash, 5, error)]}
    )
    looping = await wait_event(kube, name, namespace, "ContainerCrashLoopBackOff")
    assert "restarted 5 time(s); last exit: Error, exit code 1" in looping["message"]
    text = describe(control_plane, name, namespace)
    for reason in ("ImagePullError", "ContainerOOMKilled", "ContainerCrashLoopBackOff"):
        assert re.search(rf"Warning\s+{reason}\s", text), text
    await kube.delete(WORKSPACE, name, namespace)
    await kube.delete(NODE, node)


async def test_a_failed_tuning_job_tells_the_runners_message(
    kube: KubeClient, namespace: str, control_plane: ControlPlane
) -> None:
    name = "events-tune-fails"
    await kube.create(WORKSPACE, tuning_ws(name, namespace))
    (claim,) = await wait_claims(kube, name, namespace, 1)
    node = await fulfil_claim(kube, claim, gpus=1, kwok=False)
    await wait_condition(kube, name, namespace, "JobStarted", "True")
    pod = await kubelet_pod(kube, namespace, f"job-name={name}")
    init = [c["name"] for c in pod["spec"].get("initContainers") or []]
    assert "trainer" in init
    reason = "InvalidDataset: dolly.jsonl has no column the runner can train on"
    done = {"terminated": {"reason": "Completed", "exitCode": 0}}
    failed = {"terminated": {"reason": "Error", "exitCode": 1, "message": reason}}
    statuses = []
    for container_name in init:
        if container_name == "trainer":
            statuses.append(container(container_name, "runner", failed))
            break
        statuses.append(container(container_name, "runner", done))
    await write_pod_status(kube, pod, {"phase": "Failed", "initContainerStatuses": statuses})
    await wait_condition(kube, name, namespace, "JobStarted", "False")
    event = await wait_event(kube, name, namespace, "TuningJobFailed")
    assert event["type"] == "Warning"
    assert event["message"] == f"Container trainer exited with code 1: {reason}"
    await asyncio.sleep(1.5)
    (event,) = [
        e for e in await events_of(kube, name, namespace) if e["reason"] == "TuningJobFailed"
    ]
    assert event["count"] == 1
    text = describe(control_plane, name, namespace)
    assert re.search(r"Warning\s+TuningJobFailed\s", text) and reason in text, text
    assert re.search(r"Normal\s+JobCreated\s", text), text
    print(text)  # what a user sees (`pytest -s`)
    await kube.delete(WORKSPACE, name, namespace)
    await kube.delete(NODE, node)
