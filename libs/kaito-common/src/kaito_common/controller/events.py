"""Kubernetes Events (core/v1) about objects, for `kubectl describe` and operators.

Repeats are folded into one Event as client-go's recorder does: the same (object, type,
reason, message) seen again within `series_window_s` of its last occurrence bumps `count`,
`lastTimestamp` and the event series (`series.count`, `series.lastObservedTime`) of the Event
already written instead of creating another. An occurrence after a longer quiet spell, or after
the API server expired the Event (its `--event-ttl`), starts a new one.

Recording never fails a reconcile: an Event that cannot be written within `timeout_s` is logged
and dropped. Events are written through core/v1, which `kubectl describe` reads; the fields of
events.k8s.io/v1 (`reportingController`, `reportingInstance`, `series`) are set too.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import socket
import time
import uuid
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from kaito_common.controller.client import KubeClient, is_not_found
from kaito_common.controller.clock import rfc3339, utc_now
from kaito_common.controller.kinds import EVENT
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"
# events.k8s.io/v1 limits `note` to 1 kB; longer messages are cut (the start says the most).
MAX_MESSAGE = 1024
DEFAULT_SERIES_WINDOW_S = 600.0

EventKey = tuple[str, str, str, str]


@dataclass
class _Series:
    """An Event this recorder wrote, and how often its occurrence was seen."""

    name: str
    namespace: str
    count: int
    last_seen: float  # monotonic seconds


def micro_time(now: dt.datetime) -> str:
    """A MicroTime (`eventTime`, `series.lastObservedTime`): RFC 3339 with microseconds."""
    return now.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def involved_object(obj: Obj) -> Obj:
    meta = obj.get("metadata") or {}
    ref: Obj = {
        "apiVersion": obj.get("apiVersion"),
        "kind": obj.get("kind"),
        "name": meta.get("name"),
        "uid": meta.get("uid"),
        "resourceVersion": meta.get("resourceVersion"),
    }
    if meta.get("namespace"):
        ref["namespace"] = meta["namespace"]
    return {k: v for k, v in ref.items() if v}


def event_key(obj: Obj, type_: str, reason: str, message: str) -> EventKey:
    """What makes two occurrences the same Event: the object, type, reason and message."""
    meta = obj.get("metadata") or {}
    who = str(meta.get("uid") or f"{obj.get('kind')}/{meta.get('namespace')}/{meta.get('name')}")
    return (who, type_, reason, message)


class EventRecorder:
    def __init__(
        self,
        client: KubeClient,
        component: str,
        *,
        instance: str | None = None,
        cache_size: int = 4096,
        series_window_s: float = DEFAULT_SERIES_WINDOW_S,
        timeout_s: float = 5.0,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._client = client
        self._component = component
        self._instance = instance or socket.gethostname()
        self._cache_size = cache_size
        self._series_window_s = series_window_s
        self._timeout_s = timeout_s
        self._monotonic = monotonic
        self._series: OrderedDict[EventKey, _Series] = OrderedDict()
        self._lock = asyncio.Lock()

    async def normal(self, obj: Obj, reason: str, message: str) -> None:
        await self.record(obj, NORMAL, reason, message)

    async def warning(self, obj: Obj, reason: str, message: str) -> None:
        await self.record(obj, WARNING, reason, message)

    async def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        """Write one occurrence; errors and timeouts are logged, never raised."""
        message = message[:MAX_MESSAGE]
        meta = obj.get("metadata") or {}
        try:
            async with asyncio.timeout(self._timeout_s), self._lock:
                await self._record(obj, type_, reason, message)
        except Exception as err:
            log.warning(
                "Event not recorded kind=%s namespace=%s name=%s reason=%s error=%r",
                obj.get("kind"),
                meta.get("namespace") or "",
                meta.get("name"),
                reason,
                err,
            )

    async def _record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        key = event_key(obj, type_, reason, message)
        now, seen = utc_now(), self._monotonic()
        series = self._series.get(key)
        if series is not None and seen - series.last_seen <= self._series_window_s:
            count = series.count + 1
            body = {
                "count": count,
                "lastTimestamp": rfc3339(now),
                "series": {"count": count, "lastObservedTime": micro_time(now)},
            }
            try:
                await self._client.patch(EVENT, series.name, body, series.namespace)
            except Exception as err:
                if not is_not_found(err):
                    raise
                # Expired on the server (event TTL): this occurrence starts a new Event.
            else:
                series.count, series.last_seen = count, seen
                self._series.move_to_end(key)
                return
        created = await self._client.create(EVENT, self._event(obj, type_, reason, message, now))
        created_meta = created.get("metadata") or {}
        self._series[key] = _Series(
            str(created_meta.get("name")), str(created_meta.get("namespace")), 1, seen
        )
        self._series.move_to_end(key)
        while len(self._series) > self._cache_size:
            self._series.popitem(last=False)

    def _event(self, obj: Obj, type_: str, reason: str, message: str, now: dt.datetime) -> Obj:
        meta = obj.get("metadata") or {}
        # Cluster-scoped objects (NodeClaim, Node) get their Events in `default`, as client-go.
        namespace = str(meta.get("namespace") or "default")
        name = f"{str(meta.get('name') or 'object')[:200]}.{uuid.uuid4().hex[:16]}"
        return {
            "metadata": {"name": name, "namespace": namespace},
            "involvedObject": involved_object(obj),
            "type": type_,
            "reason": reason,
            "message": message,
            "source": {"component": self._component},
            "reportingComponent": self._component,
            "reportingInstance": self._instance,
            "firstTimestamp": rfc3339(now),
            "lastTimestamp": rfc3339(now),
            "count": 1,
        }
