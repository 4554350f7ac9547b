"""`make demo` on a real node: the seed's flow, everything in pods, nothing simulated but the GPU.

`up` (the default; `hack/demo.sh` has built the project's images with `make images` first):
1. starts the local control plane with one real node (containerd + kubelet on this machine, two
   GPUs advertised as an extended resource: the GPU is the one thing faked);
2. starts a registry (htpasswd auth) on the node's address and pushes the images there with
   `make images-push`, as docs/installation.md tells a user; the kubelet pulls them with a pull
   secret;
3. starts the local Hugging Face hub, serving a tiny model with the Phi-3 architecture under
   `microsoft/Phi-3-mini-128k-instruct` at the commit the catalog pins, and an HTTP server for
   the seed's tuning data (rows in the shape of the seed's dataset);
4. `helm install`s the chart from that registry: both controllers run as pods;
5. applies an inference Workspace of the seed's preset `phi-3-mini-128k-instruct` (served by the
   transformers engine: no GPU here) and the seed's tuning Workspace, unchanged but for its
   placeholders and its data URL;
6. shows the objects as they converge, until the inference Workspace is `InferenceReady` and the
   tuning Workspace `WorkspaceSucceeded` (its Job downloaded the weights, fetched the data,
   trained QLoRA on the CPU and pushed the adapter: what the Workspace status says happened);
7. POSTs the seed's `/chat` to the Service's ClusterIP from this machine (kube-proxy routes it).

Everything keeps running until `make demo-down`.
"""

from __future__ import annotations

import json
import re
import subprocess
import time
from typing import Any

import yaml
from common import (
    KUBECONFIG,
    NAMESPACE,
    SEED_PROMPT,
    STATE,
    condition,
    devcluster,
    down,
    python,
    remember,
    run_demo,
    say,
    spawn_detached,
)

from kaito_testing.kaito_local import (
    CHART,
    REPO,
    Cluster,
    HostProcess,
    registry_secret,
    seed_tuning_workspace,
)
from kaito_testing.node_registry import NodeRegistry, content_tag, start_node_registry
from kaito_testing.ports import free_port
from kaito_testing.realnode import host_ip
from kaito_testing.tiny_model import cached_tiny_model

RELEASE_NS = "kaito-workspace"
PULL_SECRET = "kaito-registry"
PUSH_SECRET = "local-registry"
PRESET = "phi-3-mini-128k-instruct"
INFERENCE_WS = "workspace-phi-3-mini-128k"
TUNING_WS = "workspace-tuning-phi-3"
SKU = "Standard_NC6s_v3"
DATA_ROWS = 32


def start_cluster() -> Cluster:
    from kaito_testing.testbin import ensure_testbin

    bin_dir = ensure_testbin()
    say("Starting the control plane and a real node (containerd + kubelet on this machine)")
    say(devcluster("up", "--profile", "node", "--node-gpus", "2", "--timeout", "300"))
    cluster = Cluster(bin_dir, KUBECONFIG)
    node = cluster.get_json("nodes")["items"][0]
    gpus = node["status"]["allocatable"].get("nvidia.com/gpu")
    say(f"Node {node['metadata']['name']} is Ready (kubelet + containerd, not kwok); "
        f"nvidia.com/gpu: {gpus} (faked)")  # fmt: skip
    return cluster


def start_registry(address: str) -> NodeRegistry:
    reg = start_node_registry(address, STATE / "registry")
    reg.tag = content_tag()  # a new tag when an image changed (the node's store lasts)
    assert reg.registry.process is not None
    remember("registry", reg.registry.process.pid)
    # containerd reads its registry hosts at each pull: plain HTTP for this one.
    hosts = STATE / "cluster" / "work" / "node" / "containerd" / "certs.d" / reg.registry.host
    hosts.mkdir(parents=True, exist_ok=True)
    (hosts / "hosts.toml").write_text(
        f'server = "http://{reg.registry.host}"\n\n[host."http://{reg.registry.host}"]\n'
        '  capabilities = ["pull", "resolve"]\n'
    )
    say(f"Started a registry at {reg.registry.host} (user {reg.registry.username}); "
        f"the node pulls from it over plain HTTP")  # fmt: skip
    started = time.monotonic()
    say(f"make images-push REGISTRY={reg.repo} TAG={reg.tag} (layers already there are skipped)")
    for line in reg.push_project_images(STATE / "images-push.log").splitlines():
        if line.strip().startswith(("pushed", "localhost/")) or "->" in line:
            say("  " + line.strip())
    say(f"Pushed the images in {time.monotonic() - started:.0f}s")
    return reg


