"""`helm install` of the umbrella chart on the real node: the workspace controller and the
gpu-provisioner run as pods from our images (``make images``, imported into containerd) with the
chart's RBAC, reach the API server through the ``kubernetes`` Service, and serve the validating
webhook through their Service (the API server dials the pod on the node's bridge). An inference
Workspace then provisions a GPU node on the kwok cloud and is deleted with everything it made.

Then the seed's flow for real: an inference Workspace selecting the real node (labelled as a GPU
node of the Workspace's instance type) runs the inference-server image on it, after an init
container from the tiny preset's model image (only the model's files and a static copier, built
here) has copied the weights into the pod's weights volume; the pod becomes Ready through its
probes, and a pod in the cluster POSTs ``/chat`` and ``/v1/chat/completions`` to the Service's
ClusterIP.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from rn_support import IMAGE_REPO, IMAGE_TAG, REPO_ROOT, ensure_built, service_image

from kaito_testing.image_import import buildah_image_id, import_images
from kaito_testing.model_image import build_openai_client_image, build_weights_image
from kaito_testing.snapshot_import import import_linked
from kaito_testing.tiny_model import cached_tiny_model
from kaito_testing.toolbox_image import TOOLBOX_IMAGE
from kaito_testing.waiting import wait_for

CHART = REPO_ROOT / "charts" / "kaito"
RELEASE = "kaito"
RELEASE_NS = "kaito-workspace"
INFERENCE_IMAGE = service_image("inference-server")
TINY_PRESET = "test-tiny-llama"
MODEL_IMAGE = f"{IMAGE_REPO}/kaito-model-{TINY_PRESET}:{IMAGE_TAG}"
SEED_PROMPT = "What is Kubernetes?"
CLIENT_IMAGE = f"{IMAGE_REPO}/openai-client:{IMAGE_TAG}"
SITE_PACKAGES = (
    Path(sys.prefix)
    / "lib"
    / f"python{sys.version_info[0]}.{sys.version_info[1]}"
    / "site-packages"
)
OPENAI_SCRIPT = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="unused")
reply = client.chat.completions.create(
    model=sys.argv[2], messages=[{"role": "user", "content": "hi"}], max_tokens=8
)
print(json.dumps({"object": reply.object, "role": reply.choices[0].message.role,
                  "tokens": reply.usage.completion_tokens, "version": openai.__version__}))
"""
CONTROLLER_IMAGES = {
    "workspace-controller": service_image("workspace-controller"),
    "gpu-provisioner": service_image("gpu-provisioner"),
}
SKU = "Standard_NC6s_v3"


@pytest.fixture(scope="module")
def release(node_cluster: Any) -> Iterator[Any]:
    ensure_built(list(CONTROLLER_IMAGES))
    import_images(node_cluster.node.containerd, list(CONTROLLER_IMAGES.values()))
    helm = str(node_cluster.plane.bin_dir / "helm")
    argv = [
        helm, f"--kubeconfig={node_cluster.plane.kubeconfig_path}",
        "upgrade", "--install", RELEASE, str(CHART), "--namespace", RELEASE_NS,
        "--create-namespace", "--wait", "--timeout", "4m",
        "--set", f"workspace-controller.image.tag={IMAGE_TAG}",
        "--set", f"gpu-provisioner.image.tag={IMAGE_TAG}",
        "--set", "workspace-controller.presets.enableTestPresets=true",
        "--set", "gpu-provisioner.cloud=kwok",
        "--set", f"workspace-controller.presets.registry={IMAGE_REPO}",
        "--set", f"workspace-controller.presets.imageTag={IMAGE_TAG}",
        "--set", f"workspace-controller.runtimeImages.inferenceServer={INFERENCE_IMAGE}",
    ]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=300)
    if result.returncode != 0:
        pods = node_cluster.kubectl("get", "pods", "-A", "-o", "wide", check=False)
        events = node_cluster.kubectl("get", "events", "-n", RELEASE_NS, check=False)
        raise AssertionError(f"helm install failed:\n{result.stderr}\n{pods}\n{events}")
    try:
        yield node_cluster
    finally:
        subprocess.run(
            [helm, f"--kubeconfig={node_cluster.plane.kubeconfig_path}", "uninstall", RELEASE,
             "-n", RELEASE_NS, "--wait", "--timeout", "2m"],
            capture_output=True, check=False, timeout=180,
        )  # fmt: skip


