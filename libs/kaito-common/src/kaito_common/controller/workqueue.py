"""A rate-limited, de-duplicating work queue of keys (client-go's workqueue semantics).

- A key waiting in the queue is queued once, however many times it is added.
- A key being processed is never handed out again until `done`; adds meanwhile mark it dirty
  and it is queued again on `done`.
- `add_rate_limited` delays by per-key exponential backoff; `forget` resets it.
- `add_after` delays a key; a sooner delay for the same key wins.
"""

from __future__ import annotations

import asyncio
import heapq
from collections import deque
from collections.abc import Callable, Hashable
from typing import Generic, TypeVar

from kaito_common.controller.clock import Clock, MonotonicClock

K = TypeVar("K", bound=Hashable)


class ShutDown(Exception):
    """The queue was shut down; workers should exit."""


class ExponentialBackoff(Generic[K]):
    """Per-key delay: base * 2**failures, capped."""

    def __init__(self, base_s: float = 0.005, max_s: float = 1000.0) -> None:
        self.base_s = base_s
        self.max_s = max_s
        self._failures: dict[K, int] = {}

    def when(self, key: K) -> float:
        failures = self._failures.get(key, 0)
        self._failures[key] = failures + 1
        if failures > 60:  # 2**60 * base is far past any cap; avoid float overflow
            return self.max_s
        return float(min(self.base_s * (2**failures), self.max_s))

    def retries(self, key: K) -> int:
        return self._failures.get(key, 0)

    def forget(self, key: K) -> None:
        self._failures.pop(key, None)


class WorkQueue(Generic[K]):
    def __init__(
        self,
        clock: Clock | None = None,
        backoff: ExponentialBackoff[K] | None = None,
        on_depth: Callable[[int], None] | None = None,
        on_retry: Callable[[], None] | None = None,
    ) -> None:
        self._clock = clock or MonotonicClock()
        self._backoff: ExponentialBackoff[K] = backoff or ExponentialBackoff()
        self._queue: deque[K] = deque()
        self._dirty: set[K] = set()
        self._processing: set[K] = set()
        self._waiting: list[tuple[float, int, K]] = []
        self._ready_at: dict[K, float] = {}
        self._seq = 0
        self._changed = asyncio.Event()
        self._shutdown = False
        self._on_depth = on_depth or (lambda _depth: None)
        self._on_retry = on_retry or (lambda: None)

    def __len__(self) -> int:
        return len(self._queue)

    @property
    def processing(self) -> frozenset[K]:
        return frozenset(self._processing)

    def _notify(self) -> None:
        self._on_depth(len(self._queue))
        self._changed.set()

    def add(self, key: K) -> None:
        if self._shutdown or key in self._dirty:
            return
        self._dirty.add(key)
        if key not in self._processing:
            self._queue.append(key)
            self._notify()

    def add_after(self, key: K, delay_s: float) -> None:
        if self._shutdown:
            return
        if delay_s <= 0:
            self.add(key)
            return
        ready_at = self._clock.now() + delay_s
        current = self._ready_at.get(key)
        if current is not None and current <= ready_at:
            return
        self._ready_at[key] = ready_at
        self._seq += 1
        heapq.heappush(self._waiting, (ready_at, self._seq, key))
        self._changed.set()

    def add_rate_limited(self, key: K) -> None:
        self._on_retry()
        self.add_after(key, self._backoff.when(key))

    def forget(self, key: K) -> None:
        self._backoff.forget(key)

    def retries(self, key: K) -> int:
        return self._backoff.retries(key)

    def _promote_due(self) -> float | None:
        """Move due delayed keys into the queue; return seconds until the next one is due."""
        now = self._clock.now()
        while self._waiting:
            ready_at, _, key = self._waiting[0]
            if self._ready_at.get(key) != ready_at:
                heapq.heappop(self._waiting)  # superseded by a sooner add_after
                continue
            if ready_at > now:
                return ready_at - now
            heapq.heappop(self._waiting)
            del self._ready_at[key]
            self.add(key)
        return None

    def try_get(self) -> K | None:
        """The next ready key, or None; the caller must call `done(key)` after processing."""
        if self._shutdown:
            raise ShutDown
        self._promote_due()
        if not self._queue:
            return None
        key = self._queue.popleft()
        self._dirty.discard(key)
        self._processing.add(key)
        self._on_depth(len(self._queue))
        return key

    async def get(self) -> K:
        while True:
            key = self.try_get()
            if key is not None:
                return key
            self._changed.clear()
            wait_s = self._promote_due()
            if self._queue:
                continue
            await self._clock.wait(self._changed, wait_s)

    def done(self, key: K) -> None:
        self._processing.discard(key)
        if key in self._dirty and not self._shutdown:
            self._queue.append(key)
            self._notify()

    def shutdown(self) -> None:
        self._shutdown = True
        self._changed.set()
