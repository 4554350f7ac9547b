"""CustomResourceDefinition documents for our resources, built from the pydantic models."""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel

from kaito_common.api import NodeClaim, Workspace
from kaito_common.api.conditions import NodeClaimConditionType, WorkspaceConditionType
from kaito_common.api.labels import (
    LABEL_CAPACITY_TYPE,
    LABEL_INSTANCE_TYPE,
    LABEL_NODEPOOL,
    LABEL_ZONE,
)
from kaito_common.api.nodeclaim import NODECLAIM_VERSION
from kaito_common.api.workspace import (
    V1ALPHA1_DEFAULT_INSTANCE_TYPE,
    WORKSPACE_STORAGE_VERSION,
    WORKSPACE_VERSIONS,
)
from kaito_common.crdgen.schema import JSONSchema, structural_schema


@dataclass(frozen=True)
class PrinterColumn:
    name: str
    json_path: str
    type: str = "string"
    priority: int = 0

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"name": self.name, "type": self.type, "jsonPath": self.json_path}
        if self.priority:
            out["priority"] = self.priority
        return out


@dataclass(frozen=True)
class CRDDefinition:
    model: type[BaseModel]
    group: str
    kind: str
    plural: str
    singular: str
    scope: str
    versions: tuple[str, ...]
    storage_version: str
    short_names: tuple[str, ...] = ()
    categories: tuple[str, ...] = ()
    printer_columns: tuple[PrinterColumn, ...] = ()
    status_subresource: bool = True
    annotations: dict[str, str] = field(default_factory=dict)
    # Schema defaults that only one version carries: version -> (property path, value).
    version_defaults: dict[str, tuple[tuple[tuple[str, ...], Any], ...]] = field(
        default_factory=dict
    )
    # Columns that only one version shows, before the last common column (Age): version -> cols.
    version_columns: dict[str, tuple[PrinterColumn, ...]] = field(default_factory=dict)

    def columns(self, version: str) -> tuple[PrinterColumn, ...]:
        extra = self.version_columns.get(version, ())
        if not extra or not self.printer_columns:
            return self.printer_columns + extra
        shown = [c for c in self.printer_columns if not c.priority]
        last = self.printer_columns.index(shown[-1]) if shown else len(self.printer_columns)
        return self.printer_columns[:last] + extra + self.printer_columns[last:]

    @property
    def name(self) -> str:
        return f"{self.plural}.{self.group}"

    @property
    def file_name(self) -> str:
        return f"{self.group}_{self.plural}.yaml"


def _condition_column(type_: str) -> PrinterColumn:
    name = str(type_)
    return PrinterColumn(name, f'.status.conditions[?(@.type=="{name}")].status')


def _label_path(key: str) -> str:
    return ".metadata.labels." + key.replace(".", "\\.")


_AGE = PrinterColumn("Age", ".metadata.creationTimestamp", type="date")

WORKSPACE_CRD = CRDDefinition(
    model=Workspace,
    group=Workspace.GROUP,
    kind=Workspace.KIND,
    plural=Workspace.PLURAL,
    singular="workspace",
    scope="Namespaced",
    versions=WORKSPACE_VERSIONS,
    storage_version=WORKSPACE_STORAGE_VERSION,
    short_names=("wk", "wks"),
    categories=("kaito",),
    printer_columns=(
        PrinterColumn("Instance", ".resource.instanceType"),
        _condition_column(WorkspaceConditionType.RESOURCE_READY),
        _condition_column(WorkspaceConditionType.INFERENCE_READY),
        _condition_column(WorkspaceConditionType.JOB_STARTED),
        _condition_column(WorkspaceConditionType.WORKSPACE_SUCCEEDED),
        _AGE,
    ),
    # As upstream: v1beta1 adds these two.
    version_columns={
        "v1beta1": (
            PrinterColumn("TargetNodeCount", ".status.targetNodeCount", type="integer"),
            PrinterColumn("State", ".status.state"),
        ),
    },
    # As upstream's v1alpha1 (a kubebuilder default on that version only).
    version_defaults={
        "v1alpha1": ((("resource", "instanceType"), V1ALPHA1_DEFAULT_INSTANCE_TYPE),),
    },
)

