"""How a single-node preset's StatefulSet moves to a new revision without a gap in service.

Upstream Kaito runs every inference Workspace as a StatefulSet `<ws>` (pods `<ws>-0` ...). A
StatefulSet on its own replaces a pod in place: the endpoint is down while the new pod loads its
model. Here the controller surges instead, in steps it reads back from the live StatefulSet
(level-triggered: a restarted controller picks up where the last one stopped):

1. **surge**: the new template with `replicas: count + 1` and `partition: count`, so that only
   the new pod `<ws>-<count>` starts at the new revision while the old pods keep serving;
2. **replace**: once that pod is Ready, `partition: 0`: the StatefulSet replaces the old pods one
   at a time (highest ordinal first), the surge pod serving meanwhile;
3. **settle**: once every pod below `<ws>-<count>` runs the new revision and is Ready,
   `replicas: count` removes the surge pod.

The Service selects every pod of the Workspace and publishes only Ready ones, so some pod always
answers. Two cases skip the surge: nothing serves yet (no gap to protect), and the surge pod
finds no room on the nodes (Unschedulable for `SURGE_UNSCHEDULABLE_S`): the rollout then goes on
in place, as upstream's does, rather than wait forever.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

from kaito_common.api import labels as L
from kaito_common.controller import objects
from kaito_common.controller.objects import Obj

SURGE_UNSCHEDULABLE_S = 60.0
REVISION_HASH_LABEL = "controller-revision-hash"


@dataclass(frozen=True)
class RolloutStep:
    replicas: int
    partition: int
    phase: str  # create | steady | surge | replace | settle | in-place
    message: str = ""


def template_revision(statefulset: Obj) -> str | None:
    template = (statefulset.get("spec") or {}).get("template") or {}
    annotations = (template.get("metadata") or {}).get("annotations") or {}
    value = annotations.get(L.ANNOTATION_WORKSPACE_REVISION)
    return str(value) if value is not None else None


def _partition(spec: Obj) -> int:
    rolling = (spec.get("updateStrategy") or {}).get("rollingUpdate") or {}
    return int(rolling.get("partition") or 0)


def _ordinal(pod: Obj, name: str) -> int | None:
    suffix = str(objects.meta(pod).get("name") or "").removeprefix(f"{name}-")
    return int(suffix) if suffix.isdigit() else None


def _ready(pod: Obj) -> bool:
    if objects.meta(pod).get("deletionTimestamp"):
        return False
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if condition.get("type") == "Ready":
            return bool(condition.get("status") == "True")
    return False


def _unschedulable_for(pod: Obj, now: dt.datetime) -> float:
    for condition in (pod.get("status") or {}).get("conditions") or []:
        if (
            condition.get("type") == "PodScheduled"
            and condition.get("status") == "False"
            and condition.get("reason") == "Unschedulable"
        ):
            since = condition.get("lastTransitionTime")
            if not since:
                return 0.0
            started = dt.datetime.fromisoformat(str(since).replace("Z", "+00:00"))
            return (now - started).total_seconds()
    return 0.0


def rollout_step(
    live: Obj | None,
    revision: str,
    count: int,
    pods: Sequence[Obj],
    now: dt.datetime | None = None,
) -> RolloutStep:
    """The replicas and partition the StatefulSet should have now (see the module's text).

    ``pods`` are the Workspace's pods (needed only while a surge is under way)."""
    if live is None:
        return RolloutStep(count, 0, "create")
    now = now or dt.datetime.now(dt.UTC)
    spec, status = live.get("spec") or {}, live.get("status") or {}
    name = str(objects.meta(live).get("name") or "")
    replicas, partition = int(spec.get("replicas") or 0), _partition(spec)
    update_revision = status.get("updateRevision")
    by_ordinal = {o: p for p in pods if (o := _ordinal(p, name)) is not None}

    def at_update(ordinal: int) -> bool:
        pod = by_ordinal.get(ordinal)
        if pod is None or not update_revision:
            return False
        labels = objects.meta(pod).get("labels") or {}
        return labels.get(REVISION_HASH_LABEL) == update_revision and _ready(pod)

    if template_revision(live) != revision:
        serving = int(status.get("readyReplicas") or 0) > 0
        if not serving:
            return RolloutStep(count, 0, "in-place", "nothing serves yet: replaced in place")
        return RolloutStep(count + 1, count, "surge", f"starting {name}-{count} at the new one")
    if replicas <= count:
        return RolloutStep(count, 0, "steady")
    observed = int(status.get("observedGeneration") or 0)
    if observed < int(objects.meta(live).get("generation") or 0):
        return RolloutStep(replicas, partition, "wait")  # the StatefulSet has not seen it yet
    surge_pod = f"{name}-{count}"
    if partition > 0:
        surge = range(partition, replicas)
        if all(at_update(o) for o in surge):
            return RolloutStep(replicas, 0, "replace", f"{surge_pod} is Ready: replacing the rest")
        stuck = [p for o in surge if (p := by_ordinal.get(o)) is not None]
        if any(_unschedulable_for(p, now) >= SURGE_UNSCHEDULABLE_S for p in stuck):
            return RolloutStep(
                count, 0, "in-place", f"no room for {surge_pod}: replacing the pods in place"
            )
        return RolloutStep(replicas, partition, "surge", f"waiting for {surge_pod} to be Ready")
    if all(at_update(o) for o in range(count)):
        return RolloutStep(count, 0, "settle", f"every pod runs the new revision: {surge_pod} goes")
    return RolloutStep(replicas, 0, "replace", "replacing the old pods one at a time")
