"""``metav1.Condition`` and the condition types, reasons and states of our CRDs."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, Literal

from pydantic import Field

from kaito_common.api.base import KubeModel

ConditionStatus = Literal["True", "False", "Unknown"]


_TYPE_PATTERN = (
    r"^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*/)?"
    r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])$"
)


class Condition(KubeModel):
    """``metav1.Condition``: the standard shape of one observation about an object."""

    type: str = Field(pattern=_TYPE_PATTERN, max_length=316)
    status: ConditionStatus
    observed_generation: int | None = Field(default=None, ge=0)
    last_transition_time: str = Field(json_schema_extra={"format": "date-time"})
    reason: str = Field(
        pattern=r"^[A-Za-z]([A-Za-z0-9_,:]*[A-Za-z0-9_])?$", min_length=1, max_length=1024
    )
    message: str = Field(default="", max_length=32768)


def conditions_field() -> Any:
    """A ``conditions`` list, declared as a map keyed by ``type`` (as Kubernetes lists do)."""
    return Field(
        default=None,
        json_schema_extra={"x-kubernetes-list-type": "map", "x-kubernetes-list-map-keys": ["type"]},
    )


class WorkspaceConditionType(StrEnum):
    RESOURCE_READY = "ResourceReady"
    NODECLAIM_READY = "NodeClaimReady"
    NODES_READY = "NodesReady"
    INFERENCE_READY = "InferenceReady"
    JOB_STARTED = "JobStarted"
    WORKSPACE_SUCCEEDED = "WorkspaceSucceeded"
    WORKSPACE_DELETING = "WorkspaceDeleting"


class WorkspaceReason(StrEnum):
    """Condition reasons upstream Kaito uses, kept so that its users' alerts and scripts match.

    Where upstream has none, or ours says more (why a pod is not ready, why a Job failed), the
    reason is ours (docs/troubleshooting.md lists them all)."""

    RESOURCE_READY = "workspaceResourceStatusSuccess"
    INFERENCE_READY = "WorkspaceInferenceStatusSuccess"
    INFERENCE_PENDING = "WorkspaceInferenceStatusPending"
    TUNING_STARTED = "WorkspaceTuningJobStatusStarted"
    SUCCEEDED = "workspaceSucceeded"
    PENDING = "workspacePending"
    FAILED = "workspaceFailed"


class WorkspaceState(StrEnum):
    PENDING = "Pending"
    READY = "Ready"
    NOT_READY = "NotReady"
    RUNNING = "Running"
    SUCCEEDED = "Succeeded"
    FAILED = "Failed"


class NodeClaimConditionType(StrEnum):
    READY = "Ready"
    LAUNCHED = "Launched"
    REGISTERED = "Registered"
    INITIALIZED = "Initialized"


NODECLAIM_DEPENDENT_CONDITIONS: tuple[NodeClaimConditionType, ...] = (
    NodeClaimConditionType.LAUNCHED,
    NodeClaimConditionType.REGISTERED,
    NodeClaimConditionType.INITIALIZED,
)


def find_condition(conditions: list[Condition] | None, type_: str) -> Condition | None:
    """The condition of that type, or None."""
    for condition in conditions or ():
        if condition.type == type_:
            return condition
    return None


def is_true(conditions: list[Condition] | None, type_: str) -> bool:
    condition = find_condition(conditions, type_)
    return condition is not None and condition.status == "True"
