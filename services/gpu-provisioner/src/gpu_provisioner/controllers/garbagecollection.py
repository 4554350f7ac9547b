"""Garbage collection, every few minutes while leading:

- instances the cloud lists as ours whose claim no longer exists (and that are older than a
  grace period, so a create racing its claim's first cache update is spared) are deleted, with
  any Node left behind;
- registered claims whose instance vanished from the cloud and whose Node is not Ready are
  deleted (their termination then cleans up).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

from kubernetes_asyncio.client.exceptions import ApiException

from gpu_provisioner import claims
from gpu_provisioner.claim_events import DELETED, INSTANCE_NOT_FOUND
from gpu_provisioner.cloud.provider import CloudProvider, Instance
from gpu_provisioner.conditions import REGISTERED
from gpu_provisioner.controllers.initialization import node_ready
from gpu_provisioner.controllers.lifecycle import BY_PROVIDER_ID
from kaito_common.api.labels import FINALIZER_TERMINATION
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_not_found
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import NODE, ObjectKey
from kaito_common.controller.meta import remove_finalizer
from kaito_common.controller.objects import Obj
from kaito_common.controller.store import StoreReader

log = logging.getLogger(__name__)

PARALLELISM = 20


def _registered(claim: Obj) -> bool:
    for cond in (claim.get("status") or {}).get("conditions") or []:
        if cond.get("type") == REGISTERED:
            return bool(cond.get("status") == "True")
    return False


class GarbageCollector:
    def __init__(
        self,
        kube: KubeClient,
        cloud: CloudProvider,
        claim_store: StoreReader,
        node_store: StoreReader,
        *,
        interval_s: float = 120.0,
        grace_s: float = 30.0,
        events: EventRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._cloud = cloud
        self._claims = claim_store
        self._nodes = node_store
        self.interval_s = interval_s
        self.grace_s = grace_s
        self._events = events
        self._slots = asyncio.Semaphore(PARALLELISM)

    async def run(self) -> None:
        """Collect every `interval_s` until cancelled; a failed round is logged and retried."""
        while True:
            try:
                await self.collect_once()
            except asyncio.CancelledError:
                raise
            except Exception as err:
                log.warning("Garbage collection failed error=%r", err)
            await asyncio.sleep(self.interval_s)

    async def collect_once(self) -> tuple[list[str], list[str]]:
        """One round; returns (instances deleted, claims deleted)."""
        instances = await self._cloud.list()
        live_names = {str(objects.meta(c).get("name")) for c in self._claims.list()}
        now = dt.datetime.now(dt.UTC)
        leaked = [
            i
            for i in instances
            if i.name not in live_names
            and not i.deleting
            and (i.created_at is None or (now - i.created_at).total_seconds() >= self.grace_s)
        ]
        deleted = [
            n for n in await asyncio.gather(*(self._collect_instance(i) for i in leaked)) if n
        ]
        instance_names = {i.name for i in instances}
        orphaned = [
            c
            for c in self._claims.list()
            if claims.is_managed(c)
            and not objects.is_deleting(c)
            and _registered(c)
            and str(objects.meta(c).get("name")) not in instance_names
            and not self._node_ready(c)
        ]
        removed: list[str] = []
        for claim in orphaned:
            name = str(objects.meta(claim)["name"])
            # The cache may lag the cloud: confirm the instance is really gone.
            if await self._cloud.get(name) is None:
                if self._events is not None:
                    await self._events.warning(
                        claim,
                        INSTANCE_NOT_FOUND,
                        "The cloud instance is gone and the node is not Ready; deleting the "
                        "NodeClaim so that a new node is requested",
                    )
                await self._kube.delete(NODECLAIM, name)
                log.info("Deleted nodeclaim whose instance is gone nodeclaim=%s", name)
                removed.append(name)
        return deleted, removed

    def _node_ready(self, claim: Obj) -> bool:
        nodes = (
            self._nodes.by_index(BY_PROVIDER_ID, claims.provider_id(claim))
            if claims.provider_id(claim)
            else []
        )
        return any(node_ready(n) for n in nodes)

    async def _collect_instance(self, instance: Instance) -> str | None:
        async with self._slots:
            # The cache may lag: a claim created a moment ago must not lose its instance.
            if await self._kube.get_or_none(NODECLAIM, instance.name) is not None:
                return None
            log.info("Deleting leaked instance instance=%s", instance.name)
            await self._cloud.delete(instance.name)
            nodes = (
                self._nodes.by_index(BY_PROVIDER_ID, instance.provider_id)
                if instance.provider_id
                else []
            )
            named = self._nodes.get(ObjectKey("", instance.name))
            if named is not None and named not in nodes:
                nodes.append(named)
            for node in nodes:
                if (
                    instance.provider_id
                    and (node.get("spec") or {}).get("providerID") != instance.provider_id
                ):
                    continue
                await self._release_node(node)
            return instance.name

    async def _release_node(self, node: Obj) -> None:
        name = str(objects.meta(node)["name"])
        if self._events is not None and not objects.is_deleting(node):
            message = f"Deleting node {name}: its cloud instance had no NodeClaim and was deleted"
            await self._events.normal(node, DELETED, message)
        try:
            await self._kube.delete(NODE, name)
            await remove_finalizer(self._kube, NODE, node, FINALIZER_TERMINATION)
        except ApiException as err:
            if not is_not_found(err):
                raise
        log.info("Deleted node of leaked instance node=%s", name)
