"""Which watch events are worth a reconcile (the rest is noise such as kubelet heartbeats)."""

from __future__ import annotations

from typing import Any

from kaito_common.api import labels as L
from kaito_common.controller.informer import WatchEvent
from workspace_controller.nodes.facts import gpu_capacity, node_ready

Obj = dict[str, Any]


def _meta(obj: Obj | None) -> Obj:
    return (obj or {}).get("metadata") or {}


def workspace_changed(event: WatchEvent) -> bool:
    """Spec, labels, annotations or deletion; not status writes (ours) or finalizer edits."""
    if event.type != "MODIFIED" or event.old is None:
        return True
    old, new = _meta(event.old), _meta(event.obj)
    return any(
        old.get(k) != new.get(k)
        for k in ("generation", "labels", "annotations", "deletionTimestamp")
    )


def node_changed(event: WatchEvent) -> bool:
    """Readiness, labels, GPU capacity or deletion of a node; not heartbeats."""
    if event.type != "MODIFIED" or event.old is None:
        return True
    old, new = event.old, event.obj
    return (
        node_ready(old) != node_ready(new)
        or _meta(old).get("labels") != _meta(new).get("labels")
        or gpu_capacity(old) != gpu_capacity(new)
        or _meta(old).get("deletionTimestamp") != _meta(new).get("deletionTimestamp")
    )


def workspace_of_labels(obj: Obj) -> tuple[str, str] | None:
    labels = _meta(obj).get("labels") or {}
    name, namespace = labels.get(L.LABEL_WORKSPACE), labels.get(L.LABEL_WORKSPACE_NAMESPACE)
    if name and namespace:
        return namespace, name
    return None
