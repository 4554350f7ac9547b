"""Where the tuning Job stands, from the Job and its pods: a pure function.

The failure message a person needs is the failed container's termination message (the runner
writes `<Reason>: <message>` there), not the Job's generic "backoff limit exceeded".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj
from workspace_controller.status.pods import classify_pods
from workspace_controller.tuning.plan import TRAINER_CONTAINER
from workspace_controller.tuning.progress import (
    TuningProgress,
    container_status,
    progress_from_termination,
)

JobPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobView:
    phase: JobPhase
    message: str
    problem_reason: str | None = None  # a pod problem while running (ImagePullError, ...)
    training_pod: Obj | None = None  # the pod whose trainer is running now
    final_progress: TuningProgress | None = None


def _newest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(
        pods,
        key=lambda p: (
            str((p.get("metadata") or {}).get("creationTimestamp") or ""),
            objects.name(p),
        ),
        reverse=True,
    )


def _statuses(pod: Obj) -> list[Obj]:
    status = pod.get("status") or {}
    return [*(status.get("initContainerStatuses") or []), *(status.get("containerStatuses") or [])]


def failed_container(pods: list[Obj]) -> tuple[str, int, str] | None:
    """(container, exit code, message) of the newest pod's failed container."""
    for pod in _newest_first(pods):
        for cs in _statuses(pod):
            terminated = (cs.get("state") or {}).get("terminated") or {}
            code = int(terminated.get("exitCode") or 0)
            if terminated and code != 0:
                message = " ".join(str(terminated.get("message") or "").split())
                if not message:
                    message = str(terminated.get("reason") or "Error")
                return str(cs.get("name")), code, message
    return None


def final_progress(pods: list[Obj]) -> TuningProgress | None:
    for pod in _newest_first(pods):
        cs = container_status(pod, TRAINER_CONTAINER) or {}
        terminated = (cs.get("state") or {}).get("terminated") or {}
        if terminated and int(terminated.get("exitCode") or 0) == 0:
            progress = progress_from_termination(str(terminated.get("message") or ""))
            if progress is not None:
                return progress
    return None


def _training_pod(pods: list[Obj]) -> Obj | None:
    for pod in _newest_first(pods):
        if objects.is_deleting(pod):
            continue
        cs = container_status(pod, TRAINER_CONTAINER) or {}
        if (cs.get("state") or {}).get("running"):
            return pod
    return None


def _active_message(job: Obj, pods: list[Obj]) -> str:
    status = job.get("status") or {}
    active, ready = int(status.get("active") or 0), int(status.get("ready") or 0)
    failed = int(status.get("failed") or 0)
    text = f"The tuning Job has {active} active pod(s), {ready} ready"
    if failed:
        text += f", {failed} failed and retried"
    live = [p for p in pods if not objects.is_deleting(p)]
    for pod in _newest_first(live):
        for cs in _statuses(pod):
            if (cs.get("state") or {}).get("running"):
                return f"{text}; container {cs.get('name')} is running"
        break
    return text


def _failure_message(job: Obj, pods: list[Obj]) -> str:
    found = failed_container(pods)
    if found is not None:
        name, code, message = found
        return f"Container {name} exited with code {code}: {message}"
    failed = objects.condition(job, "Failed") or {}
    return f"{failed.get('reason') or 'JobFailed'}: {failed.get('message') or ''}".strip()


def observe_job(job: Obj, pods: list[Obj]) -> JobView:
    if objects.condition_true(job, "Complete"):
        progress = final_progress(pods)
        return JobView("Succeeded", "The tuning Job succeeded", final_progress=progress)
    if objects.condition_true(job, "Failed"):
        return JobView("Failed", _failure_message(job, pods))
    problem = classify_pods([p for p in pods if not objects.is_deleting(p)])
    training = _training_pod(pods)
    message = _active_message(job, pods)
    if problem is not None:
        reason, detail = problem
        return JobView("Running", f"{message}; {detail}", reason, training)
    phase: JobPhase = "Running" if int((job.get("status") or {}).get("active") or 0) else "Pending"
    return JobView(phase, message, None, training)
