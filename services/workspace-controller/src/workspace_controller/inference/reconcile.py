"""Converge the inference children of a workspace whose nodes are ready."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kaito_common.api import labels as L
from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.workspace import Workspace
from kaito_common.controller.apply import apply_if_changed
from kaito_common.controller.client import KubeClient
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import (
    CONFIG_MAP,
    DEPLOYMENT,
    POD,
    SERVICE,
    STATEFUL_SET,
    Kind,
    ObjectKey,
)
from kaito_common.controller.objects import Obj
from kaito_common.presets import GPUSku, Preset
from workspace_controller.caches import Caches
from workspace_controller.inference.plan import inference_plan
from workspace_controller.inference.readiness import workload_readiness
from workspace_controller.inference.service import headless_service_manifest, service_manifest
from workspace_controller.inference.workload import (
    deployment_manifest,
    statefulset_manifest,
    template_deployment_manifest,
)
from workspace_controller.kinds import FIELD_MANAGER
from workspace_controller.manifests.configmap import (
    DEFAULT_INFERENCE_TEMPLATE,
    inference_params_copy,
)
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import ModelWeights, WeightsSourceError
from workspace_controller.manifests.placement import node_affinity
from workspace_controller.status.events import StatusEventRecorder
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.status.pods import classify_pods
from workspace_controller.weights_cache import ensure_weights_claim

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class InferenceOptions:
    images: ImageSettings
    release_namespace: str


@dataclass(frozen=True)
class WorkloadInputs:
    """What the workspace reconciler resolved for this pass."""

    preset: Preset | None  # None: the user's own pod template
    sku: GPUSku | None
    runtime: str
    revision: int
    provisioned: bool  # the controller made the nodes (pin the pods to them)


class InferenceReconciler:
    def __init__(
        self,
        client: KubeClient,
        caches: Caches,
        events: EventRecorder,
        options: InferenceOptions,
    ) -> None:
        self._client = client
        self._caches = caches
        self._events = events
        self._status_events = StatusEventRecorder(events)
        self._options = options

    async def _apply(self, kind: Kind, manifest: Obj, live: Obj | None) -> Obj | None:
        return await apply_if_changed(self._client, kind, manifest, live, FIELD_MANAGER)

    async def _config_map(self, ws: Workspace, owner: Obj) -> str | None:
        assert ws.inference is not None
        if ws.inference.config:
            return ws.inference.config
        template = self._caches.templates.get(
            ObjectKey(self._options.release_namespace, DEFAULT_INFERENCE_TEMPLATE)
        )
        if template is None:
            return None  # no chart defaults installed: the server runs with its own defaults
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        manifest = inference_params_copy(name, namespace, owner, template)
        live = self._caches.configmaps.get(ObjectKey(namespace, manifest["metadata"]["name"]))
        await self._apply(CONFIG_MAP, manifest, live)
        return str(manifest["metadata"]["name"])

    async def _services(self, ws: Workspace, owner: Obj, multi_node: bool) -> None:
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        load_balancer = (ws.metadata.annotations or {}).get(L.ANNOTATION_ENABLE_LB) == "True"
        service = service_manifest(
            name, namespace, owner, load_balancer=load_balancer, stateful=multi_node
        )
        await self._apply(SERVICE, service, self._caches.services.get(ObjectKey(namespace, name)))
        if multi_node:
            headless = headless_service_manifest(name, namespace, owner)
            live = self._caches.services.get(ObjectKey(namespace, headless["metadata"]["name"]))
            await self._apply(SERVICE, headless, live)

    def _workload(
        self, ws: Workspace, owner: Obj, want: WorkloadInputs, config_map: str | None
    ) -> tuple[Kind, Obj, ModelWeights | None]:
        """(kind, manifest, weights) of the workload: the preset's Deployment or StatefulSet, or
        a Deployment of the user's template (no weights of ours)."""
        assert ws.inference is not None
        revision = str(want.revision)
        if want.preset is None:
            manifest = template_deployment_manifest(
                ws.metadata.name or "",
                ws.metadata.namespace or "",
                owner,
                ws.inference.template or {},
                replicas=ws.resource.count,
                revision=revision,
                affinity=node_affinity(ws, want.provisioned),
            )
            return DEPLOYMENT, manifest, None
        plan = inference_plan(
            ws,
            want.preset,
            want.sku,
            runtime=want.runtime,
            revision=revision,
            images=self._options.images,
            config_map=config_map,
            provisioned=want.provisioned,
        )
        if want.preset.multi_node:
            return STATEFUL_SET, statefulset_manifest(plan, owner), plan.weights
        return DEPLOYMENT, deployment_manifest(plan, owner), plan.weights

    async def _apply_workload(self, ws_obj: Obj, kind: Kind, manifest: Obj, revision: int) -> Obj:
        """Apply the workload; the object as the API server has it (or as wanted)."""
        name, namespace = manifest["metadata"]["name"], manifest["metadata"]["namespace"]
        cache = self._caches.statefulsets if kind is STATEFUL_SET else self._caches.deployments
        live = cache.get(ObjectKey(namespace, name))
        applied = await self._apply(kind, manifest, live)
        if applied is not None:
            verb = "Created" if live is None else "Updated"
            log.info(
                "%s %s namespace=%s workspace=%s revision=%d",
                verb,
                kind.kind,
                namespace,
                name,
                revision,
            )
            await self._events.normal(
                ws_obj, f"Workload{verb}", f"{verb} {kind.kind} {name} at revision {revision}"
            )
        return applied or live or manifest

    async def _observe(self, ws: Workspace, workload: Obj, obs: Observations) -> bool:
        """Set InferenceReady from the workload and, while it is not serving, its pods."""
        readiness = workload_readiness(workload)
        if readiness.serving:
            reason = "InferenceReady" if readiness.rolled_out else "RolloutInProgress"
            obs.set(C.INFERENCE_READY, Observed("True", reason, readiness.message))
            return readiness.rolled_out
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        pods = await self._client.list_all(
            POD, namespace, label_selector=f"{L.LABEL_WORKSPACE}={name}"
        )
        problem = classify_pods(pods)
        if problem is not None:
            reason, message = problem
            obs.set(C.INFERENCE_READY, Observed("False", reason, f"{readiness.message}; {message}"))
        else:
            obs.set(
                C.INFERENCE_READY,
                Observed("False", "InferencePending", f"{readiness.message}; waiting for pods"),
            )
        return False

    async def reconcile(
        self, ws: Workspace, ws_obj: Obj, owner: Obj, want: WorkloadInputs, obs: Observations
    ) -> bool:
        """Apply the children and observe readiness; True when everything is rolled out."""
        assert ws.inference is not None
        multi_node = want.preset is not None and want.preset.multi_node
        config_map = await self._config_map(ws, owner)
        await self._services(ws, owner, multi_node)
        try:
            kind, manifest, weights = self._workload(ws, owner, want, config_map)
        except WeightsSourceError as err:
            obs.set(C.INFERENCE_READY, Observed("False", "InvalidWeightsSource", str(err)))
            await self._status_events.record(ws_obj, obs)
            return False
        if weights is not None and kind is DEPLOYMENT:
            name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
            await ensure_weights_claim(self._client, weights, name, namespace, owner, FIELD_MANAGER)
        workload = await self._apply_workload(ws_obj, kind, manifest, want.revision)
        done = await self._observe(ws, workload, obs)
        # Nodes and pods are observed now: tell of what changed (ready, or why not).
        await self._status_events.record(ws_obj, obs)
        return done
