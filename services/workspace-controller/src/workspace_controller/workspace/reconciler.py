"""`WorkspaceReconciler.reconcile(key)`: read the world, act, and report in status.

Never blocks waiting for the world: it returns `Result(requeue_after=...)` instead. Status is
computed by `compute_status` at the end of every reconcile, on every exit path, and written
only when it changed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from pydantic import ValidationError

from kaito_common.api import labels as L
from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.conditions import WorkspaceReason as R
from kaito_common.api.workspace import Workspace
from kaito_common.contracts.kinds import WORKSPACE
from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient
from kaito_common.controller.clock import utc_now
from kaito_common.controller.controller import Result
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.meta import add_finalizer, controller_reference, remove_finalizer
from kaito_common.controller.objects import Obj
from kaito_common.controller.status import patch_status_if_changed
from kaito_common.presets import Catalog, GPUSku, Preset
from kaito_common.presets.hub_model import HubModelSource
from workspace_controller.caches import Caches
from workspace_controller.inference.reconcile import InferenceReconciler, WorkloadInputs
from workspace_controller.inference.runtime import select_runtime
from workspace_controller.manifests.placement import node_affinity
from workspace_controller.nodes.assessment import NodeAssessment, NodeRequest, assess
from workspace_controller.nodes.provisioner import NodeClaimCreator, label_accelerator
from workspace_controller.presets_resolver import PresetError, PresetResolver
from workspace_controller.revision.sync import sync_revision
from workspace_controller.status.compute import compute_status
from workspace_controller.status.events import StatusEventRecorder
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.tuning.reconcile import TuningReconciler
from workspace_controller.webhook.sku_policy import unknown_sku_accepted
from workspace_controller.workspace.deletion import delete_nodeclaims

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReconcilerOptions:
    byo: bool
    nodes_requeue_s: float
    inference_requeue_s: float
    vllm_gate: bool = True
    tuning_requeue_s: float = 15.0
    deletion_requeue_s: float = 2.0


class SpecError(Exception):
    """The workspace asks for something this controller cannot provide (shown in status)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


