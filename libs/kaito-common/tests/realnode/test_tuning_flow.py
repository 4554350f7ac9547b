"""The seed's tuning flow on the real node, through ``helm install``, with the seed's own preset.

The seed's tuning Workspace (``examples/kaito_workspace_tuning_phi_3.yaml``: preset
``phi-3-mini-128k-instruct``, ``qlora``, input URLs, an output image with an
``imagePushSecret``), its placeholders filled and its data URL pointing inside the cluster: the
data is served by a busybox httpd pod behind a ClusterIP (a private address the URL guard refuses
unless the operator allows it), and the adapter goes to the tests' registry (htpasswd auth, plain
HTTP, on the host's address on the node network), the same registry the kubelet pulls the
project's images from (``make images-push``, a pull secret named by the chart). The chart is
installed with the operator settings that allow exactly that
(``workspace-controller.tuning.allowedDataNetworks`` and ``plainHTTPRegistries``) and with the
local Hugging Face hub as the controller's ``huggingFace.endpoint``.

The Job's pod really downloads the preset's weights at start (a tiny Phi-3 model served under the
preset's repository at its pinned commit), fetches the data, trains (QLoRA on the CPU) and
pushes; the Workspace reaches ``WorkspaceSucceeded``. An inference Workspace of the same preset
then serves the pushed adapter, its weights this time copied from the preset's weights image
(``kaito.sh/weights-source: image``; ``python -m kaito_common.weights build-image``), its
adapter pulled by its puller from the same registry. Deleting both Workspaces removes their Job,
pods, StatefulSet and Service.
"""

from __future__ import annotations

import base64
import json
import re
import subprocess
import urllib.request
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from rn_support import REPO_ROOT, SEED_PRESET

from kaito_testing.hfhub import LocalHub
from kaito_testing.kaito_local import seed_tuning_workspace
from kaito_testing.node_registry import PULL_SECRET, NodeRegistry
from kaito_testing.registry import LocalRegistry
from kaito_testing.toolbox_image import TOOLBOX_IMAGE
from kaito_testing.waiting import wait_for

CHART = REPO_ROOT / "charts" / "kaito"
RELEASE = "kaito"
RELEASE_NS = "kaito-workspace"
SEED_REPO = "microsoft/Phi-3-mini-128k-instruct"
SERVICE_CIDR = "10.96.0.0/16"  # the control plane's Service range: the data's ClusterIP
SKU = "Standard_NC6s_v3"
NS = "rn-tuning"
NODE_LABEL = "tuning-phi-3"  # the seed's labelSelector: app=tuning-phi-3
SEED_WS = "workspace-tuning-phi-3"
ADAPTER = "tuned"
DATA_ROWS = 16


@pytest.fixture(scope="module")
def release(node_cluster: Any, node_registry: NodeRegistry, hub: LocalHub) -> Iterator[Any]:
    """The chart with the operator's settings for in-cluster data, the host's registry and hub."""
    node_cluster.kubectl("create", "namespace", RELEASE_NS, check=False)
    node_cluster.apply(node_registry.pull_secret(RELEASE_NS), RELEASE_NS)
    helm = str(node_cluster.plane.bin_dir / "helm")
    argv = [
        helm, f"--kubeconfig={node_cluster.plane.kubeconfig_path}",
        "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NS,
        "--wait", "--timeout", "4m",
        "--set", f"global.image.registry={node_registry.repo}",
        "--set", f"global.image.tag={node_registry.tag}",
        "--set", f"global.imagePullSecrets={{{PULL_SECRET}}}",
        "--set", f"workspace-controller.huggingFace.endpoint={hub.url}",
        "--set", "workspace-controller.presets.enableTestPresets=true",
        "--set", "gpu-provisioner.cloud=kwok",
        "--set", f"workspace-controller.tuning.allowedDataNetworks={{{SERVICE_CIDR}}}",
        "--set",
        f"workspace-controller.tuning.plainHTTPRegistries={{{node_registry.registry.host}}}",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        pods = node_cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False)
        raise AssertionError(f"helm install failed:\n{result.stderr}\n{pods}")
    try:
        yield node_cluster
    finally:
        subprocess.run(
            [helm, f"--kubeconfig={node_cluster.plane.kubeconfig_path}", "uninstall", RELEASE,
             "-n", RELEASE_NS, "--wait", "--timeout", "2m"],
            capture_output=True, check=False, timeout=180,
        )  # fmt: skip


