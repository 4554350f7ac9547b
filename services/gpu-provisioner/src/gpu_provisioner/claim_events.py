"""The Events a person reads in `kubectl describe nodeclaim`: one per lifecycle step.

`Launched`, `Registered` and `Initialized` are recorded when that condition turns True (a pure
diff of the conditions before and after a reconcile, so a claim reconciled again and again says
each once); `LaunchFailed` once per failed create, with the cloud's own text, so that the
Event's count is the number of attempts; `Terminating` when the claim's deletion starts,
`Deleted` when it is done and on each Node the provisioner deletes; `NodeRepair` and
`InstanceNotFound` (Warnings) when the provisioner deletes a claim on its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from gpu_provisioner.cloud.provider import CloudError
from gpu_provisioner.conditions import INITIALIZED, LAUNCHED, REGISTERED
from kaito_common.controller.conditions import Condition, get_condition
from kaito_common.controller.events import NORMAL, WARNING
from kaito_common.controller.objects import Obj

LAUNCH_FAILED = "LaunchFailed"
TERMINATING = "Terminating"
DELETED = "Deleted"
NODE_REPAIR = "NodeRepair"
INSTANCE_NOT_FOUND = "InstanceNotFound"


@dataclass(frozen=True)
class ClaimEvent:
    type: str
    reason: str
    message: str


def _became_true(before: list[Condition], after: list[Condition], type_: str) -> bool:
    old = get_condition(before, type_) or {}
    new = get_condition(after, type_) or {}
    return new.get("status") == "True" and old.get("status") != "True"


def step_events(before: list[Condition], after: list[Condition], status: Obj) -> list[ClaimEvent]:
    """The steps this reconcile completed, from the conditions before and after it. Pure."""
    found: list[ClaimEvent] = []
    if _became_true(before, after, LAUNCHED):
        gpus = (status.get("capacity") or {}).get("nvidia.com/gpu")
        detail = f", {gpus} GPU(s)" if gpus else ""
        found.append(
            ClaimEvent(NORMAL, LAUNCHED, f"Launched instance {status.get('providerID')}{detail}")
        )
    node = status.get("nodeName")
    if _became_true(before, after, REGISTERED):
        found.append(ClaimEvent(NORMAL, REGISTERED, f"Registered node {node}"))
    if _became_true(before, after, INITIALIZED):
        found.append(
            ClaimEvent(
                NORMAL,
                INITIALIZED,
                f"Initialized node {node}: Ready, with every requested resource allocatable",
            )
        )
    return found


def launch_failed(err: CloudError) -> ClaimEvent:
    """A failed create, in the cloud's words; whether it is retried."""
    if err.retryable:
        return ClaimEvent(
            WARNING, LAUNCH_FAILED, f"Launching the instance failed, retrying: {err.message}"
        )
    return ClaimEvent(
        WARNING,
        LAUNCH_FAILED,
        f"Launching the instance failed and will not be retried ({err.reason}): {err.message}",
    )
