"""The custom kinds that more than one service addresses: Workspace and NodeClaim.

The workspace controller writes NodeClaims and gpu-provisioner fulfils them; both read
Workspaces. Each side builds its API paths from these constants, so a version bump is one edit.
Importing this module does not pull in the Kubernetes client (the ML services import contracts).
"""

from __future__ import annotations

from kaito_common.api.labels import KAITO_GROUP, KARPENTER_GROUP
from kaito_common.api.nodeclaim import NODECLAIM_KIND, NODECLAIM_PLURAL, NODECLAIM_VERSION
from kaito_common.api.workspace import WORKSPACE_KIND, WORKSPACE_PLURAL, WORKSPACE_STORAGE_VERSION
from kaito_common.controller.kinds import Kind

__all__ = ["KAITO_GROUP", "KARPENTER_GROUP", "NODECLAIM", "WORKSPACE", "Kind"]

WORKSPACE = Kind(KAITO_GROUP, WORKSPACE_STORAGE_VERSION, WORKSPACE_PLURAL, WORKSPACE_KIND)
"""`workspaces.kaito.sh` at its storage version; namespaced."""

NODECLAIM = Kind(
    KARPENTER_GROUP, NODECLAIM_VERSION, NODECLAIM_PLURAL, NODECLAIM_KIND, namespaced=False
)
"""`nodeclaims.karpenter.sh/v1`; cluster-scoped."""
