"""Why a workspace's pods are not running: a pure classification of their status.

Both the inference pods and the tuning Job's pods are reported this way: an image that cannot
be pulled, a crash loop, an OOM kill, an eviction or a pod that cannot be scheduled.
"""

from __future__ import annotations

import datetime as dt

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

# The scheduler retries a pod it could not place; a node that just joined (its GPUs not yet in
# the scheduler's cache) makes that happen for a moment. Only a pod unschedulable this long is a
# problem to report.
UNSCHEDULABLE_GRACE_S = 30.0

_WAITING_REASONS = {
    "ErrImagePull": "ImagePullError",
    "ImagePullBackOff": "ImagePullError",
    "InvalidImageName": "ImagePullError",
    "CrashLoopBackOff": "ContainerCrashLoopBackOff",
    "CreateContainerConfigError": "ContainerStartError",
    "CreateContainerError": "ContainerStartError",
    "RunContainerError": "ContainerStartError",
}


def _since(cond: Obj, now: dt.datetime) -> float:
    """Seconds since the condition's last transition (0 when it has no time)."""
    stamp = str(cond.get("lastTransitionTime") or "")
    try:
        changed = dt.datetime.fromisoformat(stamp.replace("Z", "+00:00"))
    except ValueError:
        return 0.0
    return (now - changed).total_seconds()


def pod_problem(pod: Obj, now: dt.datetime | None = None) -> tuple[str, str] | None:
    """(reason, message) when a pod is failing in a way a person should hear about."""
    now = now or dt.datetime.now(dt.UTC)
    name = objects.name(pod)
    status = pod.get("status") or {}
    if status.get("reason") == "Evicted":
        return "PodEvicted", f"Pod {name} was evicted: {status.get('message') or ''}".strip()
    for cond in status.get("conditions") or []:
        if (
            cond.get("type") == "PodScheduled"
            and cond.get("status") == "False"
            and cond.get("reason") == "Unschedulable"
            and _since(cond, now) >= UNSCHEDULABLE_GRACE_S
        ):
            return "Unschedulable", f"Pod {name} cannot be scheduled: {cond.get('message') or ''}"
    statuses = list(status.get("initContainerStatuses") or []) + list(
        status.get("containerStatuses") or []
    )
    for cs in statuses:
        problem = container_problem(name, cs)
        if problem is not None:
            return problem
    return None


def _termination(terminated: Obj) -> str:
    reason = terminated.get("reason") or "Error"
    return f"{reason}, exit code {terminated.get('exitCode', '?')}"


def container_problem(pod_name: str, cs: Obj) -> tuple[str, str] | None:
    """(reason, message) of one container status: the image for pull errors, the restart
    count and last termination for crash loops; an OOM kill is named even while the container
    is backing off after it (a larger instance type is the fix, not the logs)."""
    who = f"Pod {pod_name} container {cs.get('name')}"
    state = cs.get("state") or {}
    waiting = state.get("waiting") or {}
    last = (cs.get("lastState") or {}).get("terminated") or {}
    terminated = state.get("terminated") or last
    restarts = int(cs.get("restartCount") or 0)
    if terminated.get("reason") == "OOMKilled":
        return (
            "ContainerOOMKilled",
            f"{who} ran out of memory (OOMKilled, exit code {terminated.get('exitCode', 137)}, "
            f"restarted {restarts} time(s))",
        )
    reason = _WAITING_REASONS.get(str(waiting.get("reason") or ""))
    if reason is None:
        return None
    detail = waiting.get("message") or waiting.get("reason")
    if reason == "ImagePullError":
        return reason, f"{who} cannot pull image {cs.get('image') or '?'}: {detail}"
    if reason == "ContainerCrashLoopBackOff":
        exit_ = f"; last exit: {_termination(last)}" if last else ""
        return reason, f"{who} is crash looping (restarted {restarts} time(s){exit_}): {detail}"
    return reason, f"{who}: {detail}"


def classify_pods(pods: list[Obj], now: dt.datetime | None = None) -> tuple[str, str] | None:
    """The first problem among the pods, in name order (stable messages)."""
    for pod in sorted(pods, key=objects.name):
        problem = pod_problem(pod, now)
        if problem is not None:
            return problem
    return None
