"""Object metadata and the small shared Kubernetes types our CRDs embed."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import Field

from kaito_common.api.base import KubeModel


class OwnerReference(KubeModel):
    api_version: str
    kind: str
    name: str
    uid: str
    controller: bool | None = None
    block_owner_deletion: bool | None = None


class ObjectMeta(KubeModel):
    """The parts of ``metav1.ObjectMeta`` we read or write; the server keeps the rest."""

    name: str | None = None
    generate_name: str | None = None
    namespace: str | None = None
    uid: str | None = None
    resource_version: str | None = None
    generation: int | None = None
    creation_timestamp: str | None = None
    deletion_timestamp: str | None = None
    labels: dict[str, str] | None = None
    annotations: dict[str, str] | None = None
    finalizers: list[str] | None = None
    owner_references: list[OwnerReference] | None = None


class LabelSelectorRequirement(KubeModel):
    key: str
    operator: Literal["In", "NotIn", "Exists", "DoesNotExist"]
    values: list[str] | None = None


class LabelSelector(KubeModel):
    match_labels: dict[str, str] | None = None
    match_expressions: list[LabelSelectorRequirement] | None = None


# Schemaless Kubernetes structures we pass through untouched (a PodTemplateSpec, a VolumeSource).
# The CRD generator marks them with x-kubernetes-preserve-unknown-fields.
Schemaless = dict[str, Any]


def schemaless(description: str) -> Any:
    """A field whose content Kubernetes validates elsewhere (pod template, volume source)."""
    return Field(
        default=None,
        description=description,
        json_schema_extra={"x-kubernetes-preserve-unknown-fields": True},
    )
