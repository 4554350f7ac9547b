"""Converge the tuning children of a workspace: its ConfigMap and its Job `<ws>`.

One Job per revision: a Job of an older revision (new input or output) is deleted in the
foreground and a new one created once it is gone. A finished Job of the current revision is
reported without looking at the nodes again (they may be gone once training is over).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.api import labels as L
from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.conditions import WorkspaceReason as R
from kaito_common.api.conditions import WorkspaceState
from kaito_common.api.workspace import Workspace
from kaito_common.controller import objects
from kaito_common.controller.apply import apply_if_changed
from kaito_common.controller.client import KubeClient, status_of
from kaito_common.controller.events import EventRecorder
from kaito_common.controller.kinds import CONFIG_MAP, JOB, POD, ObjectKey
from kaito_common.controller.objects import Obj
from kaito_common.presets import GPUSku, Preset
from workspace_controller.caches import Caches
from workspace_controller.kinds import FIELD_MANAGER
from workspace_controller.manifests.configmap import TUNING_TEMPLATES, tuning_params_copy
from workspace_controller.manifests.images import ImageSettings
from workspace_controller.manifests.model_weights import WeightsSourceError
from workspace_controller.status.events import StatusEventRecorder
from workspace_controller.status.observations import Observations, Observed
from workspace_controller.tuning.config import TuningConfigError, output_dir_of
from workspace_controller.tuning.job import job_manifest
from workspace_controller.tuning.plan import TRAINER_CONTAINER, tuning_plan
from workspace_controller.tuning.progress import ProgressSource
from workspace_controller.tuning.status import JobView, observe_job
from workspace_controller.weights_cache import ensure_weights_claim

log = logging.getLogger(__name__)

JOB_UID_LABEL = "batch.kubernetes.io/controller-uid"


@dataclass(frozen=True)
class TuningOptions:
    images: ImageSettings
    release_namespace: str
    metrics_port: int
    allow_loopback: bool
    backoff_limit: int


def _revision_of(job: Obj) -> str | None:
    return objects.annotations(job).get(L.ANNOTATION_WORKSPACE_REVISION)


def _finished(job: Obj) -> bool:
    return objects.condition_true(job, "Complete") or objects.condition_true(job, "Failed")


def _previous_progress(ws_obj: Obj) -> dict[str, object]:
    return dict((ws_obj.get("status") or {}).get("tuningProgress") or {})


class TuningReconciler:
    def __init__(
        self,
        client: KubeClient,
        caches: Caches,
        events: EventRecorder,
        progress: ProgressSource,
        options: TuningOptions,
    ) -> None:
        self._client = client
        self._caches = caches
        self._events = events
        self._status_events = StatusEventRecorder(events)
        self._progress = progress
        self._options = options

    def _live_job(self, ws: Workspace) -> Obj | None:
        return self._caches.jobs.get(ObjectKey(ws.metadata.namespace or "", ws.metadata.name or ""))

    async def _pods(self, job: Obj) -> list[Obj]:
        meta = job.get("metadata") or {}
        uid = meta.get("uid")
        if not uid:
            return []
        return await self._client.list_all(
            POD, meta.get("namespace"), label_selector=f"{JOB_UID_LABEL}={uid}"
        )

    async def report_if_finished(
        self, ws: Workspace, ws_obj: Obj, revision: int, obs: Observations
    ) -> bool:
        """When the Job of this revision has finished, report it and return True."""
        job = self._live_job(ws)
        if job is None or _revision_of(job) != str(revision) or not _finished(job):
            return False
        if objects.is_deleting(job):
            return False
        await self._observe(ws, ws_obj, job, obs)
        await self._status_events.record(ws_obj, obs)
        return True

    async def reconcile(
        self,
        ws: Workspace,
        ws_obj: Obj,
        owner: Obj,
        *,
        preset: Preset | None,
        sku: GPUSku | None,
        revision: int,
        provisioned: bool,
        obs: Observations,
    ) -> bool:
        """Apply the ConfigMap and the Job and observe them; True once the Job has finished.
        The status changes worth telling (the trainer started, a pod or the Job failed, the
        config was rejected) are recorded as Events on the way out."""
        done = await self._converge(
            ws,
            ws_obj,
            owner,
            preset=preset,
            sku=sku,
            revision=revision,
            provisioned=provisioned,
            obs=obs,
        )
        await self._status_events.record(ws_obj, obs)
        return done

    async def _converge(
        self,
        ws: Workspace,
        ws_obj: Obj,
        owner: Obj,
        *,
        preset: Preset | None,
        sku: GPUSku | None,
        revision: int,
        provisioned: bool,
        obs: Observations,
    ) -> bool:
        assert ws.tuning is not None
        if preset is None:
            self._pending(obs, "False", "UnsupportedPreset", "The tuning preset is unknown")
            return True
        job = self._live_job(ws)
        want = str(revision)
        if job is not None and (_revision_of(job) != want or objects.is_deleting(job)):
            await self._replace(ws_obj, job, want, obs)
            return False
        if job is not None:
            return await self._observe(ws, ws_obj, job, obs)
        try:
            config_map, config = await self._config_map(ws, owner)
            output_dir = output_dir_of(config)
        except TuningConfigError as err:
            self._pending(obs, "False", "InvalidTuningConfig", str(err))
            return False
        try:
            plan = tuning_plan(
                ws,
                preset,
                sku,
                revision=want,
                images=self._options.images,
                config_map=config_map,
                output_dir=output_dir,
                metrics_port=self._options.metrics_port,
                allow_loopback=self._options.allow_loopback,
                backoff_limit=self._options.backoff_limit,
                provisioned=provisioned,
            )
        except WeightsSourceError as err:
            self._pending(obs, "False", "InvalidWeightsSource", str(err))
            return False
        name, namespace = ws.metadata.name or "", ws.metadata.namespace or ""
        await ensure_weights_claim(
            self._client, plan.weights, name, namespace, owner, FIELD_MANAGER
        )
        await self._create(ws_obj, job_manifest(plan, owner), want, obs)
        return False

    def _pending(self, obs: Observations, status: str, reason: str, message: str) -> None:
        obs.set(C.JOB_STARTED, Observed(status, reason, message))
        obs.summary = Observed("False", reason, message)
        obs.state = WorkspaceState.PENDING.value

    async def _replace(self, ws_obj: Obj, job: Obj, want: str, obs: Observations) -> None:
        meta = job["metadata"]
        have = _revision_of(job)
        message = f"Replacing the tuning Job of revision {have} with one of revision {want}"
        if not objects.is_deleting(job):
            await self._client.delete(
                JOB,
                meta["name"],
                meta["namespace"],
                propagation_policy="Foreground",
                uid=meta.get("uid"),
            )
            log.info(
                "Deleted the tuning Job of an older revision "
                "namespace=%s job=%s revision=%s new_revision=%s",
                meta["namespace"],
                meta["name"],
                have,
                want,
            )
            await self._events.normal(ws_obj, "JobReplaced", message)
        self._pending(obs, "Unknown", "JobReplacing", message)
        obs.tuning_progress = {}

    async def _config_map(self, ws: Workspace, owner: Obj) -> tuple[str, Obj]:
        """(name, object) of the ConfigMap the Job mounts: the user's, or our copy of the
        chart's template for the method."""
        tuning = ws.tuning
        assert tuning is not None
        namespace = ws.metadata.namespace or ""
        if tuning.config:
            found = await self._client.get_or_none(CONFIG_MAP, tuning.config, namespace)
            if found is None:
                raise TuningConfigError(
                    f"ConfigMap {tuning.config} named in tuning.config was not found in "
                    f"namespace {namespace}"
                )
            return tuning.config, found
        template_name = TUNING_TEMPLATES[tuning.method]
        release = self._options.release_namespace
        template = self._caches.templates.get(ObjectKey(release, template_name))
        if template is None:
            raise TuningConfigError(
                f"The default tuning ConfigMap {template_name} was not found in namespace "
                f"{release} (the chart installs it); reinstall the chart or set tuning.config"
            )
        manifest = tuning_params_copy(ws.metadata.name or "", namespace, owner, template)
        name = str(manifest["metadata"]["name"])
        live = self._caches.configmaps.get(ObjectKey(namespace, name))
        await apply_if_changed(self._client, CONFIG_MAP, manifest, live, FIELD_MANAGER)
        return name, manifest

    async def _create(self, ws_obj: Obj, manifest: Obj, want: str, obs: Observations) -> None:
        meta = manifest["metadata"]
        try:
            await self._client.create(JOB, manifest, meta["namespace"])
        except ApiException as err:
            if status_of(err) != 409:
                raise
            # Created by an earlier reconcile the cache has not seen yet.
            self._pending(obs, "Unknown", "JobPending", "Waiting for the tuning Job to be seen")
            return
        message = f"Created the tuning Job {meta['name']} at revision {want}"
        log.info(
            "Created the tuning Job namespace=%s job=%s revision=%s",
            meta["namespace"],
            meta["name"],
            want,
        )
        await self._events.normal(ws_obj, "JobCreated", message)
        obs.set(
            C.JOB_STARTED, Observed("True", R.TUNING_STARTED, f"{message}; waiting for its pod")
        )
        obs.summary = Observed("False", "TuningPending", "Waiting for the tuning Job's pod")
        obs.state = WorkspaceState.RUNNING.value
        obs.tuning_progress = {}

    async def _observe(self, ws: Workspace, ws_obj: Obj, job: Obj, obs: Observations) -> bool:
        pods = await self._pods(job)
        view = observe_job(job, pods)
        previous = _previous_progress(ws_obj)
        if view.phase == "Succeeded":
            self._succeeded(ws, view, previous, obs)
            return True
        if view.phase == "Failed":
            obs.set(C.JOB_STARTED, Observed("False", "TuningJobFailed", view.message))
            obs.summary = Observed("False", "TuningJobFailed", view.message)
            obs.state = WorkspaceState.FAILED.value
            if previous:
                obs.tuning_progress = {**previous, "phase": "Failed"}
            return True
        await self._running(ws_obj, job, view, previous, obs)
        return False

    def _succeeded(
        self, ws: Workspace, view: JobView, previous: dict[str, object], obs: Observations
    ) -> None:
        assert ws.tuning is not None
        output = ws.tuning.output
        where = (
            f"the adapter was pushed to {output.image}"
            if output.image
            else "the adapter was written to the output volume"
        )
        obs.set(C.JOB_STARTED, Observed("True", R.TUNING_STARTED, view.message))
        obs.summary = Observed("True", R.SUCCEEDED, f"Fine-tuning finished; {where}")
        obs.state = WorkspaceState.SUCCEEDED.value
        if view.final_progress is not None:
            obs.tuning_progress = view.final_progress.to_status()
        elif previous:
            obs.tuning_progress = {**previous, "phase": "Completed"}

    async def _running(
        self,
        ws_obj: Obj,
        job: Obj,
        view: JobView,
        previous: dict[str, object],
        obs: Observations,
    ) -> None:
        progress = None
        if view.training_pod is not None:
            progress = await self._progress.read(view.training_pod, TRAINER_CONTAINER)
        message = view.message
        if progress is not None:
            obs.tuning_progress = progress.to_status()
            message = f"Training: {progress.describe()}; {message}"
        elif previous:
            obs.tuning_progress = previous
        name = objects.name(job)
        obs.set(C.JOB_STARTED, Observed("True", R.TUNING_STARTED, f"The tuning Job {name} started"))
        obs.summary = Observed("False", view.problem_reason or "TuningInProgress", message)
        obs.state = WorkspaceState.RUNNING.value
