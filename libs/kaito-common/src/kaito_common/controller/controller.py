"""Controllers: a builder wiring informers to a work queue, and the workers running reconciles.

A reconciler is `async def reconcile(key: ObjectKey) -> Result | None`. It re-reads the world
and converges; it never sees the event that woke it. Raising any exception requeues the key with
per-key exponential backoff; raising `TerminalError` logs and drops the key until the next
change; returning `Result(requeue_after=s)` looks again after `s` seconds.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass
from typing import Protocol

from kaito_common.controller.apierrors import describe_error
from kaito_common.controller.clock import Clock
from kaito_common.controller.informer import Informer, WatchEvent
from kaito_common.controller.kinds import Kind, ObjectKey
from kaito_common.controller.metrics import ControllerMetrics
from kaito_common.controller.objects import Obj
from kaito_common.controller.predicates import Predicate
from kaito_common.controller.workqueue import ShutDown, WorkQueue
from kaito_common.logs import log_context

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Result:
    """`requeue_after`: look at the key again after this many seconds (waiting on the world)."""

    requeue_after: float | None = None


class TerminalError(Exception):
    """A failure retrying cannot fix (e.g. an invalid spec): logged, not retried."""


Reconciler = Callable[[ObjectKey], Awaitable[Result | None]]
MapFunc = Callable[[Obj], Iterable[ObjectKey]]


class InformerSource(Protocol):
    """What a builder needs from the manager."""

    metrics: ControllerMetrics
    clock: Clock

    def informer(
        self, kind: Kind, *, namespace: str | None = None, label_selector: str | None = None
    ) -> Informer: ...

    def add_controller(self, controller: Controller) -> None: ...


def controller_owner(obj: Obj, owner_kind: Kind) -> ObjectKey | None:
    """The key of `obj`'s controller owner when that owner is of `owner_kind`."""
    meta = obj.get("metadata") or {}
    for ref in meta.get("ownerReferences") or []:
        if ref.get("controller") and owner_kind.matches(ref):
            namespace = str(meta.get("namespace") or "") if owner_kind.namespaced else ""
            return ObjectKey(namespace, str(ref.get("name")))
    return None


class Controller:
    def __init__(
        self,
        name: str,
        reconciler: Reconciler,
        *,
        metrics: ControllerMetrics,
        clock: Clock,
        max_concurrent: int = 1,
        subject: str = "object",
    ) -> None:
        self.name = name
        # The log field naming what is reconciled (workspace, nodeclaim): every line a
        # reconcile logs carries it, with the namespace (JSON logs, kaito_common.logs).
        self._subject = subject
        self._reconciler = reconciler
        self._metrics = metrics
        self._max_concurrent = max_concurrent
        depth = metrics.workqueue_depth.labels(name)
        retries = metrics.workqueue_retries.labels(name)
        self.queue: WorkQueue[ObjectKey] = WorkQueue(
            clock=clock, on_depth=depth.set, on_retry=retries.inc
        )

    def enqueue(self, key: ObjectKey) -> None:
        self.queue.add(key)

    async def run(self) -> None:
        """Run the workers until cancelled; a reconcile in flight finishes first."""
        log.info("Starting workers controller=%s count=%d", self.name, self._max_concurrent)
        workers = [asyncio.create_task(self._worker()) for _ in range(self._max_concurrent)]
        try:
            await asyncio.gather(*workers)
        finally:
            self.queue.shutdown()
            for w in workers:
                w.cancel()
            for w in workers:
                with contextlib.suppress(asyncio.CancelledError):
                    await w
            log.info("Stopped workers controller=%s", self.name)

    async def _worker(self) -> None:
        while True:
            try:
                key = await self.queue.get()
            except ShutDown:
                return
            try:
                await self.reconcile_once(key)
            finally:
                self.queue.done(key)

    async def reconcile_once(self, key: ObjectKey) -> None:
        reconcile_id = uuid.uuid4().hex[:8]
        fields = {self._subject: key.name, "namespace": key.namespace or None}
        with log_context(**fields):
            await self._reconcile_once(key, reconcile_id)

    async def _reconcile_once(self, key: ObjectKey, reconcile_id: str) -> None:
        started = time.monotonic()
        outcome = "success"
        try:
            result = await self._reconciler(key)
        except asyncio.CancelledError:
            self.queue.add(key)  # interrupted by shutdown or leadership loss: not done
            raise
        except TerminalError as err:
            outcome = "terminal_error"
            self.queue.forget(key)
            log.error(
                "Reconcile failed terminally; not retried controller=%s key=%s reconcileID=%s "
                "error=%s",
                self.name,
                key,
                reconcile_id,
                err,
            )
        except Exception as err:
            outcome = "error"
            self.queue.add_rate_limited(key)
            log.warning(
                "Reconcile failed; requeued with backoff controller=%s key=%s reconcileID=%s "
                "retries=%d error=%s",
                self.name,
                key,
                reconcile_id,
                self.queue.retries(key),
                describe_error(err),
            )
        else:
            self.queue.forget(key)
            if result is not None and result.requeue_after is not None:
                outcome = "requeue_after"
                self.queue.add_after(key, result.requeue_after)
        finally:
            self._metrics.reconcile_duration.labels(self.name).observe(time.monotonic() - started)
        self._metrics.reconcile_total.labels(self.name, outcome).inc()


