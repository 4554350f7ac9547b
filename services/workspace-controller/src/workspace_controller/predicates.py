"""Which watch events are worth a reconcile (the rest is noise such as kubelet heartbeats)."""

from __future__ import annotations

from kaito_common.api import labels as L
from kaito_common.controller import objects
from kaito_common.controller.informer import WatchEvent
from kaito_common.controller.objects import Obj
from workspace_controller.nodes.facts import gpu_capacity, node_ready


def workspace_changed(event: WatchEvent) -> bool:
    """Spec, labels, annotations or deletion; not status writes (ours) or finalizer edits."""
    if event.type != "MODIFIED" or event.old is None:
        return True
    old, new = objects.meta(event.old), objects.meta(event.obj)
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
        or objects.labels(old) != objects.labels(new)
        or gpu_capacity(old) != gpu_capacity(new)
        or objects.meta(old).get("deletionTimestamp") != objects.meta(new).get("deletionTimestamp")
    )


def workspace_of_labels(obj: Obj) -> tuple[str, str] | None:
    labels = objects.labels(obj)
    name, namespace = labels.get(L.LABEL_WORKSPACE), labels.get(L.LABEL_WORKSPACE_NAMESPACE)
    if name and namespace:
        return namespace, name
    return None