def _pods(cluster: Any, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("pods", "-n", RELEASE_NS, "-l", selector)["items"]
    return items


def test_controllers_run_as_pods_on_the_real_node(release: Any) -> None:
    for name, image in CONTROLLER_IMAGES.items():
        pods = _pods(release, f"app.kubernetes.io/name={name}")
        assert len(pods) == 1, name
        pod = pods[0]
        assert pod["spec"]["nodeName"] == release.node.name
        assert pod["spec"]["containers"][0]["image"] == image
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] for s in statuses), statuses
        # The very image buildah built (CRI reports the config digest of a local image).
        assert statuses[0]["imageID"].endswith(buildah_image_id(image).removeprefix("sha256:"))
        sa = pod["spec"]["serviceAccountName"]
        assert sa != "default"


def test_inference_workspace_through_the_webhook_then_deletion(release: Any) -> None:
    ns = "rn-e2e"
    release.kubectl("create", "namespace", ns, check=False)
    bad = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": "bad"},
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": "bad"}}},
        "inference": {"preset": {"name": "no-such-preset"}},
    }
    argv = [str(release.plane.bin_dir / "kubectl"), f"--kubeconfig={release.plane.kubeconfig_path}"]
    rejected = subprocess.run(
        [*argv, "apply", "-n", ns, "-f", "-"],
        input=yaml.safe_dump(bad),
        capture_output=True,
        text=True,
        check=False,
    )
    # The API server called the webhook pod through its Service on the real node.
    assert rejected.returncode != 0
    assert "denied the request" in rejected.stderr, rejected.stderr

    good = {
        **bad,
        "metadata": {"name": "tiny"},
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": "tiny"}}},
        "inference": {"preset": {"name": "test-tiny-llama"}},
    }
    release.apply(yaml.safe_dump(good), ns)

    def condition(name: str) -> bool:
        ws = release.get("workspace", "tiny", "-n", ns)
        return any(
            c["type"] == name and c["status"] == "True"
            for c in ws.get("status", {}).get("conditions", [])
        )

    wait_for(lambda: condition("InferenceReady"), timeout=180.0, what="InferenceReady", interval=1)
    ws = release.get("workspace", "tiny", "-n", ns)
    (node,) = ws["status"]["workerNodes"]
    assert release.get("nodeclaim", node)["metadata"]["labels"]["kaito.sh/workspace"] == "tiny"
    release.get("service", "tiny", "-n", ns)

    release.kubectl("delete", "workspace", "tiny", "-n", ns, "--wait=false")

    def gone() -> bool:
        left = release.kubectl("get", "workspace", "tiny", "-n", ns, "--ignore-not-found")
        claim = release.kubectl("get", "nodeclaim", node, "--ignore-not-found")
        kwok_node = release.kubectl("get", "node", node, "--ignore-not-found")
        deployment = release.kubectl("get", "deployment", "tiny", "-n", ns, "--ignore-not-found")
        return not (left or claim or kwok_node or deployment)

    wait_for(gone, timeout=120.0, what="the Workspace, Deployment, NodeClaim and Node to go")
    release.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_controllers_were_never_forbidden(release: Any) -> None:
    for name in CONTROLLER_IMAGES:
        (pod,) = _pods(release, f"app.kubernetes.io/name={name}")
        log = release.kubectl("logs", pod["metadata"]["name"], "-n", RELEASE_NS)
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]


@pytest.fixture(scope="module")
def model_image(release: Any) -> str:
    """The tiny preset's model image (the model's files and the copier) and the inference-server
    image, linked into containerd (see kaito_testing.snapshot_import)."""
    ensure_built(["inference-server"])
    model = cached_tiny_model(Path.home() / ".cache" / "kaito-realnode" / "models")
    build_weights_image(model, MODEL_IMAGE, release.plane.work_dir / "copier")
    build_openai_client_image(INFERENCE_IMAGE, SITE_PACKAGES, CLIENT_IMAGE)
    for image in (INFERENCE_IMAGE, MODEL_IMAGE, CLIENT_IMAGE):
        import_linked(release.node.containerd, image, release.plane.work_dir / "import")
    return MODEL_IMAGE


def _pod_output(release: Any, ns: str, name: str, image: str, command: list[str]) -> str:
    """Runs ``command`` in a pod of ``image``; returns its log once the pod has Succeeded."""
    release.kubectl(
        "run", name, "-n", ns, f"--image={image}", "--image-pull-policy=IfNotPresent",
        "--restart=Never", "--command", "--", *command,
    )  # fmt: skip

    def finished() -> bool:
        phase = release.get("pod", name, "-n", ns)["status"].get("phase")
        assert phase != "Failed", release.kubectl("logs", name, "-n", ns, check=False)
        return bool(phase == "Succeeded")

    wait_for(finished, timeout=180.0, what=f"pod {name} to succeed", interval=0.5)
    out: str = release.kubectl("logs", name, "-n", ns)
    return out


