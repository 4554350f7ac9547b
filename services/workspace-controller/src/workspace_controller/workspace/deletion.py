"""Garbage collection on delete: NodeClaims by label, then the finalizer.

Children with an ownerReference go by Kubernetes' garbage collector. NodeClaims are cluster
scoped and carry only labels, so the controller deletes them; when the NodeClaim API is not
installed at all (404), none can remain and the finalizer comes off: never stuck Terminating.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api import labels as L
from kaito_common.controller.client import KubeClient, is_not_found
from kaito_common.controller.kinds import Obj
from workspace_controller.kinds import NODECLAIM

log = logging.getLogger(__name__)


async def delete_nodeclaims(client: KubeClient, namespace: str, name: str) -> list[str]:
    """Delete this workspace's NodeClaims; returns the names that still exist."""
    selector = f"{L.LABEL_WORKSPACE}={name},{L.LABEL_WORKSPACE_NAMESPACE}={namespace}"
    try:
        claims = await client.list_all(NODECLAIM, label_selector=selector)
    except ApiException as err:
        if is_not_found(err):
            log.info(
                "NodeClaim API not installed; none to delete namespace=%s workspace=%s",
                namespace,
                name,
            )
            return []
        raise
    remaining: list[str] = []
    for claim in claims:
        meta: Obj = claim.get("metadata") or {}
        claim_name = str(meta.get("name"))
        remaining.append(claim_name)
        if meta.get("deletionTimestamp"):
            continue
        if await client.delete(NODECLAIM, claim_name):
            log.info(
                "Deleted NodeClaim namespace=%s workspace=%s nodeclaim=%s",
                namespace,
                name,
                claim_name,
            )
    return remaining
