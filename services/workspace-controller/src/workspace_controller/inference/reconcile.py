"""Converge the inference children of a workspace whose nodes are ready."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kaito_common.api import labels as L
from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.conditions import WorkspaceReason as R
from kaito_common.api.workspace import Workspace
from kaito_common.controller import objects
from kaito_common.controller.apply import apply_if_changed
from kaito_common.controller.client import KubeClient
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import (
    CONFIG_MAP,
    DEPLOYMENT,
    PERSISTENT_VOLUME_CLAIM,
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
from workspace_controller.inference.readiness import WorkloadReadiness, workload_readiness
from workspace_controller.inference.rollout import RolloutStep, rollout_step, template_revision
from workspace_controller.inference.service import headless_service_manifest, service_manifest
from workspace_controller.inference.workload import (
    statefulset_manifest,
    template_deployment_manifest,
)
from workspace_controller.kinds import FIELD_MANAGER
from workspace_controller.manifests.configmap import (
    DEFAULT_INFERENCE_TEMPLATE,
    inference_params_copy,
)
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import WeightsSourceError, cache_claim_name
from workspace_controller.manifests.placement import node_affinity
from workspace_controller.status.events import StatusEventRecorder
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.status.pods import classify_pods

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

    async def _services(
        self, ws: Workspace, owner: Obj, *, stateful: bool, multi_node: bool
    ) -> None:
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        load_balancer = (ws.metadata.annotations or {}).get(L.ANNOTATION_ENABLE_LB) == "True"
        service = service_manifest(
            name, namespace, owner, load_balancer=load_balancer, stateful=multi_node
        )
        live = self._caches.services.get(ObjectKey(namespace, name))
        if live is not None and not multi_node and live["spec"].get("publishNotReadyAddresses"):
            live = None  # an earlier release's Service: sent loading pods requests; applied anew
        await self._apply(SERVICE, service, live)
        if stateful:
            headless = headless_service_manifest(name, namespace, owner)
            live = self._caches.services.get(ObjectKey(namespace, headless["metadata"]["name"]))
            await self._apply(SERVICE, headless, live)

    async def _pods(self, ws: Workspace) -> list[Obj]:
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        return await self._client.list_all(
            POD, namespace, label_selector=f"{L.LABEL_WORKSPACE}={name}"
        )

    async def _rollout_step(self, ws: Workspace, revision: str) -> RolloutStep:
        """Where a single-node preset's surging update stands (inference/rollout.py)."""
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        live = self._caches.statefulsets.get(ObjectKey(namespace, name))
        count = ws.resource.count
        surging = live is not None and int((live.get("spec") or {}).get("replicas") or 0) > count
        pods = await self._pods(ws) if surging else []
        step = rollout_step(live, revision, count, pods)
        if step.message and step.phase != "steady":
            log.info(
                "Rollout of StatefulSet %s/%s: %s (%s)", namespace, name, step.message, step.phase
            )
        return step

    async def _workload(
        self, ws: Workspace, owner: Obj, want: WorkloadInputs, config_map: str | None
    ) -> tuple[Kind, Obj]:
        """(kind, manifest) of the workload: the preset's StatefulSet, or a Deployment of the
        user's template."""
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
            return DEPLOYMENT, manifest
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
        step = None if want.preset.multi_node else await self._rollout_step(ws, revision)
        return STATEFUL_SET, statefulset_manifest(plan, owner, step)

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
            if live is None or template_revision(live) != template_revision(manifest):
                await self._events.normal(
                    ws_obj, f"Workload{verb}", f"{verb} {kind.kind} {name} at revision {revision}"
                )
        return applied or live or manifest

    async def _migrate(
        self, ws: Workspace, ws_obj: Obj, readiness: WorkloadReadiness
    ) -> Obj | None:
        """A Workspace of an earlier release runs a Deployment `<ws>`: it serves until the
        StatefulSet that replaces it (``readiness``) has rolled out, then goes. Returns the
        Deployment while it is still there."""
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        deployment = self._caches.deployments.get(ObjectKey(namespace, name))
        if deployment is None or not _owned_by(deployment, ws_obj):
            return None
        if not readiness.rolled_out:
            return deployment
        uid = str(objects.meta(deployment).get("uid") or "")
        if await self._client.delete(DEPLOYMENT, name, namespace, uid=uid or None):
            message = (
                f"Moved from Deployment {name} to StatefulSet {name}: the StatefulSet's pods are "
                "Ready, the Deployment is deleted"
            )
            log.info("%s (namespace %s)", message, namespace)
            await self._events.normal(ws_obj, "WorkloadMigration", message)
        # The earlier release's single weights cache claim; the StatefulSet has one per pod.
        old_claim = cache_claim_name(name)
        claim = await self._client.get_or_none(PERSISTENT_VOLUME_CLAIM, old_claim, namespace)
        if claim is not None and _owned_by(claim, ws_obj):
            await self._client.delete(PERSISTENT_VOLUME_CLAIM, old_claim, namespace)
        return None

    async def _observe(
        self,
        ws: Workspace,
        readiness: WorkloadReadiness,
        obs: Observations,
        previous: Obj | None = None,
    ) -> bool:
        """Set InferenceReady from the workload's ``readiness`` and, while it is not serving, its
        pods. ``previous``: the Deployment of an earlier release that serves during a migration."""
        if previous is not None and not readiness.rolled_out:
            earlier = workload_readiness(previous, ws.resource.count)
            if earlier.serving:
                message = (
                    f"moving to a StatefulSet: {readiness.message}; the earlier Deployment "
                    "serves meanwhile"
                )
                obs.set(C.INFERENCE_READY, Observed("True", "RolloutInProgress", message))
                return False
        if readiness.serving:
            reason = R.INFERENCE_READY if readiness.rolled_out else "RolloutInProgress"
            obs.set(C.INFERENCE_READY, Observed("True", reason, readiness.message))
            return readiness.rolled_out
        problem = classify_pods(await self._pods(ws))
        if problem is not None:
            reason, message = problem
            obs.set(C.INFERENCE_READY, Observed("False", reason, f"{readiness.message}; {message}"))
        else:
            obs.set(
                C.INFERENCE_READY,
                Observed("False", R.INFERENCE_PENDING, f"{readiness.message}; waiting for pods"),
            )
        return False

    async def reconcile(
        self, ws: Workspace, ws_obj: Obj, owner: Obj, want: WorkloadInputs, obs: Observations
    ) -> bool:
        """Apply the children and observe readiness; True when everything is rolled out."""
        assert ws.inference is not None
        multi_node = want.preset is not None and want.preset.multi_node
        config_map = await self._config_map(ws, owner)
        await self._services(ws, owner, stateful=want.preset is not None, multi_node=multi_node)
        try:
            kind, manifest = await self._workload(ws, owner, want, config_map)
        except WeightsSourceError as err:
            obs.set(C.INFERENCE_READY, Observed("False", "InvalidWeightsSource", str(err)))
            await self._status_events.record(ws_obj, obs)
            return False
        workload = await self._apply_workload(ws_obj, kind, manifest, want.revision)
        readiness = workload_readiness(workload, ws.resource.count)
        previous = await self._migrate(ws, ws_obj, readiness) if kind is STATEFUL_SET else None
        done = await self._observe(ws, readiness, obs, previous)
        # Nodes and pods are observed now: tell of what changed (ready, or why not).
        await self._status_events.record(ws_obj, obs)
        return done


def _owned_by(obj: Obj, owner: Obj) -> bool:
    uid = objects.meta(owner).get("uid")
    refs = objects.meta(obj).get("ownerReferences") or []
    return any(ref.get("uid") == uid for ref in refs)
