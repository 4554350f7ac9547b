"""The NodeClaim lifecycle reconciler: finalizer, launch, registration, initialization, and
termination once the claim is deleted. One reconcile re-reads the claim and its Node from the
caches, advances every step it can, and writes the claim's metadata and status only when they
changed: at most one status write per reconcile.

The steps must not fight over the claim. A reconcile that follows a write of ours often runs
before the cache shows that write; working from the stale copy would make the conditional
status write fail with 409 Conflict. So the claim each write returned is kept (`WrittenClaims`)
and used until the cache catches up. Labels are merged without a resourceVersion (adding map
keys cannot undo anyone's change); the status write stays conditional. A conflict that still
happens (someone else wrote the claim) requeues the claim shortly instead of failing the
reconcile, and every Kubernetes API error is logged with its step, status code and reason."""

from __future__ import annotations

import logging

from kubernetes_asyncio.client.exceptions import ApiException

from gpu_provisioner import claims
from gpu_provisioner.claim_events import TERMINATING, ClaimEvent, launch_failed, step_events
from gpu_provisioner.cloud.provider import CloudProvider
from gpu_provisioner.conditions import INITIALIZED, LAUNCHED, READY, REGISTERED, ConditionSet
from gpu_provisioner.controllers.initialization import initialize
from gpu_provisioner.controllers.launch import Launcher
from gpu_provisioner.controllers.registration import register
from gpu_provisioner.controllers.termination import terminate
from gpu_provisioner.metrics import ProvisionerMetrics
from kaito_common.api.labels import FINALIZER_TERMINATION
from kaito_common.contracts.kinds import NODECLAIM
from kaito_common.controller import objects
from kaito_common.controller.apierrors import KubeApiError, api_step, as_kube_error
from kaito_common.controller.client import KubeClient
from kaito_common.controller.controller import Result
from kaito_common.controller.events import NORMAL, EventRecorder
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.meta import add_finalizer
from kaito_common.controller.objects import Obj
from kaito_common.controller.status import patch_status_if_changed
from kaito_common.controller.store import StoreReader

log = logging.getLogger(__name__)

BY_PROVIDER_ID = "providerID"
# A claim whose conditional write met a newer version is looked at again this soon (the watch
# event of that version usually wakes it first).
CONFLICT_REQUEUE_S = 0.1


def _rv(obj: Obj) -> str:
    return str(objects.meta(obj).get("resourceVersion") or "")


