"""An informer: a list-then-watch loop keeping a `Store` of one kind current.

It lists in pages, watches from the list's resourceVersion with bookmarks and a server-side
timeout, resumes the watch from the last seen resourceVersion after a dropped connection
(jittered backoff), and relists on 410 Gone (kubernetes-asyncio's own watch never does).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import Callable
from dataclasses import dataclass
from typing import Literal

from kubernetes_asyncio.client.exceptions import ApiException

from kaito_common.controller import objects
from kaito_common.controller.client import KubeClient, is_gone
from kaito_common.controller.kinds import Kind, ObjectKey
from kaito_common.controller.metrics import ControllerMetrics
from kaito_common.controller.objects import Obj
from kaito_common.controller.store import Store, StoreReader

log = logging.getLogger(__name__)

EventType = Literal["ADDED", "MODIFIED", "DELETED"]


@dataclass(frozen=True)
class WatchEvent:
    """A change seen by an informer. `old` is set for MODIFIED (the cached previous object)."""

    type: EventType
    obj: Obj
    old: Obj | None = None


Handler = Callable[[WatchEvent], None]


def strip_managed_fields(obj: Obj) -> Obj:
    (obj.get("metadata") or {}).pop("managedFields", None)
    return obj


def _rv(obj: Obj) -> str:
    return str(objects.meta(obj).get("resourceVersion") or "")


class Informer:
    def __init__(
        self,
        client: KubeClient,
        kind: Kind,
        *,
        namespace: str | None = None,
        label_selector: str | None = None,
        page_size: int = 500,
        watch_timeout_s: int = 300,
        max_backoff_s: float = 10.0,
        metrics: ControllerMetrics | None = None,
    ) -> None:
        self.kind = kind
        self.namespace = namespace
        self.label_selector = label_selector
        self._client = client
        self._page_size = page_size
        self._watch_timeout_s = watch_timeout_s
        self._max_backoff_s = max_backoff_s
        self._metrics = metrics or ControllerMetrics()
        self._store = Store()
        self._handlers: list[Handler] = []
        self._synced = asyncio.Event()
        self.resource_version = ""
        self.relists = 0

    @property
    def store(self) -> StoreReader:
        return self._store

    def add_indexer(self, name: str, func: Callable[[Obj], list[str]]) -> None:
        self._store.add_indexer(name, func)

    def add_handler(self, handler: Handler) -> None:
        """Handlers run synchronously on each change (enqueue only); late ones get the cache."""
        self._handlers.append(handler)
        if self._synced.is_set():
            for key in self._store.list_keys():
                obj = self._store.get(key)
                if obj is not None:
                    handler(WatchEvent("ADDED", obj))

    async def wait_synced(self) -> None:
        await self._synced.wait()

    def _emit(self, event: WatchEvent) -> None:
        for handler in self._handlers:
            try:
                handler(event)
            except Exception:
                log.exception("Event handler failed", extra={"resource": str(self.kind)})

    async def _relist(self) -> str:
        items: list[Obj] = []
        token: str | None = None
        resource_version = ""
        while True:
            page = await self._client.list(
                self.kind,
                self.namespace,
                label_selector=self.label_selector,
                limit=self._page_size,
                continue_token=token,
            )
            items.extend(self._normalise(o) for o in page.get("items") or [])
            meta = page.get("metadata") or {}
            resource_version = str(meta.get("resourceVersion") or resource_version)
            token = meta.get("continue")
            if not token:
                break
        self.relists += 1
        self._metrics.informer_relists.labels(str(self.kind)).inc()
        added, updated, deleted = self._store.replace(items)
        for obj in added:
            self._emit(WatchEvent("ADDED", obj))
        for old, new in updated:
            self._emit(WatchEvent("MODIFIED", new, old))
        for obj in deleted:
            self._emit(WatchEvent("DELETED", obj))
        log.info(
            "Listed %s: %d objects at resourceVersion %s",
            self.kind,
            len(items),
            resource_version,
        )
        return resource_version

    def _normalise(self, obj: Obj) -> Obj:
        # List items carry no apiVersion/kind; watch events do. Make the cache uniform.
        obj.setdefault("apiVersion", self.kind.api_version)
        obj.setdefault("kind", self.kind.kind)
        return strip_managed_fields(obj)

    def _apply(self, etype: str, obj: Obj) -> None:
        self._normalise(obj)
        if etype == "DELETED":
            old = self._store.remove(ObjectKey.of(obj))
            self._emit(WatchEvent("DELETED", obj))
            return
        old = self._store.upsert(obj)
        if old is None:
            self._emit(WatchEvent("ADDED", obj))
        elif _rv(old) != _rv(obj):
            self._emit(WatchEvent("MODIFIED", obj, old))

    async def run(self) -> None:
        """Run until cancelled."""
        failures = 0
        rv: str | None = None
        while True:
            try:
                if rv is None:
                    rv = await self._relist()
                    self.resource_version = rv
                    self._synced.set()
                events = self._client.watch(
                    self.kind,
                    self.namespace,
                    rv,
                    label_selector=self.label_selector,
                    timeout_s=self._watch_timeout_s,
                )
                # aclosing: a cancelled informer closes its HTTP connection now, not at GC.
                async with contextlib.aclosing(events):
                    async for event in events:
                        etype = str(event.get("type"))
                        obj: Obj = event.get("object") or {}
                        if etype != "BOOKMARK":
                            self._apply(etype, obj)
                        rv = _rv(obj) or rv
                        self.resource_version = rv
                        failures = 0
            except asyncio.CancelledError:
                raise
            except ApiException as err:
                if is_gone(err):
                    log.info(
                        "Relisting %s: resourceVersion %s is too old (410 Gone)", self.kind, rv
                    )
                    rv = None
                    continue
                failures += 1
                log.warning("Watch of %s failed: %s", self.kind, err.status)
                self._metrics.informer_watch_restarts.labels(str(self.kind)).inc()
            except Exception as err:  # connection resets, timeouts, server restarts
                failures += 1
                log.warning("Watch of %s ended: %s", self.kind, type(err).__name__)
                self._metrics.informer_watch_restarts.labels(str(self.kind)).inc()
            if failures:
                delay = min(0.1 * 2 ** min(failures - 1, 10), self._max_backoff_s)
                await asyncio.sleep(delay * (0.5 + random.random()))
