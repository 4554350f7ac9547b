"""The informer's indexed cache of objects of one kind.

Objects are plain dicts (decoded JSON, `managedFields` stripped). Readers get deep copies, so a
reconciler may mutate what it reads without corrupting the cache.
"""

from __future__ import annotations

import builtins
import copy
from collections import defaultdict
from collections.abc import Callable, Iterable
from typing import Protocol

from kaito_common.controller import objects
from kaito_common.controller.kinds import ObjectKey
from kaito_common.controller.objects import Obj

IndexFunc = Callable[[Obj], Iterable[str]]

BY_NAMESPACE = "namespace"
BY_LABEL = "label"  # values are "key=value"
BY_OWNER = "owner"  # values are owner uids


def _namespace_index(obj: Obj) -> list[str]:
    return [objects.namespace(obj)]


def _label_index(obj: Obj) -> list[str]:
    return [f"{k}={v}" for k, v in objects.labels(obj).items()]


def _owner_index(obj: Obj) -> list[str]:
    refs = objects.meta(obj).get("ownerReferences") or []
    return [str(ref.get("uid")) for ref in refs if ref.get("uid")]


def parse_label_selector(selector: str) -> dict[str, str]:
    """Equality-based selectors only (`a=b,c=d`), which is what the framework needs locally."""
    out: dict[str, str] = {}
    for part in filter(None, (p.strip() for p in selector.split(","))):
        key, sep, value = part.partition("=")
        if not sep or key.endswith("!"):
            raise ValueError(f"unsupported label selector term {part!r}")
        out[key.strip()] = value.lstrip("=").strip()
    return out


class StoreReader(Protocol):
    """Read-only view a reconciler gets of a kind's cache."""

    def get(self, key: ObjectKey) -> Obj | None: ...

    def list(
        self, namespace: str | None = None, labels: dict[str, str] | None = None
    ) -> builtins.list[Obj]: ...

    def by_index(self, index: str, value: str) -> builtins.list[Obj]: ...

    def list_keys(self) -> builtins.list[ObjectKey]: ...


class Store:
    def __init__(self) -> None:
        self._items: dict[ObjectKey, Obj] = {}
        self._indexers: dict[str, IndexFunc] = {
            BY_NAMESPACE: _namespace_index,
            BY_LABEL: _label_index,
            BY_OWNER: _owner_index,
        }
        self._indices: dict[str, dict[str, set[ObjectKey]]] = {
            name: defaultdict(set) for name in self._indexers
        }
        self.resource_version = ""

    def add_indexer(self, name: str, func: IndexFunc) -> None:
        if name in self._indexers:
            raise ValueError(f"indexer {name!r} exists")
        self._indexers[name] = func
        index: dict[str, set[ObjectKey]] = defaultdict(set)
        for key, obj in self._items.items():
            for value in func(obj):
                index[value].add(key)
        self._indices[name] = index

    def _unindex(self, key: ObjectKey, obj: Obj) -> None:
        for name, func in self._indexers.items():
            index = self._indices[name]
            for value in func(obj):
                keys = index.get(value)
                if keys is not None:
                    keys.discard(key)
                    if not keys:
                        del index[value]

    def _index(self, key: ObjectKey, obj: Obj) -> None:
        for name, func in self._indexers.items():
            for value in func(obj):
                self._indices[name][value].add(key)

    def upsert(self, obj: Obj) -> Obj | None:
        """Insert or replace; returns the previous object."""
        key = ObjectKey.of(obj)
        old = self._items.get(key)
        if old is not None:
            self._unindex(key, old)
        self._items[key] = obj
        self._index(key, obj)
        return old

    def remove(self, key: ObjectKey) -> Obj | None:
        old = self._items.pop(key, None)
        if old is not None:
            self._unindex(key, old)
        return old

    def replace(self, objs: Iterable[Obj]) -> tuple[list[Obj], list[tuple[Obj, Obj]], list[Obj]]:
        """Swap in a fresh list; returns (added, updated as (old, new), deleted)."""
        fresh = {ObjectKey.of(o): o for o in objs}
        added: list[Obj] = []
        updated: list[tuple[Obj, Obj]] = []
        deleted = [self._items[k] for k in self._items.keys() - fresh.keys()]
        for key in [ObjectKey.of(o) for o in deleted]:
            self.remove(key)
        for obj in fresh.values():
            old = self.upsert(obj)
            if old is None:
                added.append(obj)
            elif _rv(old) != _rv(obj):
                updated.append((old, obj))
        return added, updated, deleted

    # Read side (deep copies).
    def get(self, key: ObjectKey) -> Obj | None:
        obj = self._items.get(key)
        return copy.deepcopy(obj) if obj is not None else None

    def list_keys(self) -> list[ObjectKey]:
        return list(self._items)

    def __len__(self) -> int:
        return len(self._items)

    def list(self, namespace: str | None = None, labels: dict[str, str] | None = None) -> list[Obj]:
        keys: set[ObjectKey] = (
            set(self._items)
            if namespace is None
            else set(self._indices[BY_NAMESPACE].get(namespace, ()))
        )
        for k, v in (labels or {}).items():
            keys &= self._indices[BY_LABEL].get(f"{k}={v}", set())
        return [copy.deepcopy(self._items[k]) for k in sorted(keys)]

    def by_index(self, index: str, value: str) -> builtins.list[Obj]:
        keys = self._indices[index].get(value, set())
        return [copy.deepcopy(self._items[k]) for k in sorted(keys)]


def _rv(obj: Obj) -> str:
    return str(objects.meta(obj).get("resourceVersion", ""))