def start_hub(address: str) -> str:
    from transformers.utils import logging as transformers_logging

    transformers_logging.set_verbosity_error()  # type: ignore[no-untyped-call]
    transformers_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    cache = REPO / ".dev" / "tiny-models"
    say(f"Building (first run) or reusing a tiny model with the Phi-3 architecture in {cache}")
    model = cached_tiny_model(cache, arch="phi3", long_rope=True)
    port = free_port()
    hub = HostProcess(
        "hf-hub",
        [python(), "-m", "kaito_testing.hfhub", "serve", "--host", address, "--port", str(port),
         "--preset", f"{PRESET}={model}"],
        {}, STATE / "hf-hub.log",
        f"http://{address}:{port}/api/models/microsoft/Phi-3-mini-128k-instruct",
    )  # fmt: skip
    spawn_detached(hub)
    say(f"Started the local Hugging Face hub at http://{address}:{port}: a tiny Phi-3 model "
        f"({model}) as microsoft/Phi-3-mini-128k-instruct, at the pinned commit")  # fmt: skip
    return f"http://{address}:{port}"


def start_data_server(address: str) -> str:
    data = STATE / "data"
    data.mkdir(parents=True, exist_ok=True)
    rows = []
    for i in range(DATA_ROWS):
        question = f"What does Kaito do with workspace number {i}?"
        rows.append(
            {
                "messages": [
                    {"role": "user", "content": question},
                    {"role": "assistant", "content": f"It serves model {i}."},
                ]
            }
        )
    (data / "dolly.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    port = free_port()
    server = HostProcess(
        "data-server",
        [python(), "-m", "http.server", str(port), "--bind", address, "--directory", str(data)],
        {}, STATE / "data-server.log", f"http://{address}:{port}/dolly.jsonl",
    )  # fmt: skip
    spawn_detached(server)
    url = f"http://{address}:{port}/dolly.jsonl"
    say(
        f"Serving the tuning data ({DATA_ROWS} rows in the seed dataset's messages format) at {url}"
    )
    return url


def install_chart(cluster: Cluster, reg: NodeRegistry, hub: str, address: str) -> None:
    cluster.kubectl("create", "namespace", RELEASE_NS)
    cluster.kubectl("apply", "-f", "-", input=reg.pull_secret(RELEASE_NS, PULL_SECRET))
    values = [
        f"global.image.registry={reg.repo}", f"global.image.tag={reg.tag}",
        f"global.imagePullSecrets={{{PULL_SECRET}}}",
        f"workspace-controller.huggingFace.endpoint={hub}",
        "gpu-provisioner.cloud=kwok",
        f"workspace-controller.tuning.allowedDataNetworks={{{address}/32}}",
        f"workspace-controller.tuning.plainHTTPRegistries={{{reg.registry.host}}}",
    ]  # fmt: skip
    argv = ["upgrade", "--install", "kaito", str(CHART), "-n", RELEASE_NS, "--wait",
            "--timeout", "5m"]  # fmt: skip
    for value in values:
        argv += ["--set", value]
    cluster.helm(*argv)
    say(
        "helm install kaito charts/kaito: both controllers run as pods, pulled from the registry ("
        + ", ".join(values)
        + ")"
    )
    print(cluster.kubectl("get", "pods", "-n", RELEASE_NS, "-o", "wide"), flush=True)


def apply_workspaces(cluster: Cluster, reg: NodeRegistry, data_url: str) -> None:
    cluster.kubectl("create", "namespace", NAMESPACE)
    host, user, password = reg.registry.host, reg.registry.username, reg.registry.password
    for name in (PULL_SECRET, PUSH_SECRET):
        cluster.kubectl(
            "apply", "-f", "-", input=registry_secret(name, NAMESPACE, host, user, password)
        )
    node = cluster.get_json("nodes")["items"][0]["metadata"]["name"]
    cluster.kubectl("label", "node", node, "--overwrite", "apps=phi-3", "app=tuning-phi-3",
                    f"node.kubernetes.io/instance-type={SKU}")  # fmt: skip
    say(f"Labelled node {node} for both Workspaces' labelSelectors (a GPU node of type {SKU})")
    inference = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {
            "name": INFERENCE_WS,
            "namespace": NAMESPACE,
            # No GPU here: the transformers engine on the CPU (vLLM is the default).
            "annotations": {"kaito.sh/runtime": "transformers"},
        },
        "resource": {"instanceType": SKU, "labelSelector": {"matchLabels": {"apps": "phi-3"}}},
        "inference": {"preset": {"name": PRESET}},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(inference))
    say(f"Applied Workspace {NAMESPACE}/{INFERENCE_WS} (preset {PRESET}, weights downloaded at "
        "start from the hub)")  # fmt: skip
    seed = yaml.safe_load(seed_tuning_workspace(host, PUSH_SECRET))
    seed["tuning"]["input"]["urls"] = [data_url]
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=yaml.safe_dump(seed))
    say(f"Applied the seed's tuning Workspace {NAMESPACE}/{TUNING_WS} (preset {PRESET}, qlora, "
        f"data {data_url}, output image {seed['tuning']['output']['image']})")  # fmt: skip