class ControllerBuilder:
    """`manager.controller("name").for_(KIND).owns(CHILD).watches(K, fn).complete(reconcile)`."""

    def __init__(self, source: InformerSource, name: str) -> None:
        self._source = source
        self._name = name
        self._for: Kind | None = None
        self._watches: list[tuple[Informer, Callable[[WatchEvent], Iterable[ObjectKey]]]] = []
        self._max_concurrent = 1

    def _add(
        self,
        kind: Kind,
        mapper: Callable[[Obj], ObjectKey | Iterable[ObjectKey] | None],
        predicates: Iterable[Predicate],
        namespace: str | None,
        label_selector: str | None,
    ) -> None:
        preds = list(predicates)

        def keys(event: WatchEvent) -> Iterable[ObjectKey]:
            if not all(p(event) for p in preds):
                return []
            out: set[ObjectKey] = set()
            for obj in (event.obj, event.old):
                if obj is None:
                    continue
                mapped = mapper(obj)
                if mapped is None:
                    continue
                if isinstance(mapped, ObjectKey):
                    out.add(mapped)
                else:
                    out.update(mapped)
            return out

        informer = self._source.informer(kind, namespace=namespace, label_selector=label_selector)
        self._watches.append((informer, keys))

    def for_(
        self,
        kind: Kind,
        *,
        predicates: Iterable[Predicate] = (),
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> ControllerBuilder:
        self._for = kind
        self._add(kind, ObjectKey.of, predicates, namespace, label_selector)
        return self

    def owns(
        self,
        kind: Kind,
        *,
        predicates: Iterable[Predicate] = (),
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> ControllerBuilder:
        """Map changes of `kind` to the root object named by their controller ownerReference."""
        owner_kind = self._for
        if owner_kind is None:
            raise ValueError("call for_() before owns()")
        self._add(
            kind,
            lambda obj: controller_owner(obj, owner_kind),
            predicates,
            namespace,
            label_selector,
        )
        return self

    def watches(
        self,
        kind: Kind,
        map_fn: MapFunc,
        *,
        predicates: Iterable[Predicate] = (),
        namespace: str | None = None,
        label_selector: str | None = None,
    ) -> ControllerBuilder:
        self._add(kind, map_fn, predicates, namespace, label_selector)
        return self

    def with_max_concurrent(self, count: int) -> ControllerBuilder:
        self._max_concurrent = count
        return self

    def complete(self, reconciler: Reconciler) -> Controller:
        if self._for is None:
            raise ValueError("a controller needs for_()")
        controller = Controller(
            self._name,
            reconciler,
            metrics=self._source.metrics,
            clock=self._source.clock,
            max_concurrent=self._max_concurrent,
            subject=self._for.kind.lower(),
        )
        for informer, keys in self._watches:

            def handler(event: WatchEvent, keys: Callable[..., Iterable[ObjectKey]] = keys) -> None:
                for key in keys(event):
                    controller.enqueue(key)

            informer.add_handler(handler)
        self._source.add_controller(controller)
        return controller
