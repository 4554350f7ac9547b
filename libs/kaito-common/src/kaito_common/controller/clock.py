"""Time sources: a monotonic clock for the process and a fake one that tests advance by hand."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import time
from typing import Protocol


class Clock(Protocol):
    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> bool:
        """Wait until `event` is set (True) or `timeout_s` passes on this clock (False)."""
        ...


class MonotonicClock:
    def now(self) -> float:
        return time.monotonic()

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> bool:
        if timeout_s is None:
            await event.wait()
            return True
        try:
            await asyncio.wait_for(event.wait(), max(timeout_s, 0.0))
        except TimeoutError:
            return event.is_set()
        return True


class FakeClock:
    """A clock that only moves when `advance` is called; waiters wake when their deadline passes."""

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._tick = asyncio.Event()

    def now(self) -> float:
        return self._now

    def advance(self, seconds: float) -> None:
        self._now += seconds
        self._tick.set()
        self._tick = asyncio.Event()

    async def wait(self, event: asyncio.Event, timeout_s: float | None) -> bool:
        deadline = None if timeout_s is None else self._now + timeout_s
        while not event.is_set():
            if deadline is not None and self._now >= deadline:
                return False
            tick = asyncio.ensure_future(self._tick.wait())
            done = asyncio.ensure_future(event.wait())
            try:
                await asyncio.wait({tick, done}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for fut in (tick, done):
                    fut.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await fut
        return True


def utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def rfc3339(when: dt.datetime) -> str:
    """Seconds precision, as `metav1.Time` serialises."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def rfc3339_micro(when: dt.datetime) -> str:
    """Microsecond precision, as `metav1.MicroTime` (Lease times) serialises."""
    return when.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def parse_time(value: str) -> dt.datetime:
    """Parse a Kubernetes timestamp into an aware UTC datetime."""
    return dt.datetime.fromisoformat(value.replace("Z", "+00:00")).astimezone(dt.UTC)
