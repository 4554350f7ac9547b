"""Garbage collection on delete: NodeClaims by label, then the finalizer.

Children with an ownerReference go by Kubernetes' garbage collector. NodeClaims are cluster
scoped and carry only labels, so the controller deletes them; when the NodeClaim API is not
installed at all (404), none can remain and the finalizer comes off: never stuck Terminating.
"""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api import labels as L
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_not_found

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
        claim_name = objects.name(claim)
        remaining.append(claim_name)
        if objects.is_deleting(claim):
            continue
        if await client.delete(NODECLAIM, claim_name):
            log.info(
                "Deleted NodeClaim namespace=%s workspace=%s nodeclaim=%s",
                namespace,
                name,
                claim_name,
            )
    return remaining