def converge(cluster: Cluster, timeout_s: float = 1800) -> None:
    """Print `kubectl get` each time it changes, until both Workspaces got where they go."""
    last = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        table = cluster.kubectl(
            "get", "workspace,pods,svc", "-n", NAMESPACE, "-o", "wide", check=False
        )
        shape = re.sub(r"\s+\d+[smhd]\S*", " ", table)  # ignore the AGE columns
        if shape != last:
            say(f"kubectl get workspace,pods,svc -n {NAMESPACE}")
            print(table, flush=True)
            last = shape
        failed = condition(cluster, TUNING_WS, "WorkspaceSucceeded") == "False" and (
            "Failed" in cluster.kubectl("get", "workspace", TUNING_WS, "-n", NAMESPACE,
                                        "-o", "jsonpath={.status.state}", check=False)
        )  # fmt: skip
        if failed:
            raise SystemExit(
                "demo: the tuning Workspace failed:\n"
                + cluster.kubectl("describe", "workspace", TUNING_WS, "-n", NAMESPACE, check=False)
            )
        ready = condition(cluster, INFERENCE_WS, "InferenceReady") == "True"
        tuned = condition(cluster, TUNING_WS, "WorkspaceSucceeded") == "True"
        if ready and tuned:
            say(f"{INFERENCE_WS}: InferenceReady=True; {TUNING_WS}: WorkspaceSucceeded=True")
            return
        time.sleep(2)
    raise SystemExit(f"demo: the Workspaces did not converge in {timeout_s:.0f}s")


def show_what_happened(cluster: Cluster) -> None:
    pods = cluster.get_json("pods", "-n", NAMESPACE)["items"]
    for pod in pods:
        name = pod["metadata"]["name"]
        for status in pod["status"].get("initContainerStatuses", []):
            if status["name"] == "model-download":
                log = cluster.kubectl("logs", name, "-n", NAMESPACE, "-c", "model-download",
                                      check=False)  # fmt: skip
                last = log.strip().splitlines()[-1] if log.strip() else "(no log)"
                say(f"{name} model-download: {last}")
        for status in pod["status"].get("containerStatuses", []):
            if status["name"] == "pusher":
                log = cluster.kubectl("logs", name, "-n", NAMESPACE, "-c", "pusher", check=False)
                pushed = [line for line in log.splitlines() if "Pushed adapter image" in line]
                say(f"{name} pusher: {pushed[-1] if pushed else log.strip()[-300:]}")


def call_it(cluster: Cluster) -> str:
    cluster_ip = cluster.get_json("service", INFERENCE_WS, "-n", NAMESPACE)["spec"]["clusterIP"]
    body = json.dumps({"prompt": SEED_PROMPT})
    result = subprocess.run(
        ["curl", "-sS", "--max-time", "120", "-X", "POST", f"http://{cluster_ip}/chat",
         "-H", "accept: application/json", "-H", "Content-Type: application/json", "-d", body],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    if result.returncode != 0:
        raise SystemExit(f"demo: curl http://{cluster_ip}/chat failed: {result.stderr}")
    answer: Any = json.loads(result.stdout)
    say(f"curl -X POST http://{cluster_ip}/chat -d '{body}' (from this machine, via kube-proxy)")
    print(f"    {json.dumps(answer)[:300]}", flush=True)
    say("(The tiny model's weights are random: the words after the prompt are noise, but every "
        "token went through the real engine in the pod.)")  # fmt: skip
    return str(cluster_ip)


def up() -> None:
    if STATE.exists():
        down()
    STATE.mkdir(parents=True, exist_ok=True)
    cluster = start_cluster()
    address = host_ip()
    reg = start_registry(address)
    hub = start_hub(address)
    data_url = start_data_server(address)
    install_chart(cluster, reg, hub, address)
    apply_workspaces(cluster, reg, data_url)
    converge(cluster)
    show_what_happened(cluster)
    cluster_ip = call_it(cluster)
    say("Done. Running now:")
    for pid_file in sorted(STATE.glob("*.pid")):
        print(f"    {pid_file.stem:22} pid {pid_file.read_text()}", flush=True)
    print(f"    control plane + node   {STATE / 'cluster'} (supervisor)", flush=True)
    print(f"  Try: export KUBECONFIG={KUBECONFIG}; kubectl get workspace,pods -A -o wide",
          flush=True)  # fmt: skip
    print(f"       curl -X POST http://{cluster_ip}/chat -H 'Content-Type: application/json' "
          f"-d '{{\"prompt\":\"{SEED_PROMPT}\"}}'", flush=True)  # fmt: skip
    print("  Stop everything: make demo-down", flush=True)


if __name__ == "__main__":
    run_demo(up, __doc__ or "")
