"""`make demo` where no real node can run (not root, or no containerd): the kwok form.

Kaito end to end on this machine, no GPU and no cloud; the nodes are kwok's, so no container
runs: the inference server is started on this machine from the controller's pod spec instead.

`up` (the default) starts a local control plane, installs the `kaito` chart, runs both controllers
with the chart's identities and settings (the gpu-provisioner on the kwok cloud), applies an
inference Workspace (test-tiny-llama) and the seed's tuning Workspace, shows the objects as they
converge, then runs the inference server exactly as the controller's StatefulSet says (paths
remapped to a local directory) on a tiny model and calls it. Everything keeps running until
`make demo-down` (`down`), which stops what `up` started. Every line printed reports something
that happened.
"""

from __future__ import annotations

import json
import re
import shutil
import time
import urllib.request
from pathlib import Path
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
    REPO,
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

INFERENCE_WS = "workspace-tiny"
TUNING_WS = "workspace-tuning-phi-3"

Obj = dict[str, Any]


def start_registry() -> tuple[str, str, str]:
    from kaito_testing.registry import LocalRegistry

    registry = LocalRegistry(STATE / "registry")
    binary = shutil.which("docker-registry") or "/usr/bin/docker-registry"
    registry.start()
    assert registry.process is not None
    # LocalRegistry keeps its process in our process group; record it so `down` can stop it.
    remember("registry", registry.process.pid)
    say(f"Started a local registry ({binary}) at {registry.host} with user {registry.username}")
    return registry.host, registry.username, registry.password


def converge(cluster: Cluster, timeout_s: float = 300) -> None:
    """Print `kubectl get` each time it changes, until both Workspaces got where they go."""
    last = ""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        table = cluster.kubectl(
            "get", "workspace,nodeclaims,nodes,pods,svc", "-n", NAMESPACE, check=False
        )
        # Ignore the AGE column when deciding whether something changed.
        shape = re.sub(r"\s+\S+\s*$", "", table, flags=re.MULTILINE)
        if shape != last:
            say("kubectl get workspace,nodeclaims,nodes,pods,svc -n " + NAMESPACE)
            print(table, flush=True)
            last = shape
        inference = condition(cluster, INFERENCE_WS, "InferenceReady")
        tuning = condition(cluster, TUNING_WS, "JobStarted")
        if inference == "True" and tuning == "True":
            say(f"{INFERENCE_WS}: InferenceReady=True; {TUNING_WS}: JobStarted=True")
            return
        time.sleep(1)
    raise SystemExit(f"demo: the Workspaces did not converge in {timeout_s:.0f}s")


def _remap(value: str, mounts: dict[str, Path]) -> str:
    for container_path, local in sorted(mounts.items(), key=lambda kv: -len(kv[0])):
        if value == container_path or value.startswith(container_path + "/"):
            return str(local) + value[len(container_path) :]
        value = value.replace("=" + container_path, "=" + str(local))
    return value


def serve_like_the_pod(cluster: Cluster) -> tuple[int, str, HostProcess]:
    """Run the inference container's command, args and env from the API, paths remapped."""
    workload = cluster.get_json("statefulset", INFERENCE_WS, "-n", NAMESPACE)
    pod = workload["spec"]["template"]["spec"]
    container = pod["containers"][0]
    service = cluster.get_json("service", INFERENCE_WS, "-n", NAMESPACE)
    http = next(p for p in service["spec"]["ports"] if p["name"] == "http")
    target = http["targetPort"]
    if isinstance(target, str):
        target = next(p["containerPort"] for p in container["ports"] if p["name"] == target)
    port = int(target)
    argv = [*container.get("command", []), *container.get("args", [])]
    say(f"The controller's pod spec runs: {' '.join(argv)}")

    mounts = _pod_volumes(cluster, pod, container)
    model_flag = next((a for a in argv if a.startswith("--model=")), "")
    weights = model_flag.partition("=")[2]
    if weights:
        mounts[weights] = _stand_in_weights(pod, weights)
    env: dict[str, str] = {}
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = _remap(str(item["value"]), mounts)
        else:
            say(f"Skipped env {item['name']} (valueFrom; needs the cluster)")
    local_argv = [_remap(a, mounts) for a in argv]
    if local_argv and Path(local_argv[0]).name.startswith("python"):
        local_argv[0] = python()
    say(f"Running it locally: {' '.join(local_argv)}")
    proc = HostProcess(
        "inference-server",
        local_argv,
        env,
        STATE / "inference-server.log",
        f"http://127.0.0.1:{port}/health",
    )
    spawn_detached(proc)
    served = next((a.partition("=")[2] for a in argv if a.startswith("--served-model-name=")), "")
    say(f"inference-server answers /health on 127.0.0.1:{port} (the Service's target port)")
    return port, served, proc


def _pod_volumes(cluster: Cluster, pod: Obj, container: Obj) -> dict[str, Path]:
    """The container's volume mounts as local folders (ConfigMaps written out): path -> folder."""
    pod_dir = STATE / "pod"
    shutil.rmtree(pod_dir, ignore_errors=True)
    mounts: dict[str, Path] = {}
    volumes = {v["name"]: v for v in pod.get("volumes", [])}
    for mount in container.get("volumeMounts", []):
        local = pod_dir / mount["name"]
        local.mkdir(parents=True, exist_ok=True)
        source = volumes.get(mount["name"], {})
        if "configMap" in source:
            cm = cluster.get_json("configmap", source["configMap"]["name"], "-n", NAMESPACE)
            for key, text in (cm.get("data") or {}).items():
                (local / key).write_text(text)
            say(f"Wrote ConfigMap {source['configMap']['name']} to {local} ({mount['mountPath']})")
        mounts[mount["mountPath"]] = local
    return mounts


