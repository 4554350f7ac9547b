"""Node repair: a claim's Node that stays NotReady (Ready False or Unknown) for the configured
time gets its claim deleted, so that whoever asked for the node can ask again."""

from __future__ import annotations

import datetime as dt
import logging

from gpu_provisioner import claims
from gpu_provisioner.claim_events import NODE_REPAIR
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.clock import parse_time
from kaito_common.controller.controller import Result
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.objects import Obj
from kaito_common.controller.store import StoreReader

log = logging.getLogger(__name__)


def owning_claim(node: Obj) -> str | None:
    for ref in objects.meta(node).get("ownerReferences") or []:
        if NODECLAIM.matches(ref):
            return str(ref.get("name"))
    return None


def unhealthy_since(node: Obj) -> dt.datetime | None:
    """When the Node's Ready condition left True, or None while it is Ready (or has none yet)."""
    for cond in (node.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            if cond.get("status") == "True":
                return None
            stamp = cond.get("lastTransitionTime")
            return parse_time(stamp) if stamp else None
    return None


class NodeRepair:
    def __init__(
        self,
        kube: KubeClient,
        claim_store: StoreReader,
        node_store: StoreReader,
        *,
        after_s: float = 600.0,
        events: EventRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._claims = claim_store
        self._nodes = node_store
        self.after_s = after_s
        self._events = events

    async def reconcile(self, key: ObjectKey) -> Result | None:
        node = self._nodes.get(key)
        if node is None or objects.is_deleting(node):
            return None
        claim_name = owning_claim(node)
        if claim_name is None:
            return None
        claim = self._claims.get(ObjectKey("", claim_name))
        if claim is None or objects.is_deleting(claim) or not claims.is_managed(claim):
            return None
        since = unhealthy_since(node)
        if since is None:
            return None
        unhealthy_s = (dt.datetime.now(dt.UTC) - since).total_seconds()
        if unhealthy_s < self.after_s:
            return Result(requeue_after=self.after_s - unhealthy_s)
        log.warning(
            "Deleting nodeclaim of an unhealthy node nodeclaim=%s node=%s notReadyFor=%.0fs",
            claim_name,
            key.name,
            unhealthy_s,
        )
        if self._events is not None:
            message = (
                f"Node {key.name} has not been Ready for {unhealthy_s:.0f} s; deleting NodeClaim "
                f"{claim_name} so that a new node is requested"
            )
            await self._events.warning(claim, NODE_REPAIR, message)
            await self._events.warning(node, NODE_REPAIR, message)
        await self._kube.delete(NODECLAIM, claim_name)
        return None
