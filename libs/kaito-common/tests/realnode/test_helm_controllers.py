"""`helm install` of the umbrella chart on the real node, from images in a registry: the kubelet
pulls the workspace controller and the gpu-provisioner from the tests' registry (``make
images-push``, htpasswd auth, a pull secret named by ``global.image.registry`` and
``global.imagePullSecrets``), they run as pods with the chart's RBAC, reach the API server through
the ``kubernetes`` Service, and serve the validating webhook through their Service (the API server
dials the pod on the node's bridge). An inference Workspace then provisions a GPU node on the kwok
cloud and is deleted with everything it made.

Then the seed's inference flow for real, with a real preset's name: a
``phi-3-mini-128k-instruct`` Workspace selecting the real node (labelled as a GPU node of the
Workspace's instance type) runs the inference-server image, pulled from the registry; its
``model-download`` init container (the same image) downloads the preset's repository at the
catalog's pinned commit from the local Hugging Face hub (a tiny model with the Phi-3 architecture
and the 128k model's LongRoPE configuration, served under ``microsoft/Phi-3-mini-128k-instruct``;
the controller's ``--hf-endpoint`` points there). The pod becomes Ready through its probes, and a
pod in the cluster POSTs ``/chat`` (the seed's curl) and ``/v1/chat/completions`` to the Service's
ClusterIP, and the official OpenAI client does the same.
"""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from typing import Any

import pytest
import yaml
from rn_support import REPO_ROOT, SEED_PRESET

from kaito_testing.earlier_release import earlier_release_deployment
from kaito_testing.hfhub import LocalHub
from kaito_testing.node_registry import PULL_SECRET, NodeRegistry
from kaito_testing.toolbox_image import TOOLBOX_IMAGE
from kaito_testing.waiting import wait_for

CHART = REPO_ROOT / "charts" / "kaito"
RELEASE = "kaito"
RELEASE_NS = "kaito-workspace"
SEED_PROMPT = "What is Kubernetes?"
OPENAI_SCRIPT = """
import json, sys, openai
client = openai.OpenAI(base_url=sys.argv[1], api_key="unused")
reply = client.chat.completions.create(
    model=sys.argv[2], messages=[{"role": "user", "content": "hi"}], max_tokens=8
)
print(json.dumps({"object": reply.object, "role": reply.choices[0].message.role,
                  "tokens": reply.usage.completion_tokens, "version": openai.__version__}))
"""
CONTROLLERS = ("workspace-controller", "gpu-provisioner")
SKU = "Standard_NC6s_v3"


@pytest.fixture(scope="module")
def release(node_cluster: Any, node_registry: NodeRegistry, hub: LocalHub) -> Iterator[Any]:
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


def _pulled(status: dict[str, Any], node_registry: NodeRegistry, name: str) -> None:
    """The container runs `name` as pulled from a registry: the CRI reports a registry
    reference with the pulled manifest's digest (an image imported into containerd would show
    its bare config digest). The node's image store lasts across runs, so an identical image
    pulled earlier from the tests' registry on another port may be the reference it names."""
    assert re.fullmatch(
        rf"[0-9.]+:[0-9]+/kaito/{re.escape(name)}@sha256:[0-9a-f]{{64}}", status["imageID"]
    ), (node_registry.digest(name), status)


def _pods(cluster: Any, selector: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = cluster.get("pods", "-n", RELEASE_NS, "-l", selector)["items"]
    # The controllers' own pods, not `helm test`'s (which carries the same name label).
    return [p for p in items if "helm.sh/hook" not in (p["metadata"].get("annotations") or {})]


def test_controllers_run_as_pods_on_the_real_node(
    release: Any, node_registry: NodeRegistry
) -> None:
    for name in CONTROLLERS:
        pods = _pods(release, f"app.kubernetes.io/name={name}")
        assert len(pods) == 1, name
        pod = pods[0]
        assert pod["spec"]["nodeName"] == release.node.name
        assert pod["spec"]["imagePullSecrets"] == [{"name": PULL_SECRET}]
        assert pod["spec"]["containers"][0]["image"] == node_registry.image(name)
        statuses = pod["status"]["containerStatuses"]
        assert all(s["ready"] for s in statuses), statuses
        _pulled(statuses[0], node_registry, name)
        sa = pod["spec"]["serviceAccountName"]
        assert sa != "default"


def test_helm_test_passes_against_the_running_release(release: Any) -> None:
    """`helm test`: a pod in the controller's image (pulled from the registry) finds the CRDs
    Established and the webhook pod refusing an invalid Workspace."""
    helm = str(release.plane.bin_dir / "helm")
    argv = [helm, f"--kubeconfig={release.plane.kubeconfig_path}", "test", RELEASE,
            "-n", RELEASE_NS, "--logs", "--timeout", "3m"]  # fmt: skip
    result = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=240)
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "Webhook validation.workspace.kaito.sh answered" in out, out


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
    rejected: list[subprocess.CompletedProcess[str]] = []

    def answered() -> bool:
        result = subprocess.run(
            [*argv, "apply", "-n", ns, "-f", "-"],
            input=yaml.safe_dump(bad),
            capture_output=True,
            text=True,
            check=False,
        )
        rejected.append(result)
        # Until kube-proxy has programmed the Service's new endpoint: connection refused.
        return "connection refused" not in result.stderr

    wait_for(answered, timeout=30.0, what="the webhook Service to answer", interval=1)
    # The API server called the webhook pod through its Service on the real node.
    assert rejected[-1].returncode != 0
    assert "denied the request" in rejected[-1].stderr, rejected[-1].stderr

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
        workload = release.kubectl("get", "statefulset", "tiny", "-n", ns, "--ignore-not-found")
        return not (left or claim or kwok_node or workload)

    wait_for(gone, timeout=120.0, what="the Workspace, StatefulSet, NodeClaim and Node to go")
    release.kubectl("delete", "namespace", ns, "--wait=false", check=False)


