"""The NodeClaim (`karpenter.sh/v1`) a workspace asks for, one per missing node."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from typing import Any

from kaito_common.api import labels as L
from kaito_common.api.nodeclaim import NODECLAIM_VERSION
from kaito_common.api.workspace import Workspace

DEFAULT_STORAGE = "1024Gi"
NODECLAIM_NAME_PREFIX = "ws"


@dataclass(frozen=True)
class NodeClassRef:
    group: str = L.KAITO_GROUP
    kind: str = "KaitoNodeClass"
    name: str = "default"


def nodeclaim_name(namespace: str, name: str, nonce: str) -> str:
    """`ws` + 9 hex chars: 11 characters, also a valid AKS agent pool name."""
    digest = hashlib.sha256(f"{namespace}/{name}/{nonce}".encode()).hexdigest()
    return NODECLAIM_NAME_PREFIX + digest[:9]


def workspace_labels(ws: Workspace) -> dict[str, str]:
    """The labels that tie a NodeClaim (and the Node it becomes) to its workspace."""
    return {
        L.LABEL_WORKSPACE: ws.metadata.name or "",
        L.LABEL_WORKSPACE_NAMESPACE: ws.metadata.namespace or "",
    }


def user_match_labels(ws: Workspace) -> dict[str, str]:
    """The selector's matchLabels without the keys the controller owns."""
    match = ws.resource.label_selector.match_labels or {}
    return {k: v for k, v in match.items() if k not in L.RESERVED_SELECTOR_KEYS}


def nodeclaim_manifest(
    ws: Workspace, name: str, node_class: NodeClassRef, disk_gib: int | None
) -> dict[str, Any]:
    sku = ws.resource.instance_type or ""
    labels = {L.LABEL_NODEPOOL: L.KAITO_NODEPOOL, **user_match_labels(ws), **workspace_labels(ws)}
    annotations = {L.ANNOTATION_DO_NOT_DISRUPT: "true"}
    family = (ws.metadata.annotations or {}).get(L.ANNOTATION_NODE_IMAGE_FAMILY)
    if family:
        annotations[L.ANNOTATION_NODE_IMAGE_FAMILY] = family
    return {
        "apiVersion": f"{L.KARPENTER_GROUP}/{NODECLAIM_VERSION}",
        "kind": "NodeClaim",
        "metadata": {"name": name, "labels": labels, "annotations": annotations},
        "spec": {
            "nodeClassRef": {
                "group": node_class.group,
                "kind": node_class.kind,
                "name": node_class.name,
            },
            "taints": [
                {"key": L.TAINT_SKU_KEY, "value": L.TAINT_SKU_VALUE, "effect": "NoSchedule"}
            ],
            "requirements": [
                {"key": L.LABEL_NODEPOOL, "operator": "In", "values": [L.KAITO_NODEPOOL]},
                {"key": L.LABEL_INSTANCE_TYPE, "operator": "In", "values": [sku]},
                {"key": L.LABEL_OS, "operator": "In", "values": ["linux"]},
                {"key": L.LABEL_AZURE_SKU_NAME, "operator": "In", "values": [sku]},
            ],
            "resources": {
                "requests": {"storage": f"{disk_gib}Gi" if disk_gib else DEFAULT_STORAGE}
            },
            # Karpenter core deletes a claim once expireAfter (CRD default 720h) has passed;
            # a workspace's nodes must live as long as the workspace.
            "expireAfter": "Never",
        },
    }
