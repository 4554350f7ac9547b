"""Pydantic types of the custom resources we own (Workspace) or use (NodeClaim)."""

from kaito_common.api.conditions import (
    Condition,
    NodeClaimConditionType,
    WorkspaceConditionType,
    WorkspaceState,
)
from kaito_common.api.meta import LabelSelector, ObjectMeta
from kaito_common.api.nodeclaim import NodeClaim, NodeClaimSpec, NodeClaimStatus
from kaito_common.api.workspace import (
    AdapterSpec,
    DataDestination,
    DataSource,
    InferenceSpec,
    PresetSpec,
    ResourceSpec,
    TuningSpec,
    Workspace,
    WorkspaceStatus,
)

__all__ = [
    "AdapterSpec",
    "Condition",
    "DataDestination",
    "DataSource",
    "InferenceSpec",
    "LabelSelector",
    "NodeClaim",
    "NodeClaimConditionType",
    "NodeClaimSpec",
    "NodeClaimStatus",
    "ObjectMeta",
    "PresetSpec",
    "ResourceSpec",
    "TuningSpec",
    "Workspace",
    "WorkspaceConditionType",
    "WorkspaceState",
    "WorkspaceStatus",
]