def test_controllers_were_never_forbidden(release: Any) -> None:
    for name in CONTROLLERS:
        (pod,) = _pods(release, f"app.kubernetes.io/name={name}")
        log = release.kubectl("logs", pod["metadata"]["name"], "-n", RELEASE_NS)
        assert "Forbidden" not in log and " 403" not in log, log[-3000:]


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


def _seed_workspace(release: Any, node_registry: NodeRegistry, ns: str, name: str) -> Any:
    """The seed preset's Workspace on the real node, not applied yet: its namespace with the
    registry's pull secret, the node labelled as a GPU node of the instance type it selects."""
    release.kubectl("create", "namespace", ns, check=False)
    # The runtime images come from the operator's registry: the pull secret in the namespace.
    release.apply(node_registry.pull_secret(ns), ns)
    release.kubectl("wait", "--for=create", "serviceaccount/default", "-n", ns)
    release.node.label(
        {"apps": name, "node.kubernetes.io/instance-type": SKU, "accelerator": "nvidia"}
    )
    return {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {
            "name": name,
            # No GPU here: the transformers engine on the CPU (vLLM would be the default).
            "annotations": {"kaito.sh/runtime": "transformers"},
        },
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": name}}},
        "inference": {"preset": {"name": SEED_PRESET}},
    }


def test_seed_inference_flow_on_the_real_node(
    release: Any, node_registry: NodeRegistry, hub: LocalHub
) -> None:
    ns = "rn-seed"
    name = "phi-3-real"
    node = release.node
    workspace = _seed_workspace(release, node_registry, ns, name)
    # The test's own client pod pulls from the registry too, through the ServiceAccount.
    patch = json.dumps({"imagePullSecrets": [{"name": PULL_SECRET}]})
    release.kubectl("patch", "serviceaccount", "default", "-n", ns, "-p", patch)
    hub.reset_counters()
    release.apply(yaml.safe_dump(workspace), ns)

    def condition(kind: str) -> bool:
        ws = release.get("workspace", name, "-n", ns)
        return any(
            c["type"] == kind and c["status"] == "True"
            for c in ws.get("status", {}).get("conditions", [])
        )

    try:
        wait_for(
            lambda: condition("InferenceReady"), timeout=600.0, what="InferenceReady", interval=1
        )
    except TimeoutError:
        print(release.kubectl("describe", "pods", "-n", ns, check=False)[-6000:])
        raise
    ws = release.get("workspace", name, "-n", ns)
    assert ws["status"]["workerNodes"] == [node.name]
    (pod,) = release.get("pods", "-n", ns, "-l", f"kaito.sh/workspace={name}")["items"]
    assert pod["spec"]["nodeName"] == node.name
    assert {"name": PULL_SECRET} in pod["spec"]["imagePullSecrets"]
    (status,) = pod["status"]["containerStatuses"]
    assert status["ready"]
    assert pod["spec"]["containers"][0]["image"] == node_registry.image("inference-server")
    _pulled(status, node_registry, "inference-server")
    # The weights were downloaded at start by the same image, at the catalog's pinned commit.
    (download,) = pod["status"]["initContainerStatuses"]
    assert download["name"] == "model-download"
    assert download["state"]["terminated"]["exitCode"] == 0
    _pulled(download, node_registry, "inference-server")
    log = release.kubectl("logs", pod["metadata"]["name"], "-n", ns, "-c", "model-download")
    assert "microsoft/Phi-3-mini-128k-instruct" in log, log
    served = hub.bytes_served("microsoft/Phi-3-mini-128k-instruct")
    assert served > 0, "the pod downloaded nothing from the hub"
    print(f"model-download: {served} bytes from the local hub\n{log}")
    assert not release.kubectl(
        "get", "nodeclaims", "-l", f"kaito.sh/workspace={name}", "-o", "name"
    )

    cluster_ip = release.get("service", name, "-n", ns)["spec"]["clusterIP"]
    # The seed's `curl -X POST http://$CLUSTERIP/chat -H "accept: application/json" ...`.
    chat = _post_from_a_pod(
        release, ns, "seed-curl", f"http://{cluster_ip}/chat", {"prompt": SEED_PROMPT}
    )
    assert isinstance(chat["Result"], str) and chat["Result"].startswith(SEED_PROMPT)
    completion = _post_from_a_pod(
        release, ns, "openai-api", f"http://{cluster_ip}/v1/chat/completions",
        {"model": SEED_PRESET, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 8},
    )  # fmt: skip
    assert completion["object"] == "chat.completion"
    assert completion["usage"]["completion_tokens"] <= 8
    assert completion["choices"][0]["message"]["role"] == "assistant"
    # The official OpenAI Python client, in a pod, through the Service.
    command = ["python", "-c", OPENAI_SCRIPT, f"http://{cluster_ip}/v1", SEED_PRESET]
    out = _pod_output(release, ns, "openai-client", node_registry.image("openai-client"), command)
    reply = json.loads(out.strip().splitlines()[-1])
    assert reply["object"] == "chat.completion" and reply["role"] == "assistant"
    assert 0 < reply["tokens"] <= 8

    release.kubectl("delete", "workspace", name, "-n", ns, "--wait=false")

    def gone() -> bool:
        return not (
            release.kubectl("get", "workspace", name, "-n", ns, "--ignore-not-found")
            or release.kubectl("get", "statefulset,service", name, "-n", ns, "--ignore-not-found")
            or release.kubectl(
                "get", "pods", "-n", ns, "-l", f"kaito.sh/workspace={name}", "-o", "name"
            )
        )

    wait_for(gone, timeout=120.0, what="the Workspace, its StatefulSet, Service and pod to go")
    # A BYO node is not the Workspace's to delete.
    assert release.get("node", node.name)["metadata"]["name"] == node.name
    release.kubectl("delete", "namespace", ns, "--wait=false", check=False)


