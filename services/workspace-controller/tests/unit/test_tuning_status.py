"""The tuning status from a Job and its pods, the trainer's progress, and the status it makes."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from wc_helpers.workspaces import tuning

from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.contracts.tuning_progress import (
    ETA_SECONDS_METRIC,
    STEP_METRIC,
    parse_progress_metrics,
)
from workspace_controller.status.compute import compute_status
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.tuning.progress import (
    TuningProgress,
    eta_from_rate,
    progress_from_metrics,
    progress_from_termination,
)
from workspace_controller.tuning.status import observe_job

Obj = dict[str, Any]
NOW = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)

METRICS = """# HELP kaito_tuning_step Optimizer steps done
# TYPE kaito_tuning_step gauge
kaito_tuning_step 12.0
kaito_tuning_total_steps 30.0
kaito_tuning_loss 2.4123
kaito_tuning_epoch 0.8
kaito_tuning_tokens_per_second 5234.0
python_info{implementation="CPython"} 1.0
"""


def job(*conditions: str, active: int = 0, failed: int = 0) -> Obj:
    return {
        "metadata": {"name": "ws", "namespace": "ns", "uid": "j1"},
        "status": {
            "active": active,
            "failed": failed,
            "conditions": [{"type": c, "status": "True", "reason": c} for c in conditions],
        },
    }


def pod(name: str, created: str, init: list[Obj], main: list[Obj]) -> Obj:
    return {
        "metadata": {"name": name, "creationTimestamp": created},
        "status": {"initContainerStatuses": init, "containerStatuses": main},
    }


def term(name: str, code: int, message: str = "", reason: str = "") -> Obj:
    state: Obj = {"exitCode": code, "reason": reason or ("Completed" if code == 0 else "Error")}
    if message:
        state["message"] = message
    return {"name": name, "state": {"terminated": state}}


def running(name: str) -> Obj:
    return {"name": name, "state": {"running": {"startedAt": "2026-01-01T00:00:00Z"}}}


def waiting(name: str, reason: str, message: str = "") -> Obj:
    return {"name": name, "state": {"waiting": {"reason": reason, "message": message}}}


def test_metrics_parse_and_eta_from_rate() -> None:
    samples = parse_progress_metrics(METRICS)
    assert samples[STEP_METRIC] == 12 and "python_info" not in samples
    progress = progress_from_metrics(samples, elapsed_s=60.0)
    assert progress.step == 12 and progress.total_steps == 30
    assert progress.eta_seconds == 90.0  # 5 s a step, 18 to go
    assert progress.describe() == "step 12 of 30, loss 2.412, about 90 s left"
    assert progress.to_status() == {
        "phase": "Training",
        "step": 12,
        "totalSteps": 30,
        "loss": 2.4123,
        "epoch": 0.8,
        "etaSeconds": 90,
        "tokensPerSecond": 5234.0,
    }
    exported = progress_from_metrics({**samples, ETA_SECONDS_METRIC: 7.0}, 60.0)
    assert exported.eta_seconds == 7.0, "the runner's own ETA wins when it exports one"
    assert eta_from_rate(0, 30, 60.0) is None and eta_from_rate(3, 30, None) is None


def test_termination_message_is_progress_or_not() -> None:
    final = {"phase": "Completed", "step": 30, "total_steps": 30, "loss": 0.5, "epoch": 3.0}
    progress = progress_from_termination(json.dumps(final))
    assert progress == TuningProgress("Completed", 30, 30, 0.5, 3.0)
    assert progress_from_termination("InvalidDataset: no rows") is None
    assert progress_from_termination("[1, 2]") is None


def test_failed_job_names_the_container_and_its_message() -> None:
    old = pod(
        "ws-a",
        "2026-01-01T00:00:00Z",
        [term("fetch", 0), term("trainer", 137, reason="OOMKilled")],
        [],
    )
    new = pod(
        "ws-b",
        "2026-01-01T00:05:00Z",
        [term("fetch", 0), term("trainer", 1, "InvalidDataset:  dolly.jsonl\n has no rows")],
        [waiting("pusher", "PodInitializing")],
    )
    view = observe_job(job("Failed", failed=2), [old, new])
    assert view.phase == "Failed"
    assert view.message == (
        "Container trainer exited with code 1: InvalidDataset: dolly.jsonl has no rows"
    )
    only_old = observe_job(job("Failed"), [old])
    assert only_old.message == "Container trainer exited with code 137: OOMKilled"
    no_pods = observe_job(
        {
            "status": {
                "conditions": [
                    {
                        "type": "Failed",
                        "status": "True",
                        "reason": "DeadlineExceeded",
                        "message": "Job was active longer than specified deadline",
                    }
                ]
            }
        },
        [],
    )
    assert no_pods.message == "DeadlineExceeded: Job was active longer than specified deadline"


def test_succeeded_job_carries_the_final_progress() -> None:
    final = json.dumps({"phase": "Completed", "step": 6, "total_steps": 6, "loss": 1.0})
    done = pod("ws-a", "t", [term("fetch", 0), term("trainer", 0, final)], [term("pusher", 0)])
    view = observe_job(job("Complete"), [done])
    assert view.phase == "Succeeded"
    assert view.final_progress is not None and view.final_progress.step == 6


def test_running_job_finds_the_training_pod_and_pod_problems() -> None:
    training = pod(
        "ws-a", "t", [term("fetch", 0), running("trainer")], [waiting("pusher", "PodInitializing")]
    )
    view = observe_job(job(active=1), [training])
    assert view.phase == "Running" and view.training_pod is training
    assert "container trainer is running" in view.message
    pulling = pod("ws-a", "t", [waiting("fetch", "ImagePullBackOff", "no such image")], [])
    view = observe_job(job(active=1), [pulling])
    assert view.problem_reason == "ImagePullError" and "no such image" in view.message
    assert view.training_pod is None
    assert observe_job(job(), []).phase == "Pending"


def test_tuning_status_summary_state_and_progress() -> None:
    ws = tuning()
    ws["metadata"]["generation"] = 2
    obs = Observations(is_inference=False)
    obs.set(C.RESOURCE_READY, Observed("True", "workspaceResourceStatusSuccess"))
    obs.set(C.JOB_STARTED, Observed("True", "WorkspaceTuningJobStatusStarted", "started"))
    obs.summary = Observed("False", "TuningInProgress", "Training: step 3 of 10")
    obs.state = "Running"
    obs.tuning_progress = {"phase": "Training", "step": 3, "totalSteps": 10}
    status = compute_status(ws, obs, NOW)
    summary = next(c for c in status["conditions"] if c["type"] == "WorkspaceSucceeded")
    assert (summary["status"], summary["reason"]) == ("False", "TuningInProgress")
    assert summary["observedGeneration"] == 2
    assert status["state"] == "Running"
    assert status["tuningProgress"] == {"phase": "Training", "step": 3, "totalSteps": 10}

    # Later: nothing said about progress keeps it; {} removes it (a new revision's Job).
    ws["status"] = status
    kept = compute_status(ws, Observations(is_inference=False), NOW)
    assert kept["tuningProgress"] == status["tuningProgress"]
    cleared = Observations(is_inference=False)
    cleared.set(C.JOB_STARTED, Observed("Unknown", "WaitingForResources"))
    cleared.tuning_progress = {}
    status = compute_status(ws, cleared, NOW)
    assert "tuningProgress" not in status
    assert status["state"] == "Pending", "tuning without a Job yet is Pending"
