"""The Events a person reads in `kubectl describe workspace`: status changes worth hearing about.

`status_events(old, new)` is a pure diff of two statuses: a condition whose status or reason
changed becomes one Event (Normal when something became ready or finished, Warning when a pod,
the Job, the config or the provisioning failed). Only changes count, so a level-triggered
reconcile that runs a hundred times over an unchanged failure records it once; a message that
merely changes (a restart count, the trainer's step) records nothing new.
"""

from __future__ import annotations

import datetime as dt
from collections import OrderedDict
from dataclasses import dataclass

from kaito_common.api.conditions import WorkspaceConditionType as C
from kaito_common.api.conditions import WorkspaceReason as R
from kaito_common.controller.clock import utc_now
from kaito_common.controller.conditions import get_condition
from kaito_common.controller.events import NORMAL, WARNING, EventRecorder
from kaito_common.controller.objects import Obj
from workspace_controller.status.compute import compute_status
from workspace_controller.status.observations import Observations

# A condition turning True with one of these reasons is news, told as an Event of the reason
# given here (the conditions carry upstream's reasons; RolloutInProgress is True as well, but the
# WorkloadUpdated Event has said it already).
NEWS_WHEN_TRUE: dict[str, dict[str, str]] = {
    C.RESOURCE_READY.value: {R.RESOURCE_READY.value: "ResourcesReady"},
    C.INFERENCE_READY.value: {R.INFERENCE_READY.value: "InferenceReady"},
    C.WORKSPACE_SUCCEEDED.value: {R.SUCCEEDED.value: "WorkspaceSucceeded"},
}
# Reasons of a condition that is not True yet which still tell of progress.
PROGRESS_REASONS = frozenset({"TuningInProgress"})
# Reasons that need a person: a pod, the Job, the workspace's config or its nodes failed.
WARNING_REASONS = frozenset(
    {
        "ImagePullError",
        "ContainerCrashLoopBackOff",
        "ContainerOOMKilled",
        "ContainerStartError",
        "Unschedulable",
        "PodEvicted",
        "TuningJobFailed",
        "InvalidTuningConfig",
        "UnsupportedPreset",
        "UnsupportedInstanceType",
        "InvalidWorkspace",
        "InvalidWeightsSource",
        "NodeClaimLaunchFailed",
        "NodeClaimAPINotInstalled",
        "NodePluginsNotReady",
        "ReconcileError",
    }
)


@dataclass(frozen=True)
class WorkspaceEvent:
    type: str  # Normal or Warning
    reason: str
    message: str


def _event(cond: Obj) -> WorkspaceEvent | None:
    type_, status, reason = cond.get("type"), cond.get("status"), str(cond.get("reason") or "")
    message = str(cond.get("message") or "")
    if status == "True":
        news = NEWS_WHEN_TRUE.get(str(type_), {}).get(reason)
        return WorkspaceEvent(NORMAL, news, message) if news else None
    if reason in WARNING_REASONS:
        return WorkspaceEvent(WARNING, reason, message)
    if reason in PROGRESS_REASONS:
        return WorkspaceEvent(NORMAL, reason, message)
    return None


def status_events(old: Obj, new: Obj) -> list[WorkspaceEvent]:
    """The Events for the conditions of `new` whose (status, reason) differ from `old`'s, in
    condition order; one reason reported by two conditions (the Job's failure on JobStarted and
    on the summary, a NodeClaim's launch failure on ResourceReady and NodeClaimReady) is one
    Event, the first condition's."""
    before = list(old.get("conditions") or [])
    found: list[WorkspaceEvent] = []
    for cond in new.get("conditions") or []:
        prior = get_condition(before, str(cond.get("type"))) or {}
        if (prior.get("status"), prior.get("reason")) == (cond.get("status"), cond.get("reason")):
            continue
        event = _event(cond)
        if event is not None and all(e.reason != event.reason for e in found):
            found.append(event)
    return found


class StatusEventRecorder:
    """Records the Events of the status a reconcile is about to write.

    What was already said is the status this process last computed for the workspace: the next
    reconcile may read a cached workspace that does not show that status write yet (the same
    resourceVersion, or a newer one from a metadata change that landed before the status write),
    and must not say it twice. A workspace this process has not seen yet (a restart, a new
    leader) starts from its stored status."""

    def __init__(self, recorder: EventRecorder, *, cache_size: int = 4096) -> None:
        self._recorder = recorder
        self._said: OrderedDict[str, tuple[str, Obj]] = OrderedDict()  # uid -> (rv, status)
        self._cache_size = cache_size

    async def record(self, ws_obj: Obj, obs: Observations, now: dt.datetime | None = None) -> None:
        meta = ws_obj.get("metadata") or {}
        uid, version = str(meta.get("uid") or ""), str(meta.get("resourceVersion") or "")
        new = compute_status(ws_obj, obs, now or utc_now())
        said = self._said.get(uid)
        old: Obj = said[1] if said is not None else (ws_obj.get("status") or {})
        for event in status_events(old, new):
            await self._recorder.record(ws_obj, event.type, event.reason, event.message)
        self._said[uid] = (version, new)
        self._said.move_to_end(uid)
        while len(self._said) > self._cache_size:
            self._said.popitem(last=False)
