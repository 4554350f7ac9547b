"""`compute_status(workspace, observations, now)`: the new `.status`, a pure function.

Conditions keep their order and their lastTransitionTime while their status is unchanged, so a
converged workspace computes a status equal to the one it has, and nothing is written.
"""

from __future__ import annotations

import copy
import datetime as dt

from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.conditions import WorkspaceReason as R
from kaito_common.api.conditions import WorkspaceState
from kaito_common.controller.conditions import get_condition, set_condition
from kaito_common.controller.objects import Obj
from workspace_controller.status.observations import Observations, Observed


def _summary(conditions: list[Obj], obs: Observations) -> Observed:
    resource = get_condition(conditions, C.RESOURCE_READY)
    work_type = C.INFERENCE_READY if obs.is_inference else C.JOB_STARTED
    work = get_condition(conditions, work_type)
    blocking = [c for c in (resource, work) if c is None or c.get("status") != "True"]
    if not blocking:
        return Observed("True", R.SUCCEEDED, "Workspace is ready")
    first = blocking[0]
    if first is None:
        return Observed("Unknown", R.PENDING, "Waiting for the first reconcile")
    reason = R.FAILED if first.get("status") == "False" else R.PENDING
    return Observed("False", reason, f"{first.get('type')}: {first.get('message') or ''}")


def _state(succeeded: bool, resource_ready: bool) -> str:
    if succeeded:
        return WorkspaceState.READY.value
    return WorkspaceState.NOT_READY.value if resource_ready else WorkspaceState.PENDING.value


def compute_status(workspace: Obj, obs: Observations, now: dt.datetime) -> Obj:
    status: Obj = copy.deepcopy(workspace.get("status") or {})
    generation = (workspace.get("metadata") or {}).get("generation")
    conditions: list[Obj] = list(status.get("conditions") or [])

    def put(type_: str, observed: Observed) -> None:
        nonlocal conditions
        message = observed.message
        if obs.error and observed.status != "True":
            message = f"{message} (last reconcile error: {obs.error})".strip()
        conditions = set_condition(
            conditions,
            type_,
            observed.status,
            observed.reason,
            message,
            observed_generation=generation,
            now=now,
        )

    for type_, observed in obs.conditions.items():
        put(type_, observed)
    if obs.deleting:
        put(C.WORKSPACE_DELETING, Observed("True", "WorkspaceDeleting", "Deleting the workspace"))
    elif obs.error and not obs.conditions:
        # Failed before observing anything: say so on the summary instead of staying silent.
        put(C.WORKSPACE_SUCCEEDED, Observed("False", "ReconcileError", "Reconcile failed"))
    if not obs.deleting and obs.conditions:
        put(C.WORKSPACE_SUCCEEDED, obs.summary or _summary(conditions, obs))
    status["conditions"] = conditions
    if obs.target_node_count is not None:
        status["targetNodeCount"] = obs.target_node_count
    if obs.worker_nodes is not None:
        if obs.worker_nodes:
            status["workerNodes"] = list(obs.worker_nodes)
        else:
            status.pop("workerNodes", None)
    if obs.tuning_progress is not None:
        if obs.tuning_progress:
            status["tuningProgress"] = dict(obs.tuning_progress)
        else:
            status.pop("tuningProgress", None)
    if obs.deleting:
        return status
    if obs.state is not None:
        status["state"] = obs.state
    elif obs.is_inference:
        succeeded = get_condition(conditions, C.WORKSPACE_SUCCEEDED) or {}
        resource = get_condition(conditions, C.RESOURCE_READY) or {}
        status["state"] = _state(
            succeeded.get("status") == "True", resource.get("status") == "True"
        )
    elif obs.conditions:
        status["state"] = WorkspaceState.PENDING.value
    return status