# (No `wget -T`: Debian's static busybox crashes with it.)
PROBE_SCRIPT = (
    "while true; do if wget -q -O /dev/null {url}; then echo ok; else echo FAIL; fi; "
    "sleep 0.2; done"
)


def _probe_counts(release: Any, ns: str, pod: str) -> tuple[int, int]:
    """(answered, failed) /health probes of the prober pod so far, from its first answer on
    (before it the Service may not have been programmed on the node yet)."""
    lines = release.kubectl("logs", pod, "-n", ns, check=False).split()  # "" while it starts
    lines = lines[lines.index("ok") :] if "ok" in lines else []
    return lines.count("ok"), lines.count("FAIL")


def _controller_replicas(release: Any, replicas: int) -> None:
    selector = "app.kubernetes.io/name=workspace-controller"
    (deployment,) = release.kubectl(
        "get", "deployment", "-n", RELEASE_NS, "-l", selector, "-o", "name"
    ).split()
    release.kubectl("scale", deployment, "-n", RELEASE_NS, f"--replicas={replicas}")
    release.kubectl(
        "rollout", "status", deployment, "-n", RELEASE_NS, "--timeout=180s"
    )  # fmt: skip
    if replicas == 0:
        wait_for(
            lambda: not _pods(release, selector), timeout=120.0, what="the controller pods to go"
        )


