"""Kubernetes Events (core/v1) about objects, for `kubectl describe` and operators.

Recording never fails a reconcile: errors are logged. A repeat of the same (object, type,
reason, message) within the process bumps `count` on the existing Event instead of creating one.
"""

from __future__ import annotations

import logging
import uuid
from collections import OrderedDict

from kaito_common.controller.client import KubeClient
from kaito_common.controller.clock import rfc3339, utc_now
from kaito_common.controller.kinds import EVENT
from kaito_common.controller.objects import Obj

log = logging.getLogger(__name__)

NORMAL = "Normal"
WARNING = "Warning"


class EventRecorder:
    def __init__(self, client: KubeClient, component: str, *, cache_size: int = 1024) -> None:
        self._client = client
        self._component = component
        self._seen: OrderedDict[tuple[str, str, str, str], tuple[str, str, int]] = OrderedDict()
        self._cache_size = cache_size

    async def record(self, obj: Obj, type_: str, reason: str, message: str) -> None:
        meta = obj.get("metadata") or {}
        namespace = str(meta.get("namespace") or "default")
        uid = str(meta.get("uid") or "")
        key = (uid, type_, reason, message)
        now = rfc3339(utc_now())
        try:
            seen = self._seen.get(key)
            if seen is not None:
                name, ns, count = seen
                await self._client.patch(
                    EVENT, name, {"count": count + 1, "lastTimestamp": now}, ns
                )
                self._seen[key] = (name, ns, count + 1)
                self._seen.move_to_end(key)
                return
            name = f"{meta.get('name')}.{uuid.uuid4().hex[:16]}"
            event: Obj = {
                "metadata": {"name": name, "namespace": namespace},
                "involvedObject": {
                    "apiVersion": obj.get("apiVersion"),
                    "kind": obj.get("kind"),
                    "name": meta.get("name"),
                    "namespace": meta.get("namespace"),
                    "uid": uid,
                    "resourceVersion": meta.get("resourceVersion"),
                },
                "type": type_,
                "reason": reason,
                "message": message,
                "source": {"component": self._component},
                "reportingComponent": self._component,
                "firstTimestamp": now,
                "lastTimestamp": now,
                "count": 1,
            }
            await self._client.create(EVENT, event)
            self._seen[key] = (name, namespace, 1)
            if len(self._seen) > self._cache_size:
                self._seen.popitem(last=False)
        except Exception as err:
            log.warning(
                "Event not recorded reason=%s object=%s error=%r", reason, meta.get("name"), err
            )

    async def normal(self, obj: Obj, reason: str, message: str) -> None:
        await self.record(obj, NORMAL, reason, message)

    async def warning(self, obj: Obj, reason: str, message: str) -> None:
        await self.record(obj, WARNING, reason, message)
