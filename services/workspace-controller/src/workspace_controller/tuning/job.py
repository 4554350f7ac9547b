"""The tuning Job `<ws>`: fetch (init) -> trainer -> pusher, or fetch -> trainer for a volume.

The trainer's weights volume is filled first, by an init container that downloads the preset's
repository or copies a weights image (`weights_volume.py`).

For an output image the trainer is the last init container and the pusher the main container:
init containers run one after the other, each only after the previous one succeeded, so the push
starts exactly when training has finished, with no sidecar polling for a marker file, no shared
process namespace and no privileged docker-in-docker (Kaito v0.3). For an output volume the
trainer is the main container and writes straight into the volume.
"""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller.objects import Obj
from workspace_controller.manifests.configmap import CONFIG_DIR
from workspace_controller.manifests.placement import (
    GPU_TOLERATIONS,
    affinity_manifest,
    gpu_resources,
)
from workspace_controller.manifests.runner import (
    TERMINATION_LOG,
    runner_container,
    secret_mount,
    secret_volume,
    tmp_mount,
    tmp_volume,
)
from workspace_controller.manifests.weights_volume import (
    weights_init_containers,
    weights_mounts,
    weights_volumes,
)
from workspace_controller.tuning.plan import (
    DATA_DIR,
    FETCH_CONTAINER,
    PUSH_SECRET_DIR,
    PUSHER_CONTAINER,
    TRAINER_CONTAINER,
    TuningPlan,
    fetch_command,
    push_command,
    train_command,
    trainer_env,
)

# The runner exits 1 for failures a retry cannot fix (bad config, bad data, rejected
# credentials, a fetch that already retried): fail the Job at once instead of re-running it.
RUNNER_FAILURE_EXIT_CODE = 1
# The user of the project's images (`USER 65532:65532` in their Dockerfiles).
RUNNER_UID = 65532


def _volumes(plan: TuningPlan) -> list[Obj]:
    data: Obj = (
        {"name": "data", **plan.input_volume}
        if plan.input_volume
        else {"name": "data", "emptyDir": {}}
    )
    results: Obj = (
        {"name": "results", **plan.output_volume}
        if plan.output_volume
        else {"name": "results", "emptyDir": {}}
    )
    volumes = [
        {"name": "config", "configMap": {"name": plan.config_map}},
        data,
        results,
        {"name": "dshm", "emptyDir": {"medium": "Memory"}},
        tmp_volume(),
        *weights_volumes(plan.weights),
    ]
    if plan.input_image:
        volumes += [secret_volume(s) for s in plan.input_pull_secrets]
    if plan.pushes and plan.push_secret:
        volumes.append({"name": "push-secret", "secret": {"secretName": plan.push_secret}})
    if plan.fetches or plan.pushes:
        volumes += plan.runner_access.volumes()
    return volumes


def _fetch(plan: TuningPlan) -> Obj:
    mounts: list[Obj] = [{"name": "data", "mountPath": DATA_DIR}]
    if plan.input_image:
        mounts += [secret_mount(s) for s in plan.input_pull_secrets]
    return runner_container(
        FETCH_CONTAINER, plan.runner_image, fetch_command(plan), mounts, plan.runner_access
    )


def _trainer(plan: TuningPlan) -> Obj:
    return {
        "name": TRAINER_CONTAINER,
        "image": plan.trainer_image,
        "imagePullPolicy": "IfNotPresent",
        "command": train_command(plan),
        "env": trainer_env(plan),
        "ports": [{"name": "metrics", "containerPort": plan.metrics_port, "protocol": "TCP"}],
        "resources": gpu_resources(plan.gpus),
        "volumeMounts": [
            {"name": "config", "mountPath": CONFIG_DIR, "readOnly": True},
            {"name": "data", "mountPath": DATA_DIR, "readOnly": True},
            {"name": "results", "mountPath": plan.output_dir},
            {"name": "dshm", "mountPath": "/dev/shm"},
            tmp_mount(),
            *weights_mounts(plan.weights),
        ],
        "terminationMessagePath": TERMINATION_LOG,
        "terminationMessagePolicy": "FallbackToLogsOnError",
        "securityContext": {"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}},
    }


def _pusher(plan: TuningPlan) -> Obj:
    mounts: list[Obj] = [{"name": "results", "mountPath": plan.output_dir, "readOnly": True}]
    if plan.push_secret:
        mounts.append({"name": "push-secret", "mountPath": PUSH_SECRET_DIR, "readOnly": True})
    return runner_container(
        PUSHER_CONTAINER, plan.runner_image, push_command(plan), mounts, plan.runner_access
    )


def job_pod_spec(plan: TuningPlan) -> Obj:
    inits = weights_init_containers(
        plan.weights, plan.hf_endpoint, plan.model_access_secret, plan.runner_access.log_format
    )
    if plan.fetches:
        inits.append(_fetch(plan))
    if plan.pushes:
        inits.append(_trainer(plan))
        containers = [_pusher(plan)]
    else:
        containers = [_trainer(plan)]
    spec: Obj = {
        "restartPolicy": "Never",
        "containers": containers,
        "tolerations": [dict(t) for t in GPU_TOLERATIONS],
        "volumes": _volumes(plan),
        # One non-root user for every step: the pusher reads what the trainer wrote (safetensors
        # files are created 0600), and fsGroup makes an output volume writable by it.
        "securityContext": {
            "runAsNonRoot": True,
            "runAsUser": RUNNER_UID,
            "runAsGroup": RUNNER_UID,
            "fsGroup": RUNNER_UID,
            "seccompProfile": {"type": "RuntimeDefault"},
        },
    }
    if inits:
        spec["initContainers"] = inits
    affinity = affinity_manifest(plan.affinity)
    if affinity:
        spec["affinity"] = affinity
    if plan.image_pull_secrets:
        spec["imagePullSecrets"] = [{"name": s} for s in plan.image_pull_secrets]
    return spec


def job_manifest(plan: TuningPlan, owner: Obj) -> Obj:
    labels = {L.LABEL_WORKSPACE: plan.name}
    annotations = {L.ANNOTATION_WORKSPACE_REVISION: plan.revision}
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": plan.name,
            "namespace": plan.namespace,
            "labels": dict(labels),
            "annotations": dict(annotations),
            "ownerReferences": [owner],
        },
        "spec": {
            "backoffLimit": plan.backoff_limit,
            "podFailurePolicy": {
                "rules": [
                    {
                        "action": "FailJob",
                        "onExitCodes": {
                            "operator": "In",
                            "values": [RUNNER_FAILURE_EXIT_CODE],
                        },
                    },
                    # A node drained or preempted is not the trainer's fault: retry for free.
                    {
                        "action": "Ignore",
                        "onPodConditions": [{"type": "DisruptionTarget", "status": "True"}],
                    },
                ]
            },
            "template": {
                "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
                "spec": job_pod_spec(plan),
            },
        },
    }
