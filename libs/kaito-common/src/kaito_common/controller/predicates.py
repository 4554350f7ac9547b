"""Event filters for controller watches. A predicate returns True to let an event through."""

from __future__ import annotations

from collections.abc import Callable

from kaito_common.controller import objects
from kaito_common.controller.informer import WatchEvent
from kaito_common.controller.objects import Obj

Predicate = Callable[[WatchEvent], bool]


def _generation(obj: Obj | None) -> object:
    return objects.meta(obj or {}).get("generation")


def generation_changed(event: WatchEvent) -> bool:
    """Pass creates, deletes and spec changes; drop status-only and metadata-only updates."""
    if event.type != "MODIFIED" or event.old is None:
        return True
    return _generation(event.old) != _generation(event.obj)


def _labels(obj: Obj | None) -> dict[str, str]:
    return objects.labels(obj or {})


def labels_changed(event: WatchEvent) -> bool:
    if event.type != "MODIFIED" or event.old is None:
        return True
    return _labels(event.old) != _labels(event.obj)


def has_labels(required: dict[str, str]) -> Predicate:
    """Pass objects carrying all `required` labels (before or after the change)."""

    def check(event: WatchEvent) -> bool:
        for obj in (event.obj, event.old):
            labels = _labels(obj)
            if obj is not None and all(labels.get(k) == v for k, v in required.items()):
                return True
        return False

    return check


def any_of(*predicates: Predicate) -> Predicate:
    return lambda event: any(p(event) for p in predicates)


def all_of(*predicates: Predicate) -> Predicate:
    return lambda event: all(p(event) for p in predicates)
