"""Why a workspace's pods are not running: a pure classification of their status.

Both the inference pods and the tuning Job's pods are reported this way: an image that cannot
be pulled, a crash loop, an OOM kill, an eviction or a pod that cannot be scheduled.
"""

from __future__ import annotations

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

_WAITING_REASONS = {
    "ErrImagePull": "ImagePullError",
    "ImagePullBackOff": "ImagePullError",
    "InvalidImageName": "ImagePullError",
    "CrashLoopBackOff": "ContainerCrashLoopBackOff",
    "CreateContainerConfigError": "ContainerStartError",
    "CreateContainerError": "ContainerStartError",
    "RunContainerError": "ContainerStartError",
}


def pod_problem(pod: Obj) -> tuple[str, str] | None:
    """(reason, message) when a pod is failing in a way a person should hear about."""
    name = objects.name(pod)
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
    for pod in sorted(pods, key=objects.name):
        problem = pod_problem(pod)
        if problem is not None:
            return problem
    return None