def _post_from_a_pod(release: Any, ns: str, name: str, url: str, body: dict[str, Any]) -> Any:
    """POSTs ``body`` as JSON to ``url`` from a toolbox pod; returns the decoded response."""
    script = (
        f"wget -O /tmp/body --header 'Content-Type: application/json' "
        f"--post-data '{json.dumps(body)}' {url} 2>/dev/null && echo && cat /tmp/body && echo"
    )
    out = _pod_output(release, ns, name, TOOLBOX_IMAGE, ["/bin/sh", "-c", script])
    line = next(line for line in out.splitlines() if line.startswith("{"))
    return json.loads(line)


def test_seed_inference_flow_on_the_real_node(release: Any, model_image: str) -> None:
    ns = "rn-seed"
    name = "tiny-real"
    node = release.node
    release.kubectl("create", "namespace", ns, check=False)
    node.label({"apps": name, "node.kubernetes.io/instance-type": SKU, "accelerator": "nvidia"})
    workspace = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": name},
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": name}}},
        "inference": {"preset": {"name": TINY_PRESET}},
    }
    release.apply(yaml.safe_dump(workspace), ns)

    def condition(kind: str) -> bool:
        ws = release.get("workspace", name, "-n", ns)
        return any(
            c["type"] == kind and c["status"] == "True"
            for c in ws.get("status", {}).get("conditions", [])
        )

    wait_for(lambda: condition("InferenceReady"), timeout=420.0, what="InferenceReady", interval=1)
    ws = release.get("workspace", name, "-n", ns)
    assert ws["status"]["workerNodes"] == [node.name]
    (pod,) = release.get("pods", "-n", ns, "-l", f"kaito.sh/workspace={name}")["items"]
    assert pod["spec"]["nodeName"] == node.name
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"] and status["image"] == INFERENCE_IMAGE
    assert status["imageID"].endswith(buildah_image_id(INFERENCE_IMAGE).removeprefix("sha256:"))
    # The weights came from the model image: its init container copied them and exited 0.
    (copier,) = pod["status"]["initContainerStatuses"]
    assert copier["name"] == "model-weights" and copier["image"] == model_image
    assert copier["state"]["terminated"]["exitCode"] == 0
    assert copier["imageID"].endswith(buildah_image_id(model_image).removeprefix("sha256:"))
    copied = release.kubectl("logs", pod["metadata"]["name"], "-n", ns, "-c", "model-weights")
    assert copied.startswith("Copied ") and "/workspace/weights" in copied, copied
    assert not release.kubectl(
        "get", "nodeclaims", "-l", f"kaito.sh/workspace={name}", "-o", "name"
    )

    cluster_ip = release.get("service", name, "-n", ns)["spec"]["clusterIP"]
    chat = _post_from_a_pod(
        release, ns, "seed-curl", f"http://{cluster_ip}/chat", {"prompt": SEED_PROMPT}
    )
    assert isinstance(chat["Result"], str) and chat["Result"].startswith(SEED_PROMPT)
    completion = _post_from_a_pod(
        release, ns, "openai-api", f"http://{cluster_ip}/v1/chat/completions",
        {"model": TINY_PRESET, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
    )  # fmt: skip
    assert completion["object"] == "chat.completion"
    assert completion["usage"]["completion_tokens"] <= 8
    assert completion["choices"][0]["message"]["role"] == "assistant"
    # The official OpenAI Python client, in a pod, through the Service.
    command = ["python", "-c", OPENAI_SCRIPT, f"http://{cluster_ip}/v1", TINY_PRESET]
    out = _pod_output(release, ns, "openai-client", CLIENT_IMAGE, command)
    reply = json.loads(out.strip().splitlines()[-1])
    assert reply["object"] == "chat.completion" and reply["role"] == "assistant"
    assert 0 < reply["tokens"] <= 8

    release.kubectl("delete", "workspace", name, "-n", ns, "--wait=false")

    def gone() -> bool:
        return not (
            release.kubectl("get", "workspace", name, "-n", ns, "--ignore-not-found")
            or release.kubectl("get", "deployment,service", name, "-n", ns, "--ignore-not-found")
            or release.kubectl(
                "get", "pods", "-n", ns, "-l", f"kaito.sh/workspace={name}", "-o", "name"
            )
        )

    wait_for(gone, timeout=120.0, what="the Workspace, its Deployment, Service and pod to go")
    # A BYO node is not the Workspace's to delete.
    assert release.get("node", node.name)["metadata"]["name"] == node.name
    release.kubectl("delete", "namespace", ns, "--wait=false", check=False)