NODECLAIM_CRD = CRDDefinition(
    model=NodeClaim,
    group=NodeClaim.GROUP,
    kind=NodeClaim.KIND,
    plural=NodeClaim.PLURAL,
    singular="nodeclaim",
    scope="Cluster",
    versions=(NODECLAIM_VERSION,),
    storage_version=NODECLAIM_VERSION,
    categories=("karpenter",),
    printer_columns=(
        PrinterColumn("Type", _label_path(LABEL_INSTANCE_TYPE)),
        PrinterColumn("Capacity", _label_path(LABEL_CAPACITY_TYPE)),
        PrinterColumn("Zone", _label_path(LABEL_ZONE)),
        PrinterColumn("Node", ".status.nodeName"),
        _condition_column(NodeClaimConditionType.READY),
        _AGE,
        PrinterColumn("ID", ".status.providerID", priority=1),
        PrinterColumn("NodePool", _label_path(LABEL_NODEPOOL), priority=1),
        PrinterColumn("NodeClass", ".spec.nodeClassRef.name", priority=1),
    ),
)

ALL_CRDS: tuple[CRDDefinition, ...] = (WORKSPACE_CRD, NODECLAIM_CRD)


def openapi_schema(definition: CRDDefinition) -> JSONSchema:
    """The version schema: the model's structural schema with Kubernetes' envelope fields."""
    schema = structural_schema(definition.model)
    props = schema["properties"]
    props["apiVersion"] = {
        "description": "The versioned schema of this representation of an object.",
        "type": "string",
    }
    props["kind"] = {
        "description": "The REST resource this object represents.",
        "type": "string",
    }
    props["metadata"] = {"type": "object"}
    required = [
        r for r in schema.get("required", []) if r not in ("apiVersion", "kind", "metadata")
    ]
    if required:
        schema["required"] = required
    else:
        schema.pop("required", None)
    return schema


def _with_defaults(
    schema: JSONSchema, defaults: tuple[tuple[tuple[str, ...], Any], ...]
) -> JSONSchema:
    """A copy of ``schema`` with ``default`` set at each property path."""
    out = copy.deepcopy(schema)
    for path, value in defaults:
        node = out
        for key in path:
            node = node["properties"][key]
        node["default"] = value
    return out


def crd_document(definition: CRDDefinition) -> dict[str, Any]:
    """The CustomResourceDefinition object for ``definition``."""
    schema = openapi_schema(definition)
    names: dict[str, Any] = {
        "kind": definition.kind,
        "listKind": f"{definition.kind}List",
        "plural": definition.plural,
        "singular": definition.singular,
    }
    if definition.short_names:
        names["shortNames"] = list(definition.short_names)
    if definition.categories:
        names["categories"] = list(definition.categories)
    versions = []
    for version in definition.versions:
        entry: dict[str, Any] = {
            "name": version,
            "served": True,
            "storage": version == definition.storage_version,
            "schema": {
                "openAPIV3Schema": _with_defaults(
                    schema, definition.version_defaults.get(version, ())
                )
            },
        }
        if columns := definition.columns(version):
            entry["additionalPrinterColumns"] = [c.to_dict() for c in columns]
        if definition.status_subresource:
            entry["subresources"] = {"status": {}}
        versions.append(entry)
    metadata: dict[str, Any] = {"name": definition.name}
    if definition.annotations:
        metadata["annotations"] = dict(definition.annotations)
    spec: dict[str, Any] = {
        "group": definition.group,
        "names": names,
        "scope": definition.scope,
        "versions": versions,
    }
    if len(definition.versions) > 1:
        # Same fields in every version (defaults aside): the API server converts by rewriting
        # apiVersion only.
        spec["conversion"] = {"strategy": "None"}
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": metadata,
        "spec": spec,
    }