def test_statefulset_rollout_and_migration_without_a_gap(
    release: Any, node_registry: NodeRegistry, hub: LocalHub
) -> None:
    """Upstream's shape (StatefulSet `<ws>`, pod `<ws>-0`) with what upstream lacks: moving a
    Workspace of the earlier release (a Deployment) over, and a revision update, both with
    `/health` answered through the Service every 200 ms without one failure."""
    ns = "rn-rollout"
    name = "phi-3-rollout"
    node = release.node
    workspace = _seed_workspace(release, node_registry, ns, name)
    node.advertise_gpus(2)  # room for the surge pod beside the serving one
    release.apply(yaml.safe_dump(workspace), ns)
    sts = f"statefulset/{name}"
    try:
        release.kubectl("wait", "--for=create", sts, "-n", ns, "--timeout=60s")
        release.kubectl("rollout", "status", sts, "-n", ns, "--timeout=600s")
        (pod,) = release.get("pods", "-n", ns, "-l", f"kaito.sh/workspace={name}")["items"]
        assert pod["metadata"]["name"] == f"{name}-0"
        assert release.get("service", f"{name}-headless", "-n", ns)["spec"]["clusterIP"] == "None"

        cluster_ip = release.get("service", name, "-n", ns)["spec"]["clusterIP"]
        script = PROBE_SCRIPT.format(url=f"http://{cluster_ip}/health")
        release.kubectl(
            "run", "prober", "-n", ns, f"--image={TOOLBOX_IMAGE}", "--image-pull-policy=Never",
            "--restart=Never", "--command", "--", "/bin/sh", "-c", script,
        )  # fmt: skip
        wait_for(
            lambda: _probe_counts(release, ns, "prober")[0] > 5,
            timeout=60.0,
            what="the prober's first answers",
            interval=1,
        )

        # The earlier release's state: the controller stopped, a Deployment <ws> serving.
        _controller_replicas(release, 0)
        live_ws = release.get("workspace", name, "-n", ns)
        live_sts = release.get("statefulset", name, "-n", ns)
        release.apply(json.dumps(earlier_release_deployment(live_ws, live_sts)), ns)
        release.kubectl("rollout", "status", f"deployment/{name}", "-n", ns, "--timeout=300s")
        release.kubectl("delete", "statefulset", name, "-n", ns, "--wait=true", "--timeout=120s")
        wait_for(
            lambda: not release.kubectl("get", "pod", f"{name}-0", "-n", ns, "--ignore-not-found"),
            timeout=120.0,
            what=f"pod {name}-0 to go",
        )
        # This release's controller takes over and moves it.
        _controller_replicas(release, 1)

        def migrated() -> bool:
            gone = not release.kubectl("get", "deployment", name, "-n", ns, "--ignore-not-found")
            return gone and bool(
                release.kubectl("get", "statefulset", name, "-n", ns, "--ignore-not-found")
            )

        wait_for(migrated, timeout=600.0, what="the Deployment to give way to the StatefulSet")
        release.kubectl("rollout", "status", sts, "-n", ns, "--timeout=300s")
        events = release.kubectl("describe", "workspace", name, "-n", ns)
        assert "WorkloadMigration" in events, events
        answered, failed = _probe_counts(release, ns, "prober")
        print(f"migration: {answered} probes answered, {failed} failed")
        assert failed == 0, release.kubectl("logs", "prober", "-n", ns)

        # A revision update (the Workspace's own inference config): the surge pod serves while
        # <ws>-0 is replaced.
        config = {
            "apiVersion": "v1",
            "kind": "ConfigMap",
            "metadata": {"name": "rollout-config"},
            "data": {"inference_config.yaml": "transformers:\n  max-num-seqs: 4\n"},
        }
        release.apply(json.dumps(config), ns)
        patch = {"inference": {"config": "rollout-config"}}
        release.kubectl(
            "patch", "workspace", name, "-n", ns, "--type=merge", "-p", json.dumps(patch)
        )

        def updated() -> bool:
            live = release.get("statefulset", name, "-n", ns)
            volumes = live["spec"]["template"]["spec"]["volumes"]
            status = live["status"]
            return (
                any((v.get("configMap") or {}).get("name") == "rollout-config" for v in volumes)
                and live["spec"]["replicas"] == 1
                and status.get("observedGeneration") == live["metadata"]["generation"]
                and status.get("currentRevision") == status.get("updateRevision")
                and status.get("readyReplicas") == 1
            )

        wait_for(updated, timeout=900.0, what="the revision update to roll out", interval=2)
        release.kubectl("rollout", "status", sts, "-n", ns, "--timeout=60s")
        # The surge pod drains for its preStop after the StatefulSet settles: wait until it is
        # gone, then exactly one pod, <ws>-0, is left.
        selector = f"kaito.sh/workspace={name}"
        wait_for(
            lambda: len(release.get("pods", "-n", ns, "-l", selector)["items"]) == 1,
            timeout=60.0,
            what="the surge pod to go",
        )
        (pod,) = release.get("pods", "-n", ns, "-l", selector)["items"]
        assert pod["metadata"]["name"] == f"{name}-0"
        answered, failed = _probe_counts(release, ns, "prober")
        print(f"migration and revision update: {answered} probes answered, {failed} failed")
        assert failed == 0, release.kubectl("logs", "prober", "-n", ns)
    except Exception:
        print(
            release.kubectl("describe", "workspace,statefulset,pods", "-n", ns, check=False)[-8000:]
        )
        print(release.kubectl("get", "endpointslices,svc", "-n", ns, "-o", "wide", check=False))
        print("prober:", release.kubectl("logs", "prober", "-n", ns, check=False)[-3000:])
        raise
    finally:
        _controller_replicas(release, 1)
        node.advertise_gpus(1)
        release.kubectl("delete", "workspace", name, "-n", ns, "--wait=false", check=False)
        release.kubectl("delete", "namespace", ns, "--wait=false", check=False)
