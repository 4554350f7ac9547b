"""The NodeClaim lifecycle reconciler: finalizer, launch, registration, initialization, and
termination once the claim is deleted. One reconcile re-reads the claim and its Node from the
caches, advances every step it can, and writes the claim's metadata and status only when they
changed."""

from __future__ import annotations

import logging

from gpu_provisioner import claims
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.conditions import INITIALIZED, LAUNCHED, READY, REGISTERED, ConditionSet
from gpu_provisioner.controllers.initialization import initialize
from gpu_provisioner.controllers.launch import Launcher
from gpu_provisioner.controllers.registration import register
from gpu_provisioner.controllers.termination import terminate
from kaito_common.api.labels import FINALIZER_TERMINATION
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.controller import Result
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.meta import add_finalizer
from kaito_common.controller.objects import Obj
from kaito_common.controller.status import patch_status_if_changed
from kaito_common.controller.store import StoreReader

log = logging.getLogger(__name__)

BY_PROVIDER_ID = "providerID"


def claim_provider_ids(claim: Obj) -> list[str]:
    pid = claims.provider_id(claim)
    return [pid] if pid else []


def node_provider_ids(node: Obj) -> list[str]:
    pid = str((node.get("spec") or {}).get("providerID") or "")
    return [pid] if pid else []


class LifecycleReconciler:
    def __init__(
        self,
        kube: KubeClient,
        cloud: CloudProvider,
        launcher: Launcher,
        claim_store: StoreReader,
        node_store: StoreReader,
        *,
        poll_interval_s: float = 2.0,
    ) -> None:
        self._kube = kube
        self._cloud = cloud
        self._launcher = launcher
        self._claims = claim_store
        self._nodes = node_store
        self._poll_interval_s = poll_interval_s

    def claims_for_node(self, node: Obj) -> list[ObjectKey]:
        """Map a Node event to the claims it concerns (by providerID or ownerReference)."""
        keys = {
            ObjectKey.of(c)
            for pid in node_provider_ids(node)
            for c in self._claims.by_index(BY_PROVIDER_ID, pid)
        }
        for ref in objects.meta(node).get("ownerReferences") or []:
            if NODECLAIM.matches(ref):
                keys.add(ObjectKey("", str(ref.get("name"))))
        return sorted(keys)

    def _nodes_of(self, claim: Obj) -> list[Obj]:
        found: dict[str, Obj] = {}
        for pid in claim_provider_ids(claim):
            for node in self._nodes.by_index(BY_PROVIDER_ID, pid):
                found[str(objects.meta(node)["name"])] = node
        node_name = (claim.get("status") or {}).get("nodeName")
        if node_name and node_name not in found:
            named = self._nodes.get(ObjectKey("", str(node_name)))
            if named is not None and node_provider_ids(named) == claim_provider_ids(claim):
                found[str(node_name)] = named
        return list(found.values())

    async def reconcile(self, key: ObjectKey) -> Result | None:
        claim = self._claims.get(key)
        if claim is None or not claims.is_managed(claim):
            return None
        if objects.is_deleting(claim):
            return await terminate(
                self._kube,
                self._cloud,
                self._launcher,
                claim,
                self._nodes_of(claim),
                self._poll_interval_s,
            )
        claim = await add_finalizer(self._kube, NODECLAIM, claim, FINALIZER_TERMINATION)
        conditions = ConditionSet(
            (claim.get("status") or {}).get("conditions"),
            generation=objects.meta(claim).get("generation"),
            created=objects.created_at(claim),
        )
        status: Obj = {k: v for k, v in (claim.get("status") or {}).items()}
        claim, requeue = await self._launch(claim, conditions, status)
        if conditions.is_true(LAUNCHED) and not await self._join(claim, conditions, status):
            return None
        await self._write_status(claim, conditions, status)
        return Result(requeue_after=requeue) if requeue is not None else None

    async def _launch(
        self, claim: Obj, conditions: ConditionSet, status: Obj
    ) -> tuple[Obj, float | None]:
        """Advance the launch; when it finished, label the claim and record the instance.
        Returns the claim (patched when labelled) and when to look again."""
        outcome, requeue = self._launcher.reconcile(claim, conditions)
        if outcome is None:
            return claim, requeue
        meta = objects.meta(claim)
        found = objects.labels(claim)
        new_labels = {k: v for k, v in outcome.labels.items() if found.get(k) != v}
        if new_labels:
            body = {"metadata": {"labels": new_labels, "resourceVersion": meta["resourceVersion"]}}
            claim = await self._kube.patch(NODECLAIM, str(meta["name"]), body)
        status.update(outcome.status)
        conditions.set_true(LAUNCHED)
        return claim, requeue

    async def _join(self, claim: Obj, conditions: ConditionSet, status: Obj) -> bool:
        """Registration and initialization of a launched claim's Node. False when the Node is
        being deleted, and the claim with it."""
        nodes = self._nodes_of({**claim, "status": status})
        if any(objects.is_deleting(n) for n in nodes):
            # Someone deleted the Node: the claim goes with it (Karpenter's node termination).
            name = objects.name(claim)
            log.info("Deleting nodeclaim whose node is being deleted nodeclaim=%s", name)
            await self._kube.delete(NODECLAIM, name)
            return False
        if not conditions.is_true(REGISTERED):
            await register(self._kube, claim, nodes, conditions, status)
        if conditions.is_true(REGISTERED) and not conditions.is_true(INITIALIZED):
            node = self._nodes.get(ObjectKey("", str(status.get("nodeName"))))
            await initialize(self._kube, claim, node, conditions)
        return True

    async def _write_status(self, claim: Obj, conditions: ConditionSet, status: Obj) -> None:
        status["conditions"] = conditions.conditions
        was_ready = ConditionSet(
            (claim.get("status") or {}).get("conditions"), generation=None, created=None
        ).is_true(READY)
        written = await patch_status_if_changed(self._kube, NODECLAIM, claim, status)
        if written is not None and conditions.is_true(READY) and not was_ready:
            log.info(
                "NodeClaim is ready nodeclaim=%s node=%s",
                objects.name(claim),
                status.get("nodeName"),
            )
