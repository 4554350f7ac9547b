"""Which status changes become Events, and the pod problems' messages they carry."""

from __future__ import annotations

import datetime as dt

from wc_helpers.workspaces import phi3

from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.controller.events import EventRecorder
from workspace_controller.status.compute import compute_status
from workspace_controller.status.events import StatusEventRecorder, WorkspaceEvent, status_events
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.status.pods import pod_problem

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)


def _status(*observed: tuple[C, Observed]) -> dict[str, object]:
    obs = Observations(target_node_count=1)
    for type_, value in observed:
        obs.set(type_, value)
    return compute_status(phi3(), obs, T0)


NODES_READY = (
    C.RESOURCE_READY,
    Observed("True", "workspaceResourceStatusSuccess", "1 node(s) ready"),
)
PULL = Observed("False", "ImagePullError", "0 of 1 ready; Pod p container c cannot pull image x")


def test_a_ready_inference_workspace_tells_each_step_once() -> None:
    pending = _status(
        NODES_READY,
        (C.INFERENCE_READY, Observed("False", "WorkspaceInferenceStatusPending", "waiting")),
    )
    assert status_events({}, pending) == [
        WorkspaceEvent("Normal", "ResourcesReady", "1 node(s) ready")
    ]
    ready = _status(
        NODES_READY,
        (C.INFERENCE_READY, Observed("True", "WorkspaceInferenceStatusSuccess", "1 of 1")),
    )
    assert status_events(pending, ready) == [
        WorkspaceEvent("Normal", "InferenceReady", "1 of 1"),
        WorkspaceEvent("Normal", "WorkspaceSucceeded", "Workspace is ready"),
    ]
    assert status_events(ready, ready) == []  # reconciled again: nothing new


def test_a_failure_is_one_warning_until_its_reason_changes() -> None:
    failing = _status(NODES_READY, (C.INFERENCE_READY, PULL))
    events = status_events({}, failing)
    assert WorkspaceEvent("Warning", "ImagePullError", PULL.message) in events
    # The same failure with another message (a retry's detail): no new Event.
    again = _status(
        NODES_READY, (C.INFERENCE_READY, Observed("False", "ImagePullError", "other detail"))
    )
    assert status_events(failing, again) == []
    oom = _status(
        NODES_READY, (C.INFERENCE_READY, Observed("False", "ContainerOOMKilled", "out of memory"))
    )
    assert status_events(again, oom) == [
        WorkspaceEvent("Warning", "ContainerOOMKilled", "out of memory")
    ]


def test_a_failed_job_on_two_conditions_is_one_event() -> None:
    failed = Observed("False", "TuningJobFailed", "Container trainer exited with code 1: X: y")
    obs = Observations(is_inference=False, summary=failed)
    obs.set(*NODES_READY)
    obs.set(C.JOB_STARTED, failed)
    status = compute_status(phi3(), obs, T0)
    warnings = [e for e in status_events({}, status) if e.type == "Warning"]
    assert warnings == [WorkspaceEvent("Warning", "TuningJobFailed", failed.message)]


def _pod(container: dict[str, object]) -> dict[str, object]:
    return {"metadata": {"name": "p"}, "status": {"containerStatuses": [container]}}


def test_pod_problems_name_the_image_restarts_and_last_exit() -> None:
    pull = _pod(
        {
            "name": "server",
            "image": "example.com/missing:1",
            "restartCount": 0,
            "state": {"waiting": {"reason": "ErrImagePull", "message": "not found"}},
        }
    )
    assert pod_problem(pull) == (
        "ImagePullError",
        "Pod p container server cannot pull image example.com/missing:1: not found",
    )
    crash = _pod(
        {
            "name": "server",
            "restartCount": 4,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off 1m20s"}},
            "lastState": {"terminated": {"reason": "Error", "exitCode": 2}},
        }
    )
    assert pod_problem(crash) == (
        "ContainerCrashLoopBackOff",
        "Pod p container server is crash looping (restarted 4 time(s); last exit: Error, "
        "exit code 2): back-off 1m20s",
    )
    oom_loop = _pod(
        {
            "name": "server",
            "restartCount": 3,
            "state": {"waiting": {"reason": "CrashLoopBackOff", "message": "back-off"}},
            "lastState": {"terminated": {"reason": "OOMKilled", "exitCode": 137}},
        }
    )
    assert pod_problem(oom_loop) == (
        "ContainerOOMKilled",
        "Pod p container server ran out of memory (OOMKilled, exit code 137, restarted 3 time(s))",
    )


class ListRecorder(EventRecorder):
    """Keeps the Events instead of writing them."""

    def __init__(self) -> None:
        self.recorded: list[tuple[str, str]] = []

    async def record(self, obj: dict[str, object], type_: str, reason: str, message: str) -> None:
        self.recorded.append((type_, reason))


async def test_a_cache_that_lags_behind_the_status_write_says_nothing_twice() -> None:
    recorder = ListRecorder()
    events = StatusEventRecorder(recorder)
    ws = phi3()
    ws["metadata"].update(uid="u1", resourceVersion="10")
    obs = Observations(target_node_count=1)
    obs.set(*NODES_READY)
    obs.set(C.INFERENCE_READY, PULL)
    await events.record(ws, obs, T0)
    await events.record(ws, obs, T0)  # the cache still shows resourceVersion 10
    assert recorder.recorded == [("Normal", "ResourcesReady"), ("Warning", "ImagePullError")]
    # A newer version without the status write (a label patch landed before it): nothing again.
    ws["metadata"]["resourceVersion"] = "11"
    await events.record(ws, obs, T0)
    assert len(recorder.recorded) == 2
    # The written status shows up: nothing new.
    ws["metadata"]["resourceVersion"] = "12"
    ws["status"] = compute_status(ws, obs, T0)
    await events.record(ws, obs, T0)
    assert len(recorder.recorded) == 2
    # A new process (a restart, a new leader) starts from the stored status: nothing new either.
    fresh = ListRecorder()
    await StatusEventRecorder(fresh).record(ws, obs, T0)
    assert fresh.recorded == []


def test_a_pod_is_unschedulable_only_after_the_schedulers_retries() -> None:
    """A node that just joined can make the scheduler miss it once: not a problem to report
    until the pod has stayed unschedulable for UNSCHEDULABLE_GRACE_S."""
    import datetime as dt

    from workspace_controller.status.pods import UNSCHEDULABLE_GRACE_S, classify_pods

    now = dt.datetime(2026, 12, 7, 12, 0, tzinfo=dt.UTC)

    def pod(seconds_ago: float) -> dict[str, object]:
        changed = (now - dt.timedelta(seconds=seconds_ago)).isoformat().replace("+00:00", "Z")
        condition = {
            "type": "PodScheduled",
            "status": "False",
            "reason": "Unschedulable",
            "message": "0/1 nodes are available: 1 Insufficient nvidia.com/gpu.",
            "lastTransitionTime": changed,
        }
        return {"metadata": {"name": "p"}, "status": {"conditions": [condition]}}

    assert classify_pods([pod(2)], now) is None
    problem = classify_pods([pod(UNSCHEDULABLE_GRACE_S + 1)], now)
    assert problem is not None and problem[0] == "Unschedulable"
    assert "Insufficient nvidia.com/gpu" in problem[1]
