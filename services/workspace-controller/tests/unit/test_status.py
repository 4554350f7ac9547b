"""The status is a pure function; a converged workspace computes the status it already has."""

from __future__ import annotations

import datetime as dt

from wc_helpers.workspaces import phi3

from kaito_common.api.conditions import WorkspaceConditionType as C
from workspace_controller.status.compute import compute_status
from workspace_controller.status.observations import Observations, Observed

T0 = dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
T1 = T0 + dt.timedelta(minutes=5)


def _ready_obs() -> Observations:
    obs = Observations(target_node_count=1, worker_nodes=["n1"])
    obs.set(C.RESOURCE_READY, Observed("True", "workspaceResourceStatusSuccess", "1 node(s) ready"))
    obs.set(C.INFERENCE_READY, Observed("True", "WorkspaceInferenceStatusSuccess", "1 of 1 ready"))
    return obs


def test_ready_workspace() -> None:
    status = compute_status(phi3(), _ready_obs(), T0)
    types = {c["type"]: c for c in status["conditions"]}
    assert types["WorkspaceSucceeded"]["status"] == "True"
    assert status["state"] == "Ready" and status["workerNodes"] == ["n1"]
    assert all(c["observedGeneration"] == 1 for c in status["conditions"])


def test_second_computation_is_equal() -> None:
    ws = phi3()
    ws["status"] = compute_status(ws, _ready_obs(), T0)
    assert compute_status(ws, _ready_obs(), T1) == ws["status"]


def test_waiting_states_say_why_and_errors_are_appended() -> None:
    obs = Observations(target_node_count=1)
    obs.set(C.RESOURCE_READY, Observed("False", "NodesNotReady", "0 of 1 Ready node(s)"))
    obs.set(C.INFERENCE_READY, Observed("Unknown", "WaitingForResources", "Waiting for nodes"))
    obs.error = "boom"
    status = compute_status(phi3(), obs, T0)
    succeeded = next(c for c in status["conditions"] if c["type"] == "WorkspaceSucceeded")
    assert succeeded["status"] == "False"
    assert "0 of 1 Ready node(s)" in succeeded["message"]
    assert "(last reconcile error: boom)" in succeeded["message"]
    assert status["state"] == "Pending"


def test_deleting() -> None:
    status = compute_status(phi3(), Observations(deleting=True), T0)
    assert status["conditions"][0]["type"] == "WorkspaceDeleting"
