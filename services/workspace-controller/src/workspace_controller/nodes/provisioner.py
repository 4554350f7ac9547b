"""Acting on a node assessment: create the missing NodeClaims (never twice) and label GPU nodes.

Expectations guard the creates: a NodeClaim this process created but the informer has not yet
delivered is still counted, so a lagging watch never leads to a second create.
"""

from __future__ import annotations

import logging
import secrets

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api import labels as L
from kaito_common.api.workspace import Workspace
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_conflict
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.expectations import Expectations
from kaito_common.controller.kinds import NODE, ObjectKey
from kaito_common.controller.objects import Obj
from workspace_controller.manifests.nodeclaim import (
    NodeClassRef,
    nodeclaim_manifest,
    nodeclaim_name,
)

log = logging.getLogger(__name__)

_CREATE_ATTEMPTS = 5


class NodeClaimCreator:
    def __init__(
        self,
        client: KubeClient,
        expectations: Expectations,
        events: EventRecorder,
        node_class: NodeClassRef,
    ) -> None:
        self._client = client
        self._expectations = expectations
        self._events = events
        self._node_class = node_class

    def pending(self, key: ObjectKey) -> frozenset[str]:
        """NodeClaims created for `key` that the cache has not shown yet."""
        return self._expectations.pending(key)[0]

    def observed(self, claim: Obj) -> None:
        """Informer hook: a NodeClaim of some workspace appeared in the cache."""
        found = objects.labels(claim)
        ws, ns = found.get(L.LABEL_WORKSPACE), found.get(L.LABEL_WORKSPACE_NAMESPACE)
        if ws and ns:
            self._expectations.creation_observed(ObjectKey(ns, ws), objects.name(claim))

    async def create(
        self, ws: Workspace, ws_obj: Obj, count: int, disk_gib: int | None
    ) -> list[str]:
        key = ObjectKey(ws.metadata.namespace or "", ws.metadata.name or "")
        created: list[str] = []
        for _ in range(count):
            name = await self._create_one(ws, key, disk_gib)
            created.append(name)
            await self._events.normal(
                ws_obj,
                "NodeClaimCreated",
                f"Created NodeClaim {name} for {ws.resource.instance_type}",
            )
        return created

    async def _create_one(self, ws: Workspace, key: ObjectKey, disk_gib: int | None) -> str:
        for _ in range(_CREATE_ATTEMPTS):
            name = nodeclaim_name(key.namespace, key.name, secrets.token_hex(8))
            manifest = nodeclaim_manifest(ws, name, self._node_class, disk_gib)
            # Expect before the request: the watch may deliver the object before we return.
            self._expectations.expect_creations(key, [name])
            try:
                await self._client.create(NODECLAIM, manifest)
            except ApiException as err:
                self._expectations.creation_observed(key, name)
                if is_conflict(err):
                    continue  # name taken: draw another nonce
                raise
            log.info(
                "Created NodeClaim namespace=%s workspace=%s nodeclaim=%s instanceType=%s",
                key.namespace,
                key.name,
                name,
                ws.resource.instance_type,
            )
            return name
        raise RuntimeError(f"no free NodeClaim name after {_CREATE_ATTEMPTS} attempts")


async def label_accelerator(client: KubeClient, node_names: list[str]) -> None:
    """Add `accelerator=nvidia` to GPU nodes that lack it (Kaito's node plugin check)."""
    for name in node_names:
        body = {"metadata": {"labels": {L.LABEL_ACCELERATOR: L.ACCELERATOR_NVIDIA}}}
        await client.patch(NODE, name, body)
        log.info(
            "Labelled node node=%s label=%s=%s", name, L.LABEL_ACCELERATOR, L.ACCELERATOR_NVIDIA
        )