class WrittenClaims:
    """The claims this controller wrote, kept until the cache shows the write.

    resourceVersions are opaque, so they are never compared by order: a cached copy whose
    resourceVersion is one our writes replaced is stale, and the written claim is used instead;
    any other cached copy is at least as new as our write (the watch delivers versions in
    order), and the record is dropped."""

    def __init__(self) -> None:
        self._claims: dict[ObjectKey, tuple[frozenset[str], Obj]] = {}

    def wrote(self, key: ObjectKey, before: Obj, after: Obj) -> None:
        replaced, _ = self._claims.get(key, (frozenset(), after))
        self._claims[key] = (replaced | {_rv(before)}, after)

    def fresh(self, key: ObjectKey, cached: Obj) -> Obj:
        """The newest copy of the claim known: the cached one, or the one we wrote."""
        record = self._claims.get(key)
        if record is None:
            return cached
        replaced, written = record
        same_claim = objects.meta(cached).get("uid") == objects.meta(written).get("uid")
        if same_claim and _rv(cached) in replaced:
            return written
        del self._claims[key]
        return cached

    def forget(self, key: ObjectKey) -> None:
        self._claims.pop(key, None)

    def __len__(self) -> int:
        return len(self._claims)


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
        metrics: ProvisionerMetrics | None = None,
        events: EventRecorder | None = None,
    ) -> None:
        self._kube = kube
        self._cloud = cloud
        self._launcher = launcher
        self._claims = claim_store
        self._nodes = node_store
        self._poll_interval_s = poll_interval_s
        self._metrics = metrics
        self._written = WrittenClaims()
        self._events = events
        self._terminating: set[str] = set()  # claims whose Terminating Event was recorded

    async def _record(self, obj: Obj, event: ClaimEvent) -> None:
        if self._events is not None:
            await self._events.record(obj, event.type, event.reason, event.message)

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
        try:
            return await self._reconcile(key)
        except (ApiException, KubeApiError) as err:
            api_err = as_kube_error("reconcile", err)
            assert api_err is not None
            if self._metrics is not None:
                self._metrics.api_errors.labels(str(api_err.status), api_err.reason).inc()
            if api_err.is_conflict:
                # Not a failure: the claim (or its Node) changed under us; look again shortly.
                log.info(
                    "Write conflict; requeued nodeclaim=%s step=%s status=%d reason=%s message=%s",
                    key.name,
                    api_err.step,
                    api_err.status,
                    api_err.reason,
                    api_err.message,
                )
                return Result(requeue_after=CONFLICT_REQUEUE_S)
            log.warning(
                "Kubernetes API error nodeclaim=%s step=%s status=%d reason=%s message=%s",
                key.name,
                api_err.step,
                api_err.status,
                api_err.reason,
                api_err.message,
            )
            if api_err is err:
                raise
            raise api_err from err

    async def _reconcile(self, key: ObjectKey) -> Result | None:
        cached = self._claims.get(key)
        if cached is None or not claims.is_managed(cached):
            self._written.forget(key)
            if cached is None:
                self._terminating.discard(key.name)
            return None
        if objects.is_deleting(cached):
            self._written.forget(key)
            return await self._terminate(cached)
        claim = self._written.fresh(key, cached)
        before = claim
        claim = await api_step(
            "add finalizer", add_finalizer(self._kube, NODECLAIM, claim, FINALIZER_TERMINATION)
        )
        if claim is not before:
            self._written.wrote(key, before, claim)
        conditions = ConditionSet(
            (claim.get("status") or {}).get("conditions"),
            generation=objects.meta(claim).get("generation"),
            created=objects.created_at(claim),
        )
        status: Obj = {k: v for k, v in (claim.get("status") or {}).items()}
        before_conditions = list(status.get("conditions") or [])
        claim, requeue = await self._launch(claim, conditions, status)
        failure = self._launcher.take_failure(str(objects.meta(claim).get("uid")))
        if failure is not None:
            await self._record(claim, launch_failed(failure))
        if conditions.is_true(LAUNCHED) and not await self._join(claim, conditions, status):
            return None
        written = await self._write_status(claim, conditions, status)
        if written:
            for event in step_events(before_conditions, conditions.conditions, status):
                await self._record(claim, event)
        return Result(requeue_after=requeue) if requeue is not None else None

    async def _terminate(self, claim: Obj) -> Result | None:
        name = objects.name(claim)
        if name not in self._terminating and FINALIZER_TERMINATION in (
            objects.meta(claim).get("finalizers") or []
        ):
            self._terminating.add(name)
            nodes = ", ".join(objects.name(n) for n in self._nodes_of(claim)) or "none"
            message = f"Deleting the NodeClaim: draining node(s) {nodes}, deleting the instance"
            await self._record(claim, ClaimEvent(NORMAL, TERMINATING, message))
        return await terminate(
            self._kube,
            self._cloud,
            self._launcher,
            claim,
            self._nodes_of(claim),
            self._poll_interval_s,
            events=self._events,
        )

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
            # A merge patch adding label keys replaces nothing: no resourceVersion needed.
            body = {"metadata": {"labels": new_labels}}
            patched = await api_step(
                "label nodeclaim", self._kube.patch(NODECLAIM, str(meta["name"]), body)
            )
            self._written.wrote(ObjectKey.of(claim), claim, patched)
            claim = patched
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
            await api_step("delete nodeclaim", self._kube.delete(NODECLAIM, name))
            return False
        registered: Obj | None = None
        if not conditions.is_true(REGISTERED):
            registered = await register(self._kube, claim, nodes, conditions, status)
        if conditions.is_true(REGISTERED) and not conditions.is_true(INITIALIZED):
            # The Node as registration wrote it when it just did (the cache lags behind).
            node = registered or self._nodes.get(ObjectKey("", str(status.get("nodeName"))))
            await initialize(self._kube, claim, node, conditions)
        return True

    async def _write_status(self, claim: Obj, conditions: ConditionSet, status: Obj) -> bool:
        """Write the status when it changed; whether it was written."""
        status["conditions"] = conditions.conditions
        was_ready = ConditionSet(
            (claim.get("status") or {}).get("conditions"), generation=None, created=None
        ).is_true(READY)
        written = await api_step(
            "write nodeclaim status", patch_status_if_changed(self._kube, NODECLAIM, claim, status)
        )
        if written is not None:
            self._written.wrote(ObjectKey.of(claim), claim, written)
        if written is not None and conditions.is_true(READY) and not was_ready:
            log.info(
                "NodeClaim is ready nodeclaim=%s node=%s",
                objects.name(claim),
                status.get("nodeName"),
            )
        return written is not None
