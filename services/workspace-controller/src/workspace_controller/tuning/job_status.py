"""Where the tuning Job stands, from the Job and its pods: a pure function.

The failure message a person needs is the failed container's termination message (the runner
writes `<Reason>: <message>` there), not the Job's generic "backoff limit exceeded".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from workspace_controller.inference.readiness import classify_pods
from workspace_controller.manifests.tuning_plan import TRAINER_CONTAINER
from workspace_controller.tuning.progress import (
    TuningProgress,
    container_status,
    progress_from_termination,
)

Obj = dict[str, Any]
JobPhase = Literal["Pending", "Running", "Succeeded", "Failed"]


@dataclass(frozen=True)
class JobView:
    phase: JobPhase
    message: str
    problem_reason: str | None = None  # a pod problem while running (ImagePullError, ...)
    training_pod: Obj | None = None  # the pod whose trainer is running now
    final_progress: TuningProgress | None = None


def _condition(job: Obj, type_: str) -> Obj | None:
    for cond in (job.get("status") or {}).get("conditions") or []:
        if cond.get("type") == type_ and cond.get("status") == "True":
            return dict(cond)
    return None


def _newest_first(pods: list[Obj]) -> list[Obj]:
    return sorted(
        pods,
        key=lambda p: (
            str((p.get("metadata") or {}).get("creationTimestamp") or ""),
            str((p.get("metadata") or {}).get("name") or ""),
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
        if (pod.get("metadata") or {}).get("deletionTimestamp"):
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
    live = [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    for pod in _newest_first(live):
        for cs in _statuses(pod):
            if (cs.get("state") or {}).get("running"):
                return f"{text}; container {cs.get('name')} is running"
        break
    return text


def observe_job(job: Obj, pods: list[Obj]) -> JobView:
    if _condition(job, "Complete") is not None:
        progress = final_progress(pods)
        return JobView("Succeeded", "The tuning Job succeeded", final_progress=progress)
    failed = _condition(job, "Failed")
    if failed is not None:
        found = failed_container(pods)
        if found is not None:
            name, code, message = found
            text = f"Container {name} exited with code {code}: {message}"
        else:
            text = f"{failed.get('reason') or 'JobFailed'}: {failed.get('message') or ''}".strip()
        return JobView("Failed", text)
    problem = classify_pods(
        [p for p in pods if not (p.get("metadata") or {}).get("deletionTimestamp")]
    )
    training = _training_pod(pods)
    message = _active_message(job, pods)
    if problem is not None:
        reason, detail = problem
        return JobView("Running", f"{message}; {detail}", reason, training)
    phase: JobPhase = "Running" if int((job.get("status") or {}).get("active") or 0) else "Pending"
    return JobView(phase, message, None, training)
