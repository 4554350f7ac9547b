"""Is the inference workload serving? A pure function over the Deployment or StatefulSet.

Why its pods are not ready is `status/pods.py`'s to say (the tuning Job's pods share it).
"""

from __future__ import annotations

from dataclasses import dataclass

from kaito_common.controller import objects
from kaito_common.controller.objects import Obj


@dataclass(frozen=True)
class WorkloadReadiness:
    serving: bool  # enough ready replicas to answer requests
    rolled_out: bool  # every replica runs the current template
    ready: int
    desired: int
    message: str


def workload_readiness(workload: Obj, count: int | None = None) -> WorkloadReadiness:
    """``count``: the replicas the Workspace asks for (a surging StatefulSet has one more)."""
    spec = workload.get("spec") or {}
    status = workload.get("status") or {}
    replicas = int(spec.get("replicas") or 0)
    desired = replicas if count is None else count
    ready = int(status.get("readyReplicas") or 0)
    updated = int(status.get("updatedReplicas") or 0)
    total = int(status.get("replicas") or 0)
    generation = int(objects.meta(workload).get("generation") or 0)
    observed = int(status.get("observedGeneration") or 0)
    if workload.get("kind") == "StatefulSet":
        current = status.get("currentRevision")
        rolled = (
            observed >= generation
            and (current is None or current == status.get("updateRevision"))
            and updated >= desired
            and replicas <= desired
        )
    else:
        rolled = observed >= generation and updated >= desired and total <= desired
    serving = ready >= desired > 0
    message = f"{ready} of {desired} inference pod(s) ready"
    if serving and not rolled:
        message += f"; rolling out the new revision ({updated} of {desired} updated)"
    return WorkloadReadiness(serving, rolled and serving, ready, desired, message)