def conversations(n: int) -> list[dict[str, Any]]:
    """The seed's dolly-15k-oai-style rows: a ``messages`` column of role/content turns."""
    words = ["kaito", "tunes", "tiny", "models", "on", "a", "real", "node", "today"]
    rows = []
    for i in range(n):
        question = " ".join(words[(i + k) % len(words)] for k in range(4))
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": "answer: " + question[::-1]},
                ]
            }
        )
    return rows


def _data_server(cluster: Any, tmp: Path) -> str:
    """busybox httpd in a pod serving ``dolly.jsonl`` from a ConfigMap; returns its ClusterIP."""
    data = tmp / "dolly.jsonl"
    data.write_text("".join(json.dumps(row) + "\n" for row in conversations(DATA_ROWS)))
    cluster.kubectl("create", "configmap", "tuning-data", "-n", NS, f"--from-file={data}")
    pod = {
        "apiVersion": "v1",
        "kind": "Pod",
        "metadata": {"name": "tuning-data", "labels": {"app": "tuning-data"}},
        "spec": {
            "terminationGracePeriodSeconds": 1,  # busybox as PID 1 ignores SIGTERM
            "containers": [
                {
                    "name": "httpd",
                    "image": TOOLBOX_IMAGE,
                    "imagePullPolicy": "IfNotPresent",
                    "command": ["httpd", "-f", "-p", "8080", "-h", "/www"],
                    "ports": [{"containerPort": 8080}],
                    "readinessProbe": {
                        "httpGet": {"path": "/dolly.jsonl", "port": 8080},
                        "periodSeconds": 1,
                    },
                    "volumeMounts": [{"name": "data", "mountPath": "/www", "readOnly": True}],
                }
            ],
            "volumes": [{"name": "data", "configMap": {"name": "tuning-data"}}],
        },
    }
    service = {
        "apiVersion": "v1",
        "kind": "Service",
        "metadata": {"name": "tuning-data"},
        "spec": {"selector": {"app": "tuning-data"}, "ports": [{"port": 80, "targetPort": 8080}]},
    }
    cluster.apply(yaml.safe_dump_all([pod, service]), NS)
    cluster.kubectl("wait", "--for=condition=Ready", "pod/tuning-data", "-n", NS, "--timeout=90s")
    cluster_ip: str = cluster.get("service", "tuning-data", "-n", NS)["spec"]["clusterIP"]
    return cluster_ip


def _condition(cluster: Any, name: str, kind: str) -> dict[str, Any] | None:
    ws = cluster.get("workspace", name, "-n", NS)
    for c in ws.get("status", {}).get("conditions", []):
        if c["type"] == kind:
            return dict(c)
    return None


def _manifest_annotations(reg: LocalRegistry, repository: str, tag: str) -> dict[str, str]:
    token = base64.b64encode(f"{reg.username}:{reg.password}".encode()).decode()
    request = urllib.request.Request(
        f"{reg.url}/v2/{repository}/manifests/{tag}",
        headers={
            "Authorization": f"Basic {token}",
            "Accept": "application/vnd.oci.image.manifest.v1+json",
        },
    )
    with urllib.request.urlopen(request, timeout=10) as resp:
        return dict(json.loads(resp.read()).get("annotations") or {})


def _pod_output(cluster: Any, name: str, script: str) -> str:
    """Runs ``script`` in a toolbox pod; returns its log once the pod has Succeeded."""
    cluster.kubectl(
        "run", name, "-n", NS, f"--image={TOOLBOX_IMAGE}", "--image-pull-policy=IfNotPresent",
        "--restart=Never", "--command", "--", "/bin/sh", "-c", script,
    )  # fmt: skip

    def finished() -> bool:
        phase = cluster.get("pod", name, "-n", NS)["status"].get("phase")
        assert phase != "Failed", cluster.kubectl("logs", name, "-n", NS, check=False)
        return bool(phase == "Succeeded")

    wait_for(finished, timeout=180.0, what=f"pod {name} to succeed", interval=0.5)
    out: str = cluster.kubectl("logs", name, "-n", NS)
    return out


def _json_line(out: str) -> Any:
    return json.loads(next(line for line in out.splitlines() if line.startswith("{")))


def _job_failure(cluster: Any, name: str) -> str:
    pods: str = cluster.kubectl("get", "pods", "-n", NS, "-l", f"job-name={name}", "-o", "yaml")
    return pods[-6000:]


