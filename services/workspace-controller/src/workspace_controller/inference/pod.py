"""The pod of an inference workload: one inference-server container on the GPU node(s).

Init containers fill its volumes first: the model's weights, downloaded or copied from a weights
image (`weights_volume.py`), then one puller per adapter image.
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj
from workspace_controller.inference.plan import (
    ADAPTERS_DIR,
    PROBE_PERIOD_S,
    InferencePlan,
)
from workspace_controller.inference.service import SERVER_PORT, TORCH_PORT
from workspace_controller.manifests.configmap import CONFIG_DIR
from workspace_controller.manifests.model_weights import hf_token_env
from workspace_controller.manifests.names import dns_label
from workspace_controller.manifests.placement import (
    GPU_TOLERATIONS,
    affinity_manifest,
    gpu_resources,
)
from workspace_controller.manifests.runner import (
    pull_secret_dir,
    runner_argv,
    runner_container,
    secret_mount,
    secret_volume,
    tmp_volume,
)
from workspace_controller.manifests.runner_access import SERVER_LOG_FORMAT_ENV, log_format_env
from workspace_controller.manifests.weights_volume import (
    weights_init_containers,
    weights_mounts,
    weights_volumes,
)


def _probe(failure_threshold: int) -> Obj:
    return {
        "httpGet": {"path": "/health", "port": SERVER_PORT, "scheme": "HTTP"},
        "periodSeconds": PROBE_PERIOD_S,
        "failureThreshold": failure_threshold,
    }


def pull_command(image: str, dest: str, secrets: tuple[str, ...]) -> list[str]:
    """The adapter puller: an image's /data/* into `dest`."""
    args = ["--image", image, "--dest", dest]
    for secret in secrets:
        args += ["--docker-config", pull_secret_dir(secret)]
    return runner_argv("pull", *args)


def _adapter_parts(plan: InferencePlan) -> tuple[list[Obj], list[Obj], list[Obj], list[Obj]]:
    """(init containers, volumes, extra mounts of the server, env) for the adapters.

    An image adapter is pulled by the tuning runner (`python -m tuning_runner pull`), which
    reads the image's `/data/*` over the registry API: adapter images need no shell (the ones
    the tuning Job pushes have a single data layer). Its pull secrets are mounted for it.
    """
    inits: list[Obj] = []
    volumes: list[Obj] = []
    mounts: list[Obj] = []
    env: list[Obj] = []
    if not plan.adapters:
        return inits, volumes, mounts, env
    volumes.append({"name": "adapters", "emptyDir": {}})
    mounts.append({"name": "adapters", "mountPath": ADAPTERS_DIR})
    secrets_mounted: set[str] = set()
    for index, adapter in enumerate(plan.adapters):
        name = adapter.source.name or f"adapter-{index}"
        target = f"{ADAPTERS_DIR}/{name}"
        env.append({"name": name, "value": adapter.strength or "1.0"})
        if adapter.source.image:
            secrets = tuple(adapter.source.image_pull_secrets or ())
            for secret in secrets:
                if secret not in secrets_mounted:
                    secrets_mounted.add(secret)
                    volumes.append(secret_volume(secret))
            inits.append(
                runner_container(
                    dns_label(f"adapter-{name}"),
                    plan.runner_image,
                    pull_command(adapter.source.image, target, secrets),
                    [
                        {"name": "adapters", "mountPath": ADAPTERS_DIR},
                        *(secret_mount(s) for s in secrets),
                    ],
                    plan.runner_access,
                )
            )
        elif adapter.source.volume_source:
            volume = dns_label(f"adapter-{index}-{name}")
            volumes.append({"name": volume, **adapter.source.volume_source})
            mounts.append({"name": volume, "mountPath": target, "readOnly": True})
    if inits:
        volumes += plan.runner_access.volumes()
        volumes.append(tmp_volume())
    return inits, volumes, mounts, env


DRAIN_S = 10


def pod_template(plan: InferencePlan) -> Obj:
    inits, adapter_volumes, adapter_mounts, adapter_env = _adapter_parts(plan)
    volumes: list[Obj] = [{"name": "dshm", "emptyDir": {"medium": "Memory"}}]
    mounts: list[Obj] = [{"name": "dshm", "mountPath": "/dev/shm"}]
    if plan.config_map:
        volumes.append({"name": "config", "configMap": {"name": plan.config_map}})
        mounts.append({"name": "config", "mountPath": CONFIG_DIR, "readOnly": True})
    volumes += weights_volumes(plan.weights) + adapter_volumes
    mounts += weights_mounts(plan.weights) + adapter_mounts
    inits = (
        weights_init_containers(
            plan.weights, plan.hf_endpoint, plan.model_access_secret, plan.runner_access.log_format
        )
        + inits
    )
    env = list(adapter_env) + log_format_env(SERVER_LOG_FORMAT_ENV, plan.runner_access.log_format)
    if plan.model_access_secret:
        env.append(hf_token_env(plan.model_access_secret))
    container: Obj = {
        "name": plan.name,
        "image": plan.image,
        "imagePullPolicy": "IfNotPresent",
        "command": list(plan.command),
        "ports": [
            {"name": "http", "containerPort": SERVER_PORT, "protocol": "TCP"},
            {"name": "torch", "containerPort": TORCH_PORT, "protocol": "TCP"},
        ],
        "resources": gpu_resources(plan.gpus),
        # The startup probe covers model loading (sized to the preset's readiness timeout), so
        # liveness needs no long initial delay.
        "startupProbe": _probe(plan.startup_failure_threshold),
        "readinessProbe": _probe(3),
        "livenessProbe": _probe(3),
        "volumeMounts": mounts,
        "securityContext": {"allowPrivilegeEscalation": False},
        # A pod that is going keeps answering while the Service's endpoints and every node's
        # proxy rules drop it (they lag the deletion by a few seconds): no refused requests
        # during a rolling update.
        "lifecycle": {"preStop": {"exec": {"command": ["sleep", str(DRAIN_S)]}}},
    }
    if env:
        container["env"] = env
    spec: Obj = {
        "containers": [container],
        "tolerations": [dict(t) for t in GPU_TOLERATIONS],
        "volumes": volumes,
        "securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
    }
    affinity = affinity_manifest(plan.affinity)
    if affinity:
        spec["affinity"] = affinity
    if inits:
        spec["initContainers"] = inits
    if plan.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in plan.image_pull_secrets]
    return {
        "metadata": {
            "labels": {L.LABEL_WORKSPACE: plan.name},
            "annotations": {L.ANNOTATION_WORKSPACE_REVISION: plan.revision},
        },
        "spec": spec,
    }
