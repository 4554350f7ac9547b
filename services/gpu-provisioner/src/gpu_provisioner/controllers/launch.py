"""Launch: turn a claim into a cloud instance, without ever holding a reconcile worker.

Each create runs as its own task (an AKS agent pool takes minutes); the reconcile that started
it returns at once and the task wakes the claim's key when it ends. A result is kept until the
claim shows `Launched=True`, so a failed status write does not cause a second create. Failures
back off per claim (1 s doubling, capped); a terminal error (the SKU is not offered) sets
`Launched=False` and is not retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

from gpu_provisioner import claims
from gpu_provisioner.cloud.provider import CloudError, CloudProvider, Instance
from gpu_provisioner.conditions import LAUNCHED, ConditionSet
from gpu_provisioner.metrics import ProvisionerMetrics
from kaito_common.api.labels import LABEL_INSTANCE_TYPE, LABEL_ZONE
from kaito_common.controller import objects
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

LAUNCH_FAILED = "LaunchFailed"


@dataclass
class LaunchOutcome:
    """What a reconcile must write: labels to add to the claim, fields of its status."""

    labels: dict[str, str]
    status: Obj


def launched_details(claim: Obj, instance: Instance) -> LaunchOutcome:
    """Karpenter's PopulateNodeClaimDetails: provider labels, then single-valued requirement
    labels, then the claim's own labels (the user wins); providerID, capacity, allocatable."""
    labels = {**instance.labels, **claims.requirement_labels(claim)}
    if instance.instance_type:
        labels[LABEL_INSTANCE_TYPE] = instance.instance_type
    if instance.zone:
        labels[LABEL_ZONE] = instance.zone
    labels.update(objects.labels(claim))
    status: Obj = {"providerID": instance.provider_id}
    if instance.image_id:
        status["imageID"] = instance.image_id
    if instance.capacity:
        status["capacity"] = dict(instance.capacity)
    if instance.allocatable:
        status["allocatable"] = dict(instance.allocatable)
    return LaunchOutcome(labels=labels, status=status)


class Launcher:
    def __init__(
        self,
        cloud: CloudProvider,
        metrics: ProvisionerMetrics,
        *,
        max_concurrent: int = 200,
        backoff_base_s: float = 1.0,
        backoff_max_s: float = 60.0,
    ) -> None:
        self._cloud = cloud
        self._metrics = metrics
        self._slots = asyncio.Semaphore(max_concurrent)
        self._backoff_base_s = backoff_base_s
        self._backoff_max_s = backoff_max_s
        self._tasks: dict[str, asyncio.Task[Instance]] = {}
        self._failures: dict[str, int] = {}
        self._not_before: dict[str, float] = {}
        self._unreported: dict[str, CloudError] = {}
        self.notify: Callable[[ObjectKey], None] = lambda key: None

    @property
    def in_flight(self) -> int:
        return sum(1 for t in self._tasks.values() if not t.done())

    async def _run(self, claim: Obj) -> Instance:
        key = ObjectKey.of(claim)
        started = time.monotonic()
        result = "error"
        try:
            async with self._slots:
                instance = await self._cloud.create(claim)
            result = "success"
            return instance
        finally:
            self._metrics.launch_duration.labels(self._cloud.name, result).observe(
                time.monotonic() - started
            )
            self.notify(key)

    def forget(self, uid: str) -> None:
        """Drop all state of a claim; an in-flight create is cancelled (the instance is then
        deleted by name by termination or garbage collection)."""
        task = self._tasks.pop(uid, None)
        if task is not None and not task.done():
            task.cancel()
        self._failures.pop(uid, None)
        self._not_before.pop(uid, None)
        self._unreported.pop(uid, None)

    def take_failure(self, uid: str) -> CloudError | None:
        """The failure the last `reconcile` of this claim met, once (for its Event)."""
        return self._unreported.pop(uid, None)

    async def close(self) -> None:
        tasks = list(self._tasks.values())
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(BaseException):
                await task
        self._tasks.clear()

    def reconcile(
        self, claim: Obj, conditions: ConditionSet
    ) -> tuple[LaunchOutcome | None, float | None]:
        """Advance the launch; returns (details to write once launched, seconds to requeue)."""
        uid = str(objects.meta(claim).get("uid"))
        name = str(objects.meta(claim).get("name"))
        if conditions.is_true(LAUNCHED):
            self.forget(uid)
            return None, None
        if conditions.status(LAUNCHED) == "False":
            return None, None  # terminal: the claim is immutable, so it stays failed
        task = self._tasks.get(uid)
        if task is None:
            wait = self._not_before.get(uid, 0.0) - time.monotonic()
            if wait > 0:
                return None, wait
            self._tasks[uid] = asyncio.create_task(self._run(claim), name=f"launch-{name}")
            log.info("Launching instance nodeclaim=%s cloud=%s", name, self._cloud.name)
            return None, None
        if not task.done():
            return None, None
        if task.cancelled():
            self._tasks.pop(uid, None)
            return None, 0.0
        err = task.exception()
        if err is None:
            instance = task.result()
            log.info(
                "Launched instance nodeclaim=%s providerID=%s instanceType=%s",
                name,
                instance.provider_id,
                instance.instance_type,
            )
            return launched_details(claim, instance), None
        self._tasks.pop(uid, None)
        cloud_err = err if isinstance(err, CloudError) else CloudError(str(err) or repr(err))
        failures = self._failures.get(uid, 0) + 1
        self._failures[uid] = failures
        self._unreported[uid] = cloud_err
        if not cloud_err.retryable:
            conditions.set_false(LAUNCHED, cloud_err.reason, cloud_err.message)
            log.error(
                "Launch failed terminally nodeclaim=%s code=%s error=%s",
                name,
                cloud_err.code,
                cloud_err.message,
            )
            return None, None
        delay = min(self._backoff_base_s * 2 ** (failures - 1), self._backoff_max_s)
        self._not_before[uid] = time.monotonic() + delay
        conditions.set_unknown(LAUNCHED, cloud_err.reason, cloud_err.message)
        log.warning(
            "Launch failed; retrying nodeclaim=%s code=%s attempt=%d retryIn=%.1fs error=%s",
            name,
            cloud_err.code,
            failures,
            delay,
            cloud_err.message,
        )
        return None, delay