def _stand_in_weights(pod: Obj, weights: str) -> Path:
    """A tiny model standing in for the weights the pod's init container would copy."""
    from kaito_testing.tiny_model import cached_tiny_model

    cache = REPO / ".dev" / "tiny-models"
    existed = {p.name for p in cache.glob("tiny-*")} if cache.exists() else set()
    model = cached_tiny_model(cache)
    done = "Reused the tiny model built before" if model.name in existed else "Built a tiny model"
    copier = next((c for c in pod.get("initContainers", []) if c["name"] == "model-weights"), None)
    source = f"{weights}, copied there from {copier['image']}" if copier else weights
    say(f"{done} (kaito_testing.tiny_model) at {model}, standing in for {source}")
    return model


def call_it(port: int, model: str) -> None:
    body = json.dumps({"prompt": SEED_PROMPT}).encode()
    request = urllib.request.Request(
        f"http://127.0.0.1:{port}/chat",
        data=body,
        headers={"Content-Type": "application/json", "accept": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=120) as resp:
        answer = json.loads(resp.read())
    say(f"POST /chat {body.decode()} -> HTTP {resp.status}")
    print(f"    {json.dumps(answer)[:300]}", flush=True)

    from openai import OpenAI

    client = OpenAI(base_url=f"http://127.0.0.1:{port}/v1", api_key="not-needed")
    completion = client.chat.completions.create(
        model=model,
        messages=[{"role": "user", "content": SEED_PROMPT}],
        max_tokens=24,
    )
    text = completion.choices[0].message.content or ""
    say(f"OpenAI client chat.completions.create(model={model!r}) -> {text!r}")


def up() -> None:
    from kaito_testing.testbin import ensure_testbin

    if STATE.exists():
        down()
    STATE.mkdir(parents=True, exist_ok=True)
    bin_dir = ensure_testbin()
    devcluster("up")
    cluster = Cluster(bin_dir, KUBECONFIG)
    say(f"Started the local control plane (etcd, kube-apiserver, controller-manager, scheduler, "
        f"kwok); KUBECONFIG={KUBECONFIG}")  # fmt: skip

    webhook_port = free_port()
    values = local_values(webhook_port)
    helm_install(cluster, values)
    say("helm install kaito charts/kaito -n kaito-workspace: CRDs, RBAC, ServiceAccounts, "
        "webhook, default ConfigMaps (" + ", ".join(values) + ")")  # fmt: skip

    _start_controllers(cluster, webhook_port)
    _apply_workspaces(cluster)

    converge(cluster)
    say("kwok marks pods Running without running containers; the inference container runs next, "
        "on this machine")  # fmt: skip
    port, model, _ = serve_like_the_pod(cluster)
    call_it(port, model)
    _print_summary(port)


def _start_controllers(cluster: Cluster, webhook_port: int) -> None:
    provisioner = gpu_provisioner_process(cluster, python(), STATE)
    spawn_detached(provisioner)
    say(f"gpu-provisioner running (cloud kwok) as ServiceAccount kaito-workspace/gpu-provisioner, "
        f"log {provisioner.log_path}")  # fmt: skip
    controller = workspace_controller_process(cluster, python(), STATE, webhook_port)
    spawn_detached(controller)
    say(f"workspace-controller running as ServiceAccount kaito-workspace/workspace-controller, "
        f"webhook on 127.0.0.1:{webhook_port}, log {controller.log_path}")  # fmt: skip


def _apply_workspaces(cluster: Cluster) -> None:
    host, user, password = start_registry()
    cluster.kubectl("create", "namespace", NAMESPACE)
    cluster.kubectl(
        "apply", "-f", "-", input=registry_secret("local-registry", NAMESPACE, host, user, password)
    )
    inference = {
        "apiVersion": "kaito.sh/v1beta1",
        "kind": "Workspace",
        "metadata": {"name": INFERENCE_WS, "namespace": NAMESPACE},
        "resource": {
            "instanceType": "Standard_NC6s_v3",
            "labelSelector": {"matchLabels": {"apps": "tiny"}},
        },
        "inference": {"preset": {"name": "test-tiny-llama"}},
    }
    cluster.kubectl("apply", "-f", "-", input=yaml.safe_dump(inference))
    say(f"Applied Workspace {NAMESPACE}/{INFERENCE_WS} (preset test-tiny-llama)")
    seed = seed_tuning_workspace(host, "local-registry")
    cluster.kubectl("apply", "-n", NAMESPACE, "-f", "-", input=seed)
    say(f"Applied the seed's tuning Workspace {NAMESPACE}/{TUNING_WS} "
        f"(output image {host}/tuning-phi-3:0.0.1, push secret local-registry)")  # fmt: skip


def _print_summary(port: int) -> None:
    say("Done. Running now:")
    for pid_file in sorted(STATE.glob("*.pid")):
        print(f"    {pid_file.stem:22} pid {pid_file.read_text()}", flush=True)
    print(f"    local control plane    {STATE / 'cluster'} (supervisor)", flush=True)
    print(f"  Try: export KUBECONFIG={KUBECONFIG}; kubectl get workspace -A", flush=True)
    print(f"       curl -X POST http://127.0.0.1:{port}/chat -H 'Content-Type: application/json' "
          f"-d '{{\"prompt\":\"{SEED_PROMPT}\"}}'", flush=True)  # fmt: skip
    print("  Stop everything: make demo-down", flush=True)


if __name__ == "__main__":
    run_demo(up, __doc__ or "")
