"""Is the inference workload serving? Pure functions over the workload and its pods."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

Obj = dict[str, Any]

_WAITING_REASONS = {
    "ErrImagePull": "ImagePullError",
    "ImagePullBackOff": "ImagePullError",
    "InvalidImageName": "ImagePullError",
    "CrashLoopBackOff": "ContainerCrashLoopBackOff",
    "CreateContainerConfigError": "ContainerStartError",
    "CreateContainerError": "ContainerStartError",
    "RunContainerError": "ContainerStartError",
}


@dataclass(frozen=True)
class WorkloadReadiness:
    serving: bool  # enough ready replicas to answer requests
    rolled_out: bool  # every replica runs the current template
    ready: int
    desired: int
    message: str


def workload_readiness(workload: Obj) -> WorkloadReadiness:
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    desired = int(spec.get("replicas") or 0)
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    generation = int((workload.get("metadata") or {}).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if workload.get("kind") == "StatefulSet":
        current = status.get("currentRevision")
        rolled = (
            observed >= generation
            and (current is None or current == status.get("updateRevision"))
            and updated >= desired
        )
    else:
        rolled = observed >= generation and updated >= desired and total <= desired
    serving = ready >= desired > 0
    message = f"{ready} of {desired} inference pod(s) ready"
    if serving and not rolled:
        message += f"; rolling out the new revision ({updated} of {desired} updated)"
    return WorkloadReadiness(serving, rolled and serving, ready, desired, message)


def pod_problem(pod: Obj) -> tuple[str, str] | None:
    """(reason, message) when a pod is failing in a way a person should hear about."""
    name = (pod.get("metadata") or {}).get("name")
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return "PodEvicted", f"Pod {name} was evicted: {status.get('message') or ''}".strip()
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
        ):
            return "Unschedulable", f"Pod {name} cannot be scheduled: {cond.get('message') or ''}"
    statuses = list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )
    for cs in statuses:
        state = cs.get("state") or {}
        waiting = state.get("waiting") or {}
        reason = _WAITING_REASONS.get(str(waiting.get("reason") or ""))
        if reason:
            detail = waiting.get("message") or waiting.get("reason")
            return reason, f"Pod {name} container {cs.get('name')}: {detail}"
        last = (cs.get("lastState") or {}).get("terminated") or {}
        terminated = state.get("terminated") or last
        if terminated.get("reason") == "OOMKilled":
            return "ContainerOOMKilled", f"Pod {name} container {cs.get('name')} ran out of memory"
    return None


def classify_pods(pods: list[Obj]) -> tuple[str, str] | None:
    """The first problem among the pods, in name order (stable messages)."""
    for pod in sorted(pods, key=lambda p: str((p.get("metadata") or {}).get("name"))):
        problem = pod_problem(pod)
        if problem is not None:
            return problem
    return None
