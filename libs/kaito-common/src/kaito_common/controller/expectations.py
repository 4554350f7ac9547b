"""Expectations: remember creates (and deletes) not yet seen by the watch.

A reconcile that created a child must not create it again because the informer has not caught
up. The reconciler records the names it created; the informer's handler marks them observed;
until all are observed (or the record expires), `satisfied(key)` is False and the reconciler
should requeue instead of counting children from the cache.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable

from kaito_common.controller.clock import Clock, MonotonicClock


class Expectations:
    def __init__(self, clock: Clock | None = None, ttl_s: float = 300.0) -> None:
        self._clock = clock or MonotonicClock()
        self._ttl_s = ttl_s
        self._creates: dict[Hashable, set[str]] = {}
        self._deletes: dict[Hashable, set[str]] = {}
        self._since: dict[Hashable, float] = {}

    def _touch(self, key: Hashable) -> None:
        self._since[key] = self._clock.now()

    def expect_creations(self, key: Hashable, names: Iterable[str]) -> None:
        self._creates.setdefault(key, set()).update(names)
        self._touch(key)

    def expect_deletions(self, key: Hashable, names: Iterable[str]) -> None:
        self._deletes.setdefault(key, set()).update(names)
        self._touch(key)

    def creation_observed(self, key: Hashable, name: str) -> None:
        self._creates.get(key, set()).discard(name)

    def deletion_observed(self, key: Hashable, name: str) -> None:
        self._deletes.get(key, set()).discard(name)

    def pending(self, key: Hashable) -> tuple[frozenset[str], frozenset[str]]:
        """(creations, deletions) still unseen, empty when expired."""
        if self._expired(key):
            return frozenset(), frozenset()
        return frozenset(self._creates.get(key, ())), frozenset(self._deletes.get(key, ()))

    def _expired(self, key: Hashable) -> bool:
        since = self._since.get(key)
        return since is None or self._clock.now() - since > self._ttl_s

    def satisfied(self, key: Hashable) -> bool:
        creates, deletes = self.pending(key)
        return not creates and not deletes

    def forget(self, key: Hashable) -> None:
        for table in (self._creates, self._deletes, self._since):
            table.pop(key, None)
