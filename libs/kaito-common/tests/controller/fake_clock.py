"""A fake of `kaito_common.controller.clock.Clock` for the framework's tests."""

from __future__ import annotations

import asyncio
import contextlib


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