class WorkspaceReconciler:
    def __init__(
        self,
        client: KubeClient,
        caches: Caches,
        catalog: Catalog,
        creator: NodeClaimCreator,
        inference: InferenceReconciler,
        tuning: TuningReconciler,
        events: EventRecorder,
        options: ReconcilerOptions,
        hub: HubModelSource | None = None,
    ) -> None:
        self._client = client
        self._caches = caches
        self._catalog = catalog
        self._presets = PresetResolver(catalog, hub, client)
        self._creator = creator
        self._inference = inference
        self._tuning = tuning
        self._events = events
        self._status_events = StatusEventRecorder(events)
        self._options = options

    async def reconcile(self, key: ObjectKey) -> Result | None:
        ws_obj = self._caches.workspaces.get(key)
        if ws_obj is None:
            return None
        if objects.is_deleting(ws_obj):
            return await self._finalize(key, ws_obj)
        obs = Observations()
        result: Result | None = None
        try:
            ws_obj = await add_finalizer(self._client, WORKSPACE, ws_obj, L.FINALIZER_WORKSPACE)
            result = await self._converge(key, ws_obj, obs)
        except SpecError as err:
            refused = Observed("False", err.reason, str(err))
            obs.set(C.WORKSPACE_SUCCEEDED, refused)
            obs.summary = refused  # the reason itself, not a summary of the other conditions
            await self._status_events.record(ws_obj, obs)
        except Exception as err:
            obs.error = str(err) or type(err).__name__
            await self._write_status(ws_obj, obs, quiet=True)
            raise
        await self._write_status(ws_obj, obs)
        return result

    async def _write_status(self, ws_obj: Obj, obs: Observations, *, quiet: bool = False) -> None:
        status = compute_status(ws_obj, obs, utc_now())
        try:
            await patch_status_if_changed(self._client, WORKSPACE, ws_obj, status, optimistic=False)
        except Exception as err:
            if not quiet:
                raise
            log.warning("Status not written workspace=%s error=%r", ws_obj["metadata"]["name"], err)

    async def _lookup(self, ws: Workspace, ws_obj: Obj) -> tuple[Preset | None, GPUSku | None]:
        sku = self._catalog.sku(ws.resource.instance_type) if ws.resource.instance_type else None
        known_or_accepted = sku is not None or unknown_sku_accepted(ws.resource.instance_type or "")
        if ws.resource.instance_type and not known_or_accepted and not self._options.byo:
            raise SpecError(
                "UnsupportedInstanceType",
                f"Unsupported instance type {ws.resource.instance_type}",
            )
        try:  # the catalog, or a Hugging Face repo id read from the hub
            preset = await self._presets.resolve(ws, ws_obj, sku)
        except PresetError as err:
            raise SpecError(err.reason, str(err)) from err
        return preset, sku

    def _runtime(self, ws: Workspace, preset: Preset | None) -> str:
        annotation = (ws.metadata.annotations or {}).get(L.ANNOTATION_RUNTIME)
        return select_runtime(annotation, preset, self._options.vllm_gate)

    async def _converge(self, key: ObjectKey, ws_obj: Obj, obs: Observations) -> Result | None:
        try:
            ws = Workspace.model_validate(ws_obj)
        except ValidationError as err:
            raise SpecError("InvalidWorkspace", f"The workspace is invalid: {err}") from err
        obs.is_inference = ws.tuning is None
        owner = controller_reference(ws_obj)
        revision = await sync_revision(self._client, self._caches.revisions, ws_obj, owner)
        ws_obj = revision.workspace
        preset, sku = await self._lookup(ws, ws_obj)
        obs.target_node_count = ws.resource.count
        if ws.tuning is not None and await self._tuning.report_if_finished(
            ws, ws_obj, revision.number, obs
        ):
            return None  # training is over: its nodes are no longer needed to report it

        nodes = await self._nodes(key, ws, ws_obj, preset, sku, obs)
        if nodes is None or not nodes.ready:
            waiting = Observed(
                "Unknown", "WaitingForResources", "Waiting for the nodes to be ready"
            )
            obs.set(C.INFERENCE_READY if obs.is_inference else C.JOB_STARTED, waiting)
            await self._status_events.record(ws_obj, obs)
            return Result(requeue_after=self._options.nodes_requeue_s)

        if ws.inference is not None:
            want = WorkloadInputs(
                preset=preset,
                sku=sku,
                runtime=self._runtime(ws, preset),
                revision=revision.number,
                provisioned=not self._options.byo and nodes.provisioned,
            )
            done = await self._inference.reconcile(ws, ws_obj, owner, want, obs)
            if not done:
                return Result(requeue_after=self._options.inference_requeue_s)
            return None
        done = await self._tuning.reconcile(
            ws,
            ws_obj,
            owner,
            preset=preset,
            sku=sku,
            revision=revision.number,
            provisioned=not self._options.byo and nodes.provisioned,
            obs=obs,
        )
        return None if done else Result(requeue_after=self._options.tuning_requeue_s)

    def _node_request(
        self, key: ObjectKey, ws: Workspace, ws_obj: Obj, preset: Preset | None, sku: GPUSku | None
    ) -> NodeRequest:
        affinity = node_affinity(ws, provisioned=False)  # the user's selector, less our keys
        return NodeRequest(
            workspace=key.name,
            namespace=key.namespace,
            target=ws.resource.count,
            instance_type=ws.resource.instance_type,
            match_labels=dict(affinity.match_labels),
            in_expressions=affinity.in_expressions,
            preferred=tuple(ws.resource.preferred_nodes or ()),
            previous=tuple((ws_obj.get("status") or {}).get("workerNodes") or ()),
            gpu_required=sku is not None or (preset is not None and preset.gpu_count > 0),
            provision=not self._options.byo,
        )

    async def _create_claims(
        self, key: ObjectKey, ws: Workspace, ws_obj: Obj, wanted: int, preset: Preset | None
    ) -> None:
        # Creates of an earlier reconcile are not in the cache yet: count them.
        count = max(0, wanted - len(self._creator.pending(key)))
        if not count:
            return
        try:
            await self._creator.create(ws, ws_obj, count, preset.disk_gib if preset else None)
        except Exception as err:
            await self._events.warning(
                ws_obj, "NodeClaimCreationFailed", f"Creating a NodeClaim failed: {err}"
            )
            raise

    async def _nodes(
        self,
        key: ObjectKey,
        ws: Workspace,
        ws_obj: Obj,
        preset: Preset | None,
        sku: GPUSku | None,
        obs: Observations,
    ) -> NodeAssessment | None:
        request = self._node_request(key, ws, ws_obj, preset, sku)
        claims_cache = self._caches.nodeclaims
        claims = claims_cache.list(labels={L.LABEL_WORKSPACE: key.name}) if claims_cache else []
        result = assess(
            self._caches.nodes.list(), claims, request, claims_api=claims_cache is not None
        )
        if result.to_create and claims_cache is not None:
            await self._create_claims(key, ws, ws_obj, result.to_create, preset)
        if result.needs_accelerator_label:
            await label_accelerator(self._client, result.needs_accelerator_label)
        observe_nodes(result, obs, provision=request.provision)
        return result

    async def _finalize(self, key: ObjectKey, ws_obj: Obj) -> Result | None:
        if L.FINALIZER_WORKSPACE not in (ws_obj["metadata"].get("finalizers") or []):
            return None
        obs = Observations(deleting=True)
        await self._write_status(ws_obj, obs, quiet=True)
        remaining = await delete_nodeclaims(self._client, key.namespace, key.name)
        if remaining:
            log.info(
                "Waiting for NodeClaims to go namespace=%s workspace=%s nodeclaims=%s",
                key.namespace,
                key.name,
                ",".join(remaining),
            )
            return Result(requeue_after=self._options.deletion_requeue_s)
        await remove_finalizer(self._client, WORKSPACE, ws_obj, L.FINALIZER_WORKSPACE)
        log.info("Removed finalizer namespace=%s workspace=%s", key.namespace, key.name)
        return None


def observe_nodes(result: NodeAssessment, obs: Observations, *, provision: bool) -> None:
    """NodeClaimReady (when provisioning), NodesReady and ResourceReady from the assessment."""
    if provision:
        obs.set(
            C.NODECLAIM_READY,
            Observed.of(result.claims_ready, result.claims_reason, result.claims_message),
        )
    obs.set(
        C.NODES_READY,
        Observed.of(result.nodes_ready, result.nodes_reason, result.nodes_message),
    )
    if result.ready:
        resource = Observed("True", R.RESOURCE_READY, result.nodes_message)
    else:
        reason = result.claims_reason if not result.claims_ready else result.nodes_reason
        parts = [result.nodes_message]
        if not result.claims_ready and result.claims_message not in result.nodes_message:
            parts.append(result.claims_message)
        resource = Observed("False", reason, "; ".join(p for p in parts if p))
    obs.set(C.RESOURCE_READY, resource)
    obs.worker_nodes = result.selected if result.ready else None