def test_seed_tuning_flow_then_serving_the_adapter(
    release: Any, node_registry: NodeRegistry, hub: LocalHub, tmp_path: Path
) -> None:
    cluster = release
    registry = node_registry.registry
    cluster.kubectl("create", "namespace", NS, check=False)
    cluster.apply(node_registry.pull_secret(NS), NS)
    cluster.node.label(
        {"app": NODE_LABEL, "node.kubernetes.io/instance-type": SKU, "accelerator": "nvidia"}
    )
    config = registry.write_docker_config(tmp_path / "dockerconfig.json")
    cluster.kubectl(
        "create", "secret", "generic", "push-secret", "-n", NS,
        "--type=kubernetes.io/dockerconfigjson", f"--from-file=.dockerconfigjson={config}",
    )  # fmt: skip
    cluster_ip = _data_server(cluster, tmp_path)
    data_url = f"http://{cluster_ip}/dolly.jsonl"
    # The seed's Workspace, as written, with its placeholders filled and its data in the cluster.
    seed = yaml.safe_load(seed_tuning_workspace(registry.host, "push-secret"))
    assert seed["tuning"]["preset"]["name"] == SEED_PRESET
    output = seed["tuning"]["output"]["image"]
    repository, _, tag = output.removeprefix(f"{registry.host}/").rpartition(":")
    selector = seed["resource"]["labelSelector"]

    # The webhook refuses a private data URL outside the operator's allowed networks.
    outside = json.loads(json.dumps(seed))
    outside["metadata"]["name"] = "tune-outside"
    outside["tuning"]["input"]["urls"] = ["http://192.168.7.7/dolly.jsonl"]
    argv = [str(cluster.plane.bin_dir / "kubectl"), f"--kubeconfig={cluster.plane.kubeconfig_path}"]
    refused = subprocess.run(
        [*argv, "apply", "-n", NS, "-f", "-"],
        input=yaml.safe_dump(outside),
        capture_output=True,
        text=True,
        check=False,
    )
    assert refused.returncode != 0 and "a private address" in refused.stderr, refused.stderr

    seed["tuning"]["input"]["urls"] = [data_url]
    hub.reset_counters()
    cluster.apply(yaml.safe_dump(seed), NS)

    def succeeded() -> bool:
        job = cluster.get("job", SEED_WS, "-n", NS) if _has(cluster, "job", SEED_WS) else {}
        for c in job.get("status", {}).get("conditions", []) or []:
            assert not (c["type"] == "Failed" and c["status"] == "True"), _job_failure(
                cluster, SEED_WS
            )
        cond = _condition(cluster, SEED_WS, "WorkspaceSucceeded")
        return cond is not None and cond["status"] == "True"

    wait_for(
        succeeded, timeout=900.0, what="WorkspaceSucceeded of the tuning Workspace", interval=2
    )
    (pod,) = cluster.get("pods", "-n", NS, "-l", f"job-name={SEED_WS}")["items"]
    assert pod["spec"]["nodeName"] == cluster.node.name
    download, fetch, trainer = pod["spec"]["initContainers"]
    env = {e["name"]: e.get("value") for e in fetch.get("env", [])}
    assert json.loads(env["KAITO_TUNING_ALLOWED_DATA_NETWORKS"]) == [SERVICE_CIDR]
    # Every step runs the tuning runner, pulled from the registry; the weights were downloaded.
    runner = node_registry.image("tuning-runner")
    assert download["image"] == runner and trainer["image"] == runner
    statuses = pod["status"]["initContainerStatuses"] + pod["status"]["containerStatuses"]
    pulled = re.compile(r"[0-9.]+:[0-9]+/kaito/tuning-runner@sha256:[0-9a-f]{64}")
    assert all(pulled.fullmatch(st["imageID"]) for st in statuses), statuses
    steps = _step_seconds(pod)
    assert list(steps) == ["model-download", "fetch", "trainer", "pusher"], pod["status"]
    print("Tuning Job steps (s):", steps)
    assert hub.bytes_served(SEED_REPO) > 0, "the Job downloaded nothing from the hub"
    fetch_log = cluster.kubectl("logs", pod["metadata"]["name"], "-n", NS, "-c", "fetch")
    assert "Fetched input" in fetch_log and data_url in fetch_log, fetch_log
    push_log = cluster.kubectl("logs", pod["metadata"]["name"], "-n", NS, "-c", "pusher")
    assert "Pushed adapter image" in push_log, push_log
    # The adapter image really is in the registry, with Kaito's model-name annotation.
    annotations = _manifest_annotations(registry, repository, tag)
    assert annotations.get("sh.kaito.model.name") == SEED_PRESET

    # An inference Workspace serves the pushed adapter (its puller pulls it over plain HTTP); its
    # weights come from the preset's weights image this time.
    serving = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {
            "name": "serve-tuned",
            "annotations": {
                "kaito.sh/runtime": "transformers",
                "kaito.sh/weights-source": "image",
            },
        },
        "resource": {"instanceType": SKU, "labelSelector": selector},
        "inference": {
            "preset": {"name": SEED_PRESET},
            "adapters": [
                {"source": {"name": ADAPTER, "image": output, "imagePullSecrets": ["push-secret"]}}
            ],
        },
    }
    # The trainer's GPU is free once the Job's pod has finished.
    cluster.apply(yaml.safe_dump(serving), NS)

    def ready() -> bool:
        cond = _condition(cluster, "serve-tuned", "InferenceReady")
        return cond is not None and cond["status"] == "True"

    wait_for(ready, timeout=420.0, what="InferenceReady of the adapter Workspace", interval=2)
    (server,) = cluster.get("pods", "-n", NS, "-l", "kaito.sh/workspace=serve-tuned")["items"]
    assert server["spec"]["nodeName"] == cluster.node.name
    copier_status, puller = server["status"]["initContainerStatuses"]
    assert (copier_status["name"], puller["name"]) == ("model-weights", f"adapter-{ADAPTER}")
    inits = {c["name"]: c for c in server["spec"]["initContainers"]}
    assert inits["model-weights"]["image"] == node_registry.image(f"kaito-model-{SEED_PRESET}")
    assert copier_status["state"]["terminated"]["exitCode"] == 0
    assert puller["state"]["terminated"]["exitCode"] == 0
    assert server["spec"]["containers"][0]["image"] == node_registry.image("inference-server")
    service_ip = cluster.get("service", "serve-tuned", "-n", NS)["spec"]["clusterIP"]
    models = _json_line(
        _pod_output(
            cluster, "models", f"wget -O- http://{service_ip}/v1/models 2>/dev/null && echo"
        )
    )
    ids = {m["id"]: m for m in models["data"]}
    assert ADAPTER in ids and ids[ADAPTER]["parent"] == SEED_PRESET, models
    body = {"model": ADAPTER, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8}
    script = (
        "wget -O /tmp/body --header 'Content-Type: application/json' "
        f"--post-data '{json.dumps(body)}' http://{service_ip}/v1/chat/completions "
        "2>/dev/null && echo && cat /tmp/body && echo"
    )
    completion = _json_line(_pod_output(cluster, "adapter-chat", script))
    assert completion["object"] == "chat.completion" and completion["model"] == ADAPTER
    assert 0 < completion["usage"]["completion_tokens"] <= 8

    # Deleting the Workspaces removes their Job, pods, StatefulSet and Service.
    cluster.kubectl("delete", "workspace", SEED_WS, "serve-tuned", "-n", NS, "--wait=false")

    def gone() -> bool:
        return not (
            cluster.kubectl("get", "workspace", "-n", NS, "-o", "name")
            or cluster.kubectl("get", "job,statefulset", "-n", NS, "-o", "name")
            or cluster.kubectl("get", "service", "serve-tuned", "-n", NS, "--ignore-not-found")
            or cluster.kubectl("get", "pods", "-n", NS, "-l", "kaito.sh/workspace", "-o", "name")
            or cluster.kubectl("get", "pods", "-n", NS, "-l", "job-name", "-o", "name")
        )

    wait_for(gone, timeout=180.0, what="the Workspaces, Job, StatefulSet, Service and pods to go")
    assert not cluster.kubectl("get", "nodeclaims", "-l", "kaito.sh/workspace", "-o", "name"), (
        "the real node is a BYO node: no NodeClaim"
    )
    cluster.kubectl("delete", "namespace", NS, "--wait=false", check=False)


def _step_seconds(pod: dict[str, Any]) -> dict[str, float]:
    """Each container that exited 0: its run time, in the pod's order."""
    statuses = [
        *pod["status"].get("initContainerStatuses", []),
        *pod["status"].get("containerStatuses", []),
    ]
    seconds: dict[str, float] = {}
    for status in statuses:
        done = status["state"].get("terminated") or {}
        if done.get("exitCode") == 0:
            start = datetime.fromisoformat(done["startedAt"].replace("Z", "+00:00"))
            end = datetime.fromisoformat(done["finishedAt"].replace("Z", "+00:00"))
            seconds[status["name"]] = (end - start).total_seconds()
    return seconds


def _has(cluster: Any, kind: str, name: str) -> bool:
    return bool(cluster.kubectl("get", kind, name, "-n", NS, "--ignore-not-found", "-o", "name"))
